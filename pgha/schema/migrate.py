"""Apply the schema migrations to a live database: exactly once, in order, serialized, all or nothing.

- ``pgha_schema_migrations`` records name, checksum, applied_at and duration of each applied file;
  an applied file that has changed is refused before anything runs.
- A session advisory lock serializes concurrent runs; each re-reads what is applied under the lock.
- Each migration runs in its own transaction together with its tracking row; a file marked
  ``-- pgha:no-transaction`` runs statement by statement and is recorded only when all completed.
- With nothing pending the run takes the lock, reads, and leaves: no table is created or written.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pg8000.native

from pgha.schema.migrations import MIGRATIONS_DIR, Migration, discover, migrations_hash, split_statements

#: pg_advisory_lock key: the first 8 bytes of sha256("pgha:migrate"), as a signed bigint.
LOCK_KEY = int.from_bytes(bytes.fromhex("5d2b0c1c7f3a9e11"), "big", signed=True)


class MigrationError(RuntimeError):
    """A migration could not be applied; the database is as it was before that migration."""


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


def _error_text(err: Exception) -> str:
    if err.args and isinstance(err.args[0], dict):
        fields = err.args[0]
        text = f"{fields.get('S', 'ERROR')}: {fields.get('M', '')} (SQLSTATE {fields.get('C', '?')})"
        if fields.get("W"):
            text += f"\n  where: {fields['W']}"
        return text
    return str(err)


def _apply_one(conn: pg8000.native.Connection, migration: Migration) -> None:
    started = time.monotonic()
    if migration.transactional:
        conn.run("BEGIN")
        try:
            conn.run(migration.sql)
            _record(conn, migration, started)
            conn.run("COMMIT")
        except pg8000.native.DatabaseError as err:
            conn.run("ROLLBACK")
            raise MigrationError(
                f"{migration.name} failed and was rolled back; nothing of it remains:\n  {_error_text(err)}"
            ) from None
        return
    statements = split_statements(migration.sql)
    for index, statement in enumerate(statements, 1):
        try:
            conn.run(statement)
        except pg8000.native.DatabaseError as err:
            raise MigrationError(
                f"{migration.name} (non-transactional) failed at statement {index} of {len(statements)}; "
                f"statements 1-{index - 1} stay applied, the migration is not recorded, and a re-run "
                f"starts it again from the top:\n  {_error_text(err)}"
            ) from None
    _record(conn, migration, started)


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
    deadline = time.monotonic() + timeout
    waiting = False
    while not conn.run("SELECT pg_try_advisory_lock(:key)", key=LOCK_KEY)[0][0]:
        if time.monotonic() > deadline:
            raise MigrationError(f"another pgha migrate run held the lock for more than {timeout:.0f} s")
        if not waiting:
            report("waiting for another pgha migrate run to finish")
            waiting = True
        time.sleep(0.2)


def migrate(
    conn: pg8000.native.Connection,
    directory: Path = MIGRATIONS_DIR,
    *,
    dry_run: bool = False,
    report: Callable[[str], None] = lambda _msg: None,
    lock_timeout: float = 900.0,
) -> MigrationResult:
    """Apply every pending migration in ``directory`` to the database behind ``conn``.

    ``report`` receives one line per step (and server warnings, e.g. pg_cron missing).
    Raises MigrationError naming the file when a migration fails or an applied one changed.
    """
    migrations = discover(directory)
    result = MigrationResult(hash=migrations_hash(directory))
    _acquire_lock(conn, lock_timeout, report)
    try:
        applied = applied_checksums(conn)
        check_unchanged(migrations, applied)
        pending = [m for m in migrations if m.name not in applied]
        result.already_applied = [m.name for m in migrations if m.name in applied]
        result.pending = [m.name for m in pending]
        if dry_run or not pending:
            return result
        _create_tracking(conn)
        for migration in pending:
            report(f"applying {migration.name}")
            _apply_one(conn, migration)
            _drain_notices(conn, result.notices, report)
            result.applied.append(migration.name)
        return result
    finally:
        conn.notices.clear()
        conn.run("SELECT pg_advisory_unlock(:key)", key=LOCK_KEY)
