"""A write probe: keeps committing numbered rows through the writer and records what was acknowledged.

Used to measure what a failover costs: the longest time no write succeeded (RTO), or that the
writes had not come back when the probe stopped (its last write failed), the acknowledged writes
that are missing afterwards (RPO, in commits and in seconds of writes), and the commit timeline a
drill report charts. Each acknowledged commit is kept with the wall-clock time the acknowledgement
arrived and the server that gave it, so a drill can tell which node accepted which write (split
brain shows up as an old leader acknowledging after the new one). The RDS drills use the same
probe, once a second, as their heartbeat.
"""

from __future__ import annotations

import contextlib
import re
import threading
import time
from dataclasses import dataclass, field, replace

import pg8000.native

from pgha.connect import ConnectError, ConnectionSettings, connect

PROBE_TABLE = "pgha_write_probe"


def _checked(table: str) -> str:
    """A probe table name, refused unless it is a plain lower-case identifier (it is put into SQL)."""
    if not re.fullmatch(r"[a-z_][a-z0-9_]*", table):
        raise ValueError(f"probe table {table!r} must be a plain lower-case identifier")
    return table


@dataclass(frozen=True)
class Commit:
    """One acknowledged write: its id, when the acknowledgement arrived (epoch seconds), who gave it."""

    id: int
    at: float
    server: str


@dataclass(frozen=True)
class Outage:
    """The stretch an RTO measures, from ``start`` to ``end`` (epoch seconds), with no acknowledged commit.

    ``recovered`` is False when the writes had not come back when the probe stopped: ``end`` is then
    the stop, and ``seconds`` only a lower bound of the outage.
    """

    start: float
    end: float
    recovered: bool = True

    @property
    def seconds(self) -> float:
        """Its length, to the millisecond."""
        return round(self.end - self.start, 3)


@dataclass
class ProbeReport:
    """What the probe saw."""

    commits: list[Commit] = field(default_factory=list)
    failures: int = 0
    #: (epoch time, message) of each failure whose message differs from the one before: why writes failed.
    errors: list[tuple[float, str]] = field(default_factory=list)
    #: Epoch times the probe started and stopped writing (None when it did not, e.g. a report built by hand).
    started: float | None = None
    stopped: float | None = None
    #: Epoch time of the first failed write since the last acknowledged one; None while writes succeed. Still
    #: set after the stop: the probe's last write failed, the writes had not come back.
    failing_since: float | None = None

    @property
    def acknowledged(self) -> list[int]:
        """Ids of every acknowledged write, in order."""
        return [c.id for c in self.commits]

    def longest_gap(self) -> tuple[float, float] | None:
        """(start, end) of the longest stretch that ended in an acknowledged commit: between two of them, or from
        the probe's start to its first commit."""
        times = [self.started] if self.started is not None else []
        times += [c.at for c in self.commits]
        if len(times) < 2:
            return None
        index = max(range(1, len(times)), key=lambda i: times[i] - times[i - 1])
        return times[index - 1], times[index]

    def outage(self) -> Outage | None:
        """What the RTO measures: the stretch still open at the stop when the probe's last write failed (from the
        last acknowledged commit, or the probe's start, to the stop), else the longest gap; None without either."""
        if self.failing_since is not None and self.stopped is not None:
            since = self.commits[-1].at if self.commits else self.started
            return Outage(self.failing_since if since is None else since, self.stopped, recovered=False)
        gap = self.longest_gap()
        return Outage(*gap) if gap is not None else None


class WriteProbe:
    """Commit one row every ``interval`` seconds in a background thread, reconnecting to the writer."""

    def __init__(
        self, settings: ConnectionSettings, interval: float = 0.05, table: str = PROBE_TABLE, timeout: int = 3
    ):
        self.table = _checked(table)
        # every statement bounded by ``timeout`` too: a write hung on a frozen server is an outage, not a wait
        self.settings = replace(
            settings, connect_timeout=timeout, read_timeout=timeout, application_name="pgha-write-probe"
        )
        self.interval = interval
        self.report = ProbeReport()
        self._stop = threading.Event()
        self._running = threading.Event()
        self._running.set()
        self._idle = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def prepare(self) -> None:
        """Create (or empty) the probe table on the writer."""
        conn = connect(self.settings, writable=True)
        try:
            conn.run(f"CREATE TABLE IF NOT EXISTS {self.table} (id bigint PRIMARY KEY, at timestamptz DEFAULT now())")
            conn.run(f"TRUNCATE {self.table}")
        finally:
            conn.close()

    def start(self) -> WriteProbe:
        """Begin writing."""
        self.report.started = time.time()
        self._thread.start()
        return self

    def pause(self, timeout: float = 30.0) -> float:
        """Stop writing until :meth:`resume`; returns once no write is in flight (epoch time)."""
        self._idle.clear()
        self._running.clear()
        self._idle.wait(timeout)
        return time.time()

    def resume(self) -> None:
        """Carry on writing after :meth:`pause`."""
        self._running.set()

    def stop(self) -> ProbeReport:
        """Stop writing and return what was seen."""
        self._stop.set()
        self._running.set()
        self._thread.join(timeout=30)
        self.report.stopped = time.time()
        return self.report

    def _run(self) -> None:
        conn: pg8000.native.Connection | None = None
        next_id = 1
        while not self._stop.is_set():
            if not self._running.is_set():
                self._idle.set()
                self._running.wait()
                continue
            try:
                if conn is None:
                    conn = connect(self.settings, writable=True)
                rows = conn.run(
                    f"INSERT INTO {self.table} (id) VALUES (:id) "  # noqa: S608 - checked name
                    "RETURNING host(inet_server_addr())",
                    id=next_id,
                )
                self.report.commits.append(Commit(next_id, time.time(), rows[0][0] or "local"))
                self.report.failing_since = None
            except (ConnectError, pg8000.native.InterfaceError, pg8000.native.DatabaseError, OSError) as err:
                self.report.failures += 1
                message = f"{type(err).__name__}: {err}"[:300]
                if not self.report.errors or self.report.errors[-1][1] != message:
                    self.report.errors.append((time.time(), message))
                if self.report.failing_since is None:
                    self.report.failing_since = time.time()
                if conn is not None:
                    with contextlib.suppress(Exception):  # the connection is already broken
                        conn.close()
                    conn = None
                time.sleep(0.2)
            next_id += 1
            time.sleep(self.interval)
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.close()


def present_ids(settings: ConnectionSettings, table: str = PROBE_TABLE, writable: bool = True) -> set[int]:
    """The probe ids a server holds (the writer by default)."""
    conn = connect(settings, writable=writable)
    try:
        return {row[0] for row in conn.run(f"SELECT id FROM {_checked(table)}")}  # noqa: S608 - checked name
    finally:
        conn.close()


def missing_acknowledged(settings: ConnectionSettings, acknowledged: list[int], table: str = PROBE_TABLE) -> list[int]:
    """Acknowledged ids the current writer does not have: writes lost by a failover."""
    return sorted(set(acknowledged) - present_ids(settings, table))


def lost_seconds(commits: list[Commit], lost: list[int]) -> float:
    """Seconds of acknowledged writes the lost commits span: from the newest surviving commit acknowledged
    before the first lost one, to the newest lost one (0 when nothing was lost)."""
    if not lost:
        return 0.0
    gone = set(lost)
    first_lost = min(c.at for c in commits if c.id in gone)
    last_lost = max(c.at for c in commits if c.id in gone)
    before = [c.at for c in commits if c.id not in gone and c.at < first_lost]
    return round(last_lost - (max(before) if before else first_lost), 3)
