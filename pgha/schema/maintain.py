"""The seed's "smart maintenance" done right: ANALYZE changed tables, VACUUM tables full of dead tuples.

VACUUM cannot run inside a function or a transaction block, so this runs from a client in
autocommit mode, one statement per table, driven by the schema's ``maintenance_candidates`` view.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import pg8000.native

from pgha.connect import sqlstate
from pgha.schema.migrate import DEFAULT_TIMEOUTS, LOCK_NOT_AVAILABLE, Timeouts, lock_wait_text


@dataclass(frozen=True)
class MaintenanceAction:
    """One statement maintenance ran (or would run)."""

    table: str
    statement: str


def plan_maintenance(conn: pg8000.native.Connection) -> list[MaintenanceAction]:
    """What the candidates view says needs doing: VACUUM (ANALYZE) beats a plain ANALYZE."""
    rows = conn.run("SELECT table_name::text, needs_analyze, needs_vacuum FROM maintenance_candidates ORDER BY 1")
    actions = []
    for table, needs_analyze, needs_vacuum in rows:
        if needs_vacuum:
            actions.append(MaintenanceAction(table, f"VACUUM (ANALYZE) {table}"))
        elif needs_analyze:
            actions.append(MaintenanceAction(table, f"ANALYZE {table}"))
    return actions


@dataclass
class MaintenanceResult:
    """What maintenance ran, and what it skipped because a lock was not available in time."""

    actions: list[MaintenanceAction] = field(default_factory=list)
    skipped: list[MaintenanceAction] = field(default_factory=list)


def run_maintenance(
    conn: pg8000.native.Connection,
    *,
    dry_run: bool = False,
    report: Callable[[str], None] = lambda _m: None,
    timeouts: Timeouts = DEFAULT_TIMEOUTS,
) -> MaintenanceResult:
    """Run (or with ``dry_run`` only list) the maintenance the database needs now.

    ``timeouts`` bounds each statement and its lock wait: a table whose lock is not granted within
    the lock timeout (a long transaction holds a conflicting one) is skipped and reported, so
    maintenance never queues behind it and blocks traffic; the next run takes it up.
    """
    result = MaintenanceResult(actions=plan_maintenance(conn))
    if not dry_run:
        timeouts.apply(conn)
    for action in result.actions:
        report(("would run: " if dry_run else "running: ") + action.statement)
        if dry_run:
            continue
        try:
            conn.run(action.statement)  # table names come from regclass::text, already quoted
        except pg8000.native.DatabaseError as err:
            if sqlstate(err) != LOCK_NOT_AVAILABLE:
                raise
            report(f"skipped {action.table}: its lock was not granted {lock_wait_text(timeouts.lock)}")
            result.skipped.append(action)
    return result
