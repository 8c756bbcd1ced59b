"""The seed's "smart maintenance" done right: ANALYZE changed tables, VACUUM tables full of dead tuples.

VACUUM cannot run inside a function or a transaction block, so this runs from a client in
autocommit mode, one statement per table, driven by the schema's ``maintenance_candidates`` view.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pg8000.native


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


def run_maintenance(
    conn: pg8000.native.Connection, *, dry_run: bool = False, report: Callable[[str], None] = lambda _m: None
) -> list[MaintenanceAction]:
    """Run (or with ``dry_run`` only list) the maintenance the database needs now."""
    actions = plan_maintenance(conn)
    for action in actions:
        report(("would run: " if dry_run else "running: ") + action.statement)
        if not dry_run:
            conn.run(action.statement)  # table names come from regclass::text, already quoted
    return actions
