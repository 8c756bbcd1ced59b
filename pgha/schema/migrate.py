"""Apply the schema migrations to a live database: exactly once, in order, serialized, all or nothing.

- ``pgha_schema_migrations`` records name, checksum, applied_at and duration of each applied file;
  an applied file that has changed, or that has no file any more (deleted or renamed: a renamed
  one would run again under its new name), is refused before anything runs, dry run included.
  So is a pending transactional file with its own transaction control (BEGIN, COMMIT, ...): it
  would end the runner's transaction early and leave part of itself applied but unrecorded.
- A session advisory lock serializes concurrent runs; each re-reads what is applied under the lock.
- A pending migration numbered below an applied one is refused: it would run in a different order
  here than on a fresh database.
- Each migration runs in its own transaction together with its tracking row; a file marked
  ``-- pgha:no-transaction`` runs statement by statement and is recorded only when all completed.
  There, a SELECT whose leading comment holds ``pgha:gexec`` returns statements that are run in
  turn (like psql's ``\\gexec``), e.g. one ``CREATE INDEX CONCURRENTLY`` per partition.
- After each migration the session is reset (SET, SET ROLE, ...): what one file sets for its
  session does not reach the next.
- ``lock_timeout`` (default 5 s) keeps DDL from queueing behind a long transaction, which would
  block every query behind it; a migration that hits it is retried with backoff, then fails
  naming the lock it waited for (seen from a second connection) and leaving nothing of it applied.
  ``statement_timeout`` is off unless asked for. Concurrent index builds wait without blocking
  traffic, so they run without the lock timeout.
- After each ``CREATE INDEX CONCURRENTLY`` the index it names must be valid: an INVALID one (left
  by an interrupted build and skipped by ``IF NOT EXISTS``) is dropped concurrently and rebuilt.
- With nothing pending the run takes the lock, reads, and leaves: no table is created or written.
- Every failure is a MigrationError saying what was being done: a server error outside a
  migration's statements (taking the lock, reading or creating the tracking table) as much as a
  connection lost mid-migration. Releasing the lock afterwards is best effort.
"""

from __future__ import annotations

import math
import re
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pg8000.native

from pgha.connect import CONNECTION_LOST_ERRORS, QUERY_ERRORS, close_quietly, run_quietly, sqlstate
from pgha.schema.migrations import (
    MIGRATIONS_DIR,
    NO_TRANSACTION_MARK,
    Migration,
    discover,
    migrations_hash,
    split_statements,
    transaction_control,
)
from pgha.wait import WaitTimeout, wait_until

#: pg_advisory_lock key: a fixed 8-byte constant, as a signed bigint. Never change it: runs of an older
#: and a newer pgha (a Lambda and a laptop) must serialize on the same key.
LOCK_KEY = int.from_bytes(bytes.fromhex("5d2b0c1c7f3a9e11"), "big", signed=True)


#: SQLSTATE lock_not_available: lock_timeout expired (or NOWAIT).
LOCK_NOT_AVAILABLE = "55P03"
#: SQLSTATE insufficient_privilege.
INSUFFICIENT_PRIVILEGE = "42501"
#: The messages of pg8000's InterfaceError when the connection is gone (socket closed or broken).
CONNECTION_LOST = ("network error", "connection is closed")
GEXEC_MARK = re.compile(r"^\s*--[^\n]*\bpgha:gexec\b", re.MULTILINE)
CONCURRENTLY = re.compile(r"^\s*(CREATE|DROP|REINDEX)\b[^;]*?\bCONCURRENTLY\b", re.IGNORECASE)
_IDENT = r'(?:"[^"]+"|[A-Za-z_][\w$]*)'
CREATE_INDEX_CONCURRENTLY = re.compile(
    rf"^\s*CREATE\s+(?:UNIQUE\s+)?INDEX\s+CONCURRENTLY\s+(?:IF\s+NOT\s+EXISTS\s+)?({_IDENT}(?:\.{_IDENT})?)",
    re.IGNORECASE,
)


class MigrationError(RuntimeError):
    """A migration could not be applied; the database is as it was before that migration."""


#: PostgreSQL's largest statement_timeout and lock_timeout: INT_MAX milliseconds (about 24.8 days).
MAX_TIMEOUT_MS = 2_147_483_647


