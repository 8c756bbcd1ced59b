"""A write probe: keeps committing numbered rows through the writer and records what was acknowledged.

Used to measure what a failover costs: the longest time no write succeeded (RTO) and the
acknowledged writes that are missing afterwards (RPO, counted in commits).
"""

from __future__ import annotations

import contextlib
import threading
import time
from dataclasses import dataclass, field, replace

import pg8000.native

from pgha.connect import ConnectError, ConnectionSettings, connect


@dataclass
class ProbeReport:
    """What the probe saw."""

    acknowledged: list[int] = field(default_factory=list)
    failures: int = 0
    #: (start, end) monotonic times of each stretch with no successful write.
    outages: list[tuple[float, float]] = field(default_factory=list)

    @property
    def longest_outage(self) -> float:
        """Seconds of the longest stretch without a successful write: the measured RTO."""
        return max((end - start for start, end in self.outages), default=0.0)


class WriteProbe:
    """Commit one row every ``interval`` seconds in a background thread, reconnecting to the writer."""

    def __init__(self, settings: ConnectionSettings, interval: float = 0.05):
        self.settings = replace(settings, connect_timeout=3, application_name="pgha-write-probe")
        self.interval = interval
        self.report = ProbeReport()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def prepare(self) -> None:
        """Create (or empty) the probe table on the writer."""
        conn = connect(self.settings, writable=True)
        conn.run("CREATE TABLE IF NOT EXISTS pgha_write_probe (id bigint PRIMARY KEY, at timestamptz DEFAULT now())")
        conn.run("TRUNCATE pgha_write_probe")
        conn.close()

    def start(self) -> WriteProbe:
        """Begin writing."""
        self._thread.start()
        return self

    def stop(self) -> ProbeReport:
        """Stop writing and return what was seen."""
        self._stop.set()
        self._thread.join(timeout=30)
        return self.report

    def _run(self) -> None:
        conn: pg8000.native.Connection | None = None
        next_id, down_since = 1, None
        while not self._stop.is_set():
            try:
                if conn is None:
                    conn = connect(self.settings, writable=True)
                conn.run("INSERT INTO pgha_write_probe (id) VALUES (:id)", id=next_id)
                self.report.acknowledged.append(next_id)
                if down_since is not None:
                    self.report.outages.append((down_since, time.monotonic()))
                    down_since = None
            except (ConnectError, pg8000.native.InterfaceError, pg8000.native.DatabaseError, OSError):
                self.report.failures += 1
                down_since = down_since if down_since is not None else time.monotonic()
                if conn is not None:
                    with contextlib.suppress(Exception):  # the connection is already broken
                        conn.close()
                    conn = None
                time.sleep(0.2)
            next_id += 1
            time.sleep(self.interval)
        if conn is not None:
            conn.close()


def missing_acknowledged(settings: ConnectionSettings, acknowledged: list[int]) -> list[int]:
    """Acknowledged ids the current writer does not have: writes lost by a failover."""
    conn = connect(settings, writable=True)
    try:
        present = {row[0] for row in conn.run("SELECT id FROM pgha_write_probe")}
    finally:
        conn.close()
    return sorted(set(acknowledged) - present)