def timeout_problem(seconds: float | None) -> str | None:
    """Why ``seconds`` cannot be a session timeout, or None when it can (None or 0: no limit).

    PostgreSQL counts these timeouts in whole milliseconds and takes 0 as "no limit": a positive value
    below 1 ms would round to 0 and lift the limit it was meant to set, so it is refused rather than
    silently rounded (up or down). Above :data:`MAX_TIMEOUT_MS` PostgreSQL refuses the setting, but only
    once connected and only when a migration is pending: refused here, up front.
    """
    if not seconds:
        return None
    if not math.isfinite(seconds) or seconds < 0:
        return "must be a finite number of seconds, 0 or more"
    if seconds < 0.001:
        return "is below 1 ms, the smallest timeout PostgreSQL keeps (it would round to 0: no limit); use 1ms or more"
    if round(seconds * 1000) > MAX_TIMEOUT_MS:
        return f"exceeds PostgreSQL's maximum, {MAX_TIMEOUT_MS} ms (about 24.8 days)"
    return None


#: A timeout as written on the command line: a number with an optional unit. [0-9], not \d: \d and float()
#: also take non-ASCII digits (Arabic-Indic, full-width).
_TIMEOUT_TEXT = re.compile(r"\s*([0-9]+(?:\.[0-9]+)?)\s*(ms|s|min)?\s*")
_TIMEOUT_UNITS = {"ms": 0.001, "s": 1, "min": 60, None: 1}


def parse_timeout(value: str | None, name: str) -> float | None:
    """A timeout written as seconds (``5``, ``2.5``), with ``ms``/``s``/``min``, or ``none``/``0``/``off`` for
    no limit (None).

    ValueError naming the value as ``name`` spells it (the CLI passes its option) for text that is not a
    timeout and for a value :func:`timeout_problem` refuses: refused before anything connects.
    """
    if value is None or value.strip().lower() in ("none", "0", "off"):
        return None
    match = _TIMEOUT_TEXT.fullmatch(value)
    if not match:
        raise ValueError(f"{name} {value!r}: expected seconds like 5, 2.5s, 500ms or 2min, or none")
    seconds = float(match[1]) * _TIMEOUT_UNITS[match[2]] or None
    problem = timeout_problem(seconds)
    if problem is not None:
        raise ValueError(f"{name} {value!r} {problem}")
    return seconds


@dataclass(frozen=True)
class Timeouts:
    """Limits the runner sets on its session, in seconds (None or 0: no limit). A value
    :func:`timeout_problem` refuses raises ValueError here, before any connection is used."""

    #: Longest any statement may run; off by default (a migration may rewrite a big table).
    statement: float | None = None
    #: Longest a statement waits for a lock before it is cancelled and the migration retried.
    lock: float | None = 5.0
    #: Retries after a lock timeout, waiting ``backoff``, 2 x ``backoff``, ... in between.
    lock_retries: int = 3
    backoff: float = 2.0

    def __post_init__(self) -> None:
        for name, seconds in (("statement timeout", self.statement), ("lock timeout", self.lock)):
            problem = timeout_problem(seconds)
            if problem is not None:
                raise ValueError(f"{name} {seconds!r} s {problem}")

    def apply(self, conn: pg8000.native.Connection) -> None:
        """Set statement_timeout and lock_timeout for the rest of the session."""
        conn.run("SELECT set_config('statement_timeout', :v, false)", v=_ms(self.statement))
        conn.run("SELECT set_config('lock_timeout', :v, false)", v=_ms(self.lock))


DEFAULT_TIMEOUTS = Timeouts()


def _ms(seconds: float | None) -> str:
    """A timeout as PostgreSQL's setting: whole ms (1 at least: :func:`timeout_problem`), or 0 for none."""
    return f"{round(seconds * 1000)}ms" if seconds else "0"


def timeout_text(seconds: float | None) -> str:
    """A timeout as messages print it: ``5 s``, or ``off`` for no limit (None or 0)."""
    return f"{seconds:g} s" if seconds else "off"


def lock_wait_text(seconds: float | None) -> str:
    """How long a statement that got SQLSTATE 55P03 waited, for messages: ``within 5 s``.

    With the lock timeout off, 55P03 comes from a NOWAIT (or a lock_timeout the SQL sets itself).
    """
    return f"within {timeout_text(seconds)}" if seconds else "with the lock timeout off"


class LockWatch:
    """Sees, from a second connection, which lock the runner's session is waiting for.

    A lock-timeout error does not name the lock; ``pg_locks`` and ``pg_blocking_pids`` do, but
    only while the wait lasts and only from another session, so a thread polls while a
    statement runs.
    """

    QUERY = """
        SELECT l.locktype, CASE WHEN l.relation IS NOT NULL THEN l.relation::regclass::text END, l.mode,
               (SELECT string_agg(format('pid %s (%s, %s)', a.pid,
                                         coalesce(nullif(a.application_name, ''), a.usename::text), a.state), ', ')
                FROM pg_stat_activity a WHERE a.pid = ANY (pg_blocking_pids(l.pid)))
        FROM pg_locks l WHERE l.pid = :pid AND NOT l.granted LIMIT 1"""

    def __init__(self, observer: pg8000.native.Connection | None, pid: int, interval: float = 0.1):
        self.observer = observer
        self.pid = pid
        self.interval = interval
        self.waited_for: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> LockWatch:
        self.waited_for = None
        if self.observer is not None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._poll, args=(self.observer,), daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            self._thread = None

    def _poll(self, observer: pg8000.native.Connection) -> None:
        while not self._stop.wait(self.interval):
            try:
                rows = observer.run(self.QUERY, pid=self.pid)
            except Exception:  # the watch only explains; it must never break a migration
                return
            if rows:
                locktype, relation, mode, holders = rows[0]
                what = f"relation {relation}" if relation else f"a {locktype} lock"
                self.waited_for = f"{what} ({mode})" + (f", held by {holders}" if holders else "")


@dataclass
class MigrationResult:
    """What a run found and did."""

    applied: list[str] = field(default_factory=list)
    pending: list[str] = field(default_factory=list)
    already_applied: list[str] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)
    hash: str = ""


def _tracking_exists(conn: pg8000.native.Connection) -> bool:
    return conn.run("SELECT to_regclass('public.pgha_schema_migrations') IS NOT NULL")[0][0]


def applied_checksums(conn: pg8000.native.Connection) -> dict[str, str]:
    """name -> checksum of every migration the database has recorded."""
    if not _tracking_exists(conn):
        return {}
    return dict(conn.run("SELECT name, checksum FROM public.pgha_schema_migrations ORDER BY name"))


def check_unchanged(migrations: list[Migration], applied: dict[str, str]) -> None:
    """Refuse to go on if an applied migration's file no longer matches what was applied."""
    changed = [m.name for m in migrations if m.name in applied and applied[m.name] != m.checksum]
    if changed:
        raise MigrationError(
            "applied migrations were changed after being applied: "
            + ", ".join(changed)
            + ". Never edit an applied migration: revert the file and add a new one."
        )


def check_none_missing(migrations: list[Migration], applied: dict[str, str]) -> None:
    """Refuse to go on if an applied migration has no file any more, naming a likely rename.

    A pending file with the checksum of a missing applied one is that file renamed: run, it would
    apply the same SQL a second time.
    """
    names = {m.name for m in migrations}
    missing = [name for name in applied if name not in names]
    if not missing:
        return
    renamed_to = {m.checksum: m.name for m in migrations if m.name not in applied}
    raise MigrationError(
        "applied migrations have no file any more: "
        + ", ".join(_missing_text(name, renamed_to.get(applied[name])) for name in missing)
        + ". Restore each file under its applied name: an applied migration is history, and a renamed one "
        "would run again. To record a deliberate removal, delete its row from pgha_schema_migrations "
        "(docs/schema.md)."
    )


def check_in_order(pending: list[Migration], applied: dict[str, str]) -> None:
    """Refuse to go on if a pending migration is numbered below one already applied.

    Applied now, it would run after the higher one here but before it on a fresh database: the
    two databases would have run the same files in different orders (two branches that each
    added a migration, merged the other way round).
    """
    if not applied or not pending:
        return
    latest = max(applied)
    behind = [m.name for m in pending if m.name < latest]
    if behind:
        raise MigrationError(
            f"pending migrations are numbered below {latest}, which is already applied: "
            + ", ".join(behind)
            + ". Applied now they would run after it here but before it on a fresh database. Renumber each "
            f"above {latest[:4]} (its name and its place in the order; nothing of it was applied)."
        )


def check_no_transaction_control(pending: list[Migration]) -> None:
    """Refuse to go on if a pending transactional migration starts, ends or prepares a transaction.

    The runner applies such a file in its own transaction together with its tracking row; a
    COMMIT in the file would commit what came before it and leave the rest outside that
    transaction: a later failure would leave part of the file applied and unrecorded, and the
    fixed file would then fail on what exists. Only pending files are checked: applied ones are
    history (and the hash of the schema must not change with this check).
    """
    found = [
        f"{m.name} line {each.line}: {_shorten(each.statement)}"
        for m in pending
        if m.transactional
        for each in transaction_control(m.sql)
    ]
    if found:
        raise MigrationError(
            "pending migrations control their own transaction; nothing was applied:\n  "
            + "\n  ".join(found)
            + "\nEach migration already runs in one transaction with its tracking row, all or nothing; such a "
            "statement would end it early, and a later failure would leave part of the file applied and "
            "unrecorded. Remove these statements. Statements that must run outside a transaction go in a "
            f"file whose first line is {NO_TRANSACTION_MARK!r}."
        )


def _shorten(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _missing_text(name: str, renamed_to: str | None) -> str:
    """A missing applied migration, with the pending file it looks renamed to (same checksum), if any."""
    return f"{name} (looks like a rename of it to {renamed_to}: same checksum)" if renamed_to else name


def _create_tracking(conn: pg8000.native.Connection) -> None:
    conn.run(
        """CREATE TABLE IF NOT EXISTS public.pgha_schema_migrations (
            name        text PRIMARY KEY,
            checksum    text NOT NULL,
            applied_at  timestamptz NOT NULL DEFAULT now(),
            duration_ms integer NOT NULL
        )"""
    )


def _record(conn: pg8000.native.Connection, migration: Migration, started: float) -> None:
    conn.run(
        "INSERT INTO public.pgha_schema_migrations (name, checksum, duration_ms) VALUES (:name, :checksum, :ms)",
        name=migration.name,
        checksum=migration.checksum,
        ms=int((time.monotonic() - started) * 1000),
    )


def error_text(err: Exception) -> str:
    """A server error as one readable line: severity, message, SQLSTATE (and where, if any).

    A lost connection says so, instead of pg8000's bare "network error" or a socket error.
    """
    if err.args and isinstance(err.args[0], dict):
        fields = err.args[0]
        text = f"{fields.get('S', 'ERROR')}: {fields.get('M', '')} (SQLSTATE {sqlstate(err) or '?'})"
        if fields.get("W"):
            text += f"\n  where: {fields['W']}"
        return text
    if connection_lost(err):
        cause = f"pg8000: {err}" if isinstance(err, pg8000.native.InterfaceError) else f"{type(err).__name__}: {err}"
        return f"the connection to the server was lost ({cause})"
    return str(err)


def connection_lost(err: Exception) -> bool:
    """True when ``err`` says the connection is gone (broken, closed, reset, the backend terminated).

    pg8000 raises InterfaceError for that, and also for a few client-side errors on a live
    connection (e.g. "in failed transaction block"), which must not be reported as a lost connection;
    a reset can also arrive as a bare OSError.
    """
    if isinstance(err, OSError):
        return True
    return isinstance(err, pg8000.native.InterfaceError) and str(err) in CONNECTION_LOST


@contextmanager
def _doing(what: str) -> Iterator[None]:
    """Turn a server or connection error in a step before any migration runs into a MigrationError naming the step."""
    try:
        yield
    except QUERY_ERRORS as err:
        hint = ""
        if sqlstate(err) == INSUFFICIENT_PRIVILEGE:
            hint = (
                "\n  the login lacks a privilege the runner needs: run pgha migrate as the admin login that "
                "owns the schema (it creates public.pgha_schema_migrations and every migration's objects)"
            )
        raise MigrationError(f"{what} failed; no migration was applied:\n  {error_text(err)}{hint}") from None


def _run_statement(
    conn: pg8000.native.Connection,
    statement: str,
    timeouts: Timeouts,
    watch: LockWatch,
    report: Callable[[str], None],
) -> list[str]:
    """Run one statement of a non-transactional migration; return the statements it ran.

    A ``pgha:gexec`` SELECT runs each statement it returns. Concurrent index builds run without
    the lock timeout and are checked for validity afterwards.
    """
    if GEXEC_MARK.search(statement):
        generated = [row[0] for row in conn.run(statement) if row and row[0]]
        ran = []
        for each in generated:
            ran += _run_statement(conn, each, timeouts, watch, report)
        return ran
    concurrent = bool(CONCURRENTLY.match(_code(statement)))
    if concurrent and timeouts.lock:
        conn.run("SET lock_timeout = 0")
    try:
        _with_lock_retries(
            conn,
            lambda: conn.run(statement),
            timeouts,
            watch,
            lambda: report(
                f"lock not available {lock_wait_text(timeouts.lock)}, retrying: {_code(statement).strip()[:80]}"
            ),
        )
    finally:
        if concurrent and timeouts.lock:
            conn.run("SELECT set_config('lock_timeout', :v, false)", v=_ms(timeouts.lock))
    return [statement]


def _code(statement: str) -> str:
    """The statement without leading comment lines."""
    return re.sub(r"^(\s*--[^\n]*\n)+", "", statement)


def invalid_index(conn: pg8000.native.Connection, statement: str) -> str | None:
    """The index a CREATE INDEX CONCURRENTLY statement names, if it exists and is INVALID."""
    match = CREATE_INDEX_CONCURRENTLY.match(_code(statement))
    if not match:
        return None
    rows = conn.run(
        "SELECT indexrelid::regclass::text FROM pg_index WHERE indexrelid = to_regclass(:name) AND NOT indisvalid",
        name=match[1],
    )
    return rows[0][0] if rows else None


def _rebuild_if_invalid(
    conn: pg8000.native.Connection,
    statement: str,
    timeouts: Timeouts,
    watch: LockWatch,
    report: Callable[[str], None],
) -> None:
    """Drop and rebuild the index ``statement`` names when an interrupted build left it INVALID."""
    index = invalid_index(conn, statement)
    if index is None:
        return
    report(f"index {index} is INVALID (an interrupted concurrent build): dropping and rebuilding it")
    _run_statement(conn, f"DROP INDEX CONCURRENTLY IF EXISTS {index}", timeouts, watch, report)
    _run_statement(conn, statement, timeouts, watch, report)
    if invalid_index(conn, statement):
        raise MigrationError(f"index {index} is still INVALID after a rebuild")


def _with_lock_retries(
    conn: pg8000.native.Connection,
    attempt: Callable[[], object],
    timeouts: Timeouts,
    watch: LockWatch,
    on_retry: Callable[[], None] = lambda: None,
) -> None:
    """Run ``attempt``; after a lock timeout wait with backoff and run it again, up to lock_retries times.

    The last lock-timeout error is re-raised with what the watch saw attached as ``waited_for``.
    """
    for number in range(timeouts.lock_retries + 1):
        try:
            with watch:
                attempt()
            return
        except pg8000.native.DatabaseError as err:
            if sqlstate(err) != LOCK_NOT_AVAILABLE or number == timeouts.lock_retries:
                err.waited_for = watch.waited_for  # pyright: ignore[reportAttributeAccessIssue] - read by _lock_failure
                raise
            on_retry()
            time.sleep(timeouts.backoff * 2**number)


def _lock_failure(err: Exception, timeouts: Timeouts) -> str:
    """What a migration that failed on SQLSTATE 55P03 tried and which lock it waited for ('' for other errors)."""
    if sqlstate(err) != LOCK_NOT_AVAILABLE:
        return ""
    waited_for = getattr(err, "waited_for", None)
    if waited_for:
        lock = f"waiting for {waited_for}"
    elif timeouts.lock:
        lock = "waiting for a lock (not seen: set a longer --lock-timeout to see which)"
    else:
        lock = "on a lock it did not wait for (a NOWAIT, or a lock_timeout the migration sets itself)"
    attempts = timeouts.lock_retries + 1
    return f"; gave up after {attempts} attempts with --lock-timeout {timeout_text(timeouts.lock)}, {lock}"


def _apply_one(
    conn: pg8000.native.Connection,
    migration: Migration,
    timeouts: Timeouts,
    watch: LockWatch,
    report: Callable[[str], None],
) -> None:
    started = time.monotonic()
    if migration.transactional:
        _apply_transactional(conn, migration, timeouts, watch, report, started)
        return
    statements = split_statements(migration.sql)
    for index, statement in enumerate(statements, 1):
        try:
            for ran in _run_statement(conn, statement, timeouts, watch, report):
                _rebuild_if_invalid(conn, ran, timeouts, watch, report)
        except pg8000.native.DatabaseError as err:
            raise MigrationError(
                f"{migration.name} (non-transactional) failed at statement {index} of {len(statements)}; "
                f"{_stay_applied(index)}, the migration is not recorded, and a re-run "
                f"starts it again from the top{_lock_failure(err, timeouts)}:\n  {error_text(err)}"
            ) from None
        except CONNECTION_LOST_ERRORS as err:
            raise MigrationError(
                f"{migration.name} (non-transactional) was interrupted at statement {index} of {len(statements)}; "
                f"{_stay_applied(index)}, statement {index} may or may not have taken effect, the migration "
                f"is not recorded, and a re-run starts it again from the top:\n  {error_text(err)}"
            ) from None
    try:
        _reset_session(conn, timeouts)
        _record(conn, migration, started)
    except pg8000.native.DatabaseError as err:
        raise MigrationError(
            f"{migration.name} (non-transactional): all {len(statements)} statements stay applied, but recording "
            f"it failed, so a re-run starts it again from the top:\n  {error_text(err)}"
        ) from None
    except CONNECTION_LOST_ERRORS as err:
        raise MigrationError(
            f"{migration.name} (non-transactional): all {len(statements)} statements stay applied, but the run "
            "was interrupted while recording it: whether pgha_schema_migrations has its row is unknown, so a "
            f"re-run either skips it or starts it again from the top:\n  {error_text(err)}"
        ) from None


def _stay_applied(index: int) -> str:
    """Which statements of a non-transactional migration that failed at statement ``index`` stay applied."""
    if index == 1:
        return "no statement of it had completed"
    return "statement 1 stays applied" if index == 2 else f"statements 1-{index - 1} stay applied"


def _apply_transactional(
    conn: pg8000.native.Connection,
    migration: Migration,
    timeouts: Timeouts,
    watch: LockWatch,
    report: Callable[[str], None],
    started: float,
) -> None:
    """Run the whole file and its tracking row in one transaction; any failure is a MigrationError.

    Until COMMIT is sent, a failure of any kind leaves nothing: the server aborts a transaction on
    an error, and rolls it back when the connection ends. A connection lost during COMMIT leaves
    the outcome unknown; the tracking row commits with the migration, so a re-run settles it.
    """
    committing = False

    def attempt() -> None:
        nonlocal committing
        committing = False
        conn.run("BEGIN")
        try:
            conn.run(migration.sql)
            _reset_session(conn, timeouts)
            _record(conn, migration, started)
            committing = True
            conn.run("COMMIT")
        except QUERY_ERRORS:
            run_quietly(conn, "ROLLBACK")  # after an error on a dead connection the server has rolled back
            raise

    def retrying() -> None:
        report(f"{migration.name}: lock not available {lock_wait_text(timeouts.lock)}, retrying")

    try:
        _with_lock_retries(conn, attempt, timeouts, watch, retrying)
    except pg8000.native.DatabaseError as err:
        raise MigrationError(
            f"{migration.name} failed and was rolled back; nothing of it remains"
            f"{_lock_failure(err, timeouts)}:\n  {error_text(err)}"
        ) from None
    except CONNECTION_LOST_ERRORS as err:
        if committing:
            raise MigrationError(
                f"{migration.name} was interrupted while committing: whether it committed is unknown. Its "
                "tracking row commits with it, so a re-run settles it: it skips the migration if it committed "
                f"and applies it if not:\n  {error_text(err)}"
            ) from None
        raise MigrationError(
            f"{migration.name} was interrupted and not committed: the server rolls its transaction back "
            f"(at the latest when it notices the connection is gone); nothing of it remains:\n  {error_text(err)}"
        ) from None


def _drain_notices(conn: pg8000.native.Connection, sink: list[str], report: Callable[[str], None]) -> None:
    while conn.notices:
        notice = conn.notices.popleft()
        text = f"{notice.get(b'S', b'NOTICE').decode()}: {notice.get(b'M', b'').decode()}"
        sink.append(text)
        report(text)


def _acquire_lock(conn: pg8000.native.Connection, timeout: float, report: Callable[[str], None]) -> None:
    """Take the session advisory lock, polling rather than blocking.

    A session blocked in pg_advisory_lock() holds a snapshot, and CREATE INDEX CONCURRENTLY in
    the run holding the lock waits for every such snapshot: a deadlock. Polling with
    pg_try_advisory_lock() leaves no snapshot open between tries.
    """
    told: list[bool] = []

    def say_once() -> None:
        if not told:
            report("waiting for another pgha migrate run to finish")
            told.append(True)

    try:
        wait_until(
            "the migration lock",
            lambda: conn.run("SELECT pg_try_advisory_lock(:key)", key=LOCK_KEY)[0][0],
            timeout,
            0.2,
            check=say_once,
        )
    except WaitTimeout:
        raise MigrationError(f"another pgha migrate run held the lock for more than {timeout:.0f} s") from None


def migrate(
    conn: pg8000.native.Connection,
    directory: Path = MIGRATIONS_DIR,
    *,
    dry_run: bool = False,
    report: Callable[[str], None] = lambda _msg: None,
    run_lock_wait: float = 900.0,
    timeouts: Timeouts = DEFAULT_TIMEOUTS,
    observer: Callable[[], pg8000.native.Connection] | None = None,
) -> MigrationResult:
    """Apply every pending migration in ``directory`` to the database behind ``conn``.

    ``report`` receives one line per step (and server warnings, e.g. pg_cron missing).
    ``run_lock_wait`` bounds the wait for another run; ``timeouts`` sets the session's statement
    and lock timeouts; ``observer`` opens a second connection to the same server, used only to
    name the lock a timed-out migration waited for.
    Raises MigrationError naming the file when a migration fails, is interrupted, or is refused
    (an applied one changed or is missing, a pending one controls its own transaction), and naming
    the step when anything else fails (the lock, the tracking table); never a bare pg8000 error.
    """
    migrations = discover(directory)
    result = MigrationResult(hash=migrations_hash(directory))
    with _doing("taking the migration lock (pg_try_advisory_lock)"):
        _acquire_lock(conn, run_lock_wait, report)
    watcher: pg8000.native.Connection | None = None
    try:
        with _doing("reading the applied migrations from public.pgha_schema_migrations"):
            applied = applied_checksums(conn)
        check_unchanged(migrations, applied)
        check_none_missing(migrations, applied)
        pending = [m for m in migrations if m.name not in applied]
        check_in_order(pending, applied)
        check_no_transaction_control(pending)
        result.already_applied = [m.name for m in migrations if m.name in applied]
        result.pending = [m.name for m in pending]
        if dry_run or not pending:
            return result
        with _doing("setting the session's statement and lock timeouts"):
            timeouts.apply(conn)
            pid = conn.run("SELECT pg_backend_pid()")[0][0]
        if observer is not None:
            try:
                watcher = observer()
            except Exception as err:  # naming a lock is a help, not a requirement
                report(f"warning: no second connection to watch lock waits ({type(err).__name__})")
        watch = LockWatch(watcher, pid)
        with _doing("creating the tracking table public.pgha_schema_migrations"):
            _create_tracking(conn)
        for migration in pending:
            report(f"applying {migration.name}")
            _apply_one(conn, migration, timeouts, watch, report)
            _drain_notices(conn, result.notices, report)
            result.applied.append(migration.name)
        return result
    finally:
        if watcher is not None:
            close_quietly(watcher)
        conn.notices.clear()
        _release(conn, report)


def _reset_session(conn: pg8000.native.Connection, timeouts: Timeouts) -> None:
    """Undo the session state a migration left (a session-level SET search_path, SET ROLE, ...), before
    its tracking row is written as the runner and so that each migration runs in the session the first
    one had, as on a fresh database where files may be applied by different runs. Inside the
    migration's transaction it commits or rolls back with it. Not DISCARD ALL: it would release the
    run's lock."""
    conn.run("RESET SESSION AUTHORIZATION")  # neither it nor the role is covered by RESET ALL
    conn.run("RESET ROLE")
    conn.run("RESET ALL")
    timeouts.apply(conn)


def _release(conn: pg8000.native.Connection, report: Callable[[str], None]) -> None:
    """Best effort: unlock the run and reset the session's timeouts, never raising.

    On a lost connection there is nothing to release (the server ends the session and its lock),
    and raising here would hide the error that ended the run.
    """
    try:
        conn.run("SELECT pg_advisory_unlock(:key)", key=LOCK_KEY)
        conn.run("RESET statement_timeout")
        conn.run("RESET lock_timeout")
    except QUERY_ERRORS as err:
        if not connection_lost(err):
            report(
                f"warning: could not release the migration lock or reset the session's timeouts "
                f"({error_text(err)}); the server releases the lock when this session ends"
            )
