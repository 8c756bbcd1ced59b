"""AWS Lambda entry point of the post-deploy schema hook: runs ``pgha migrate`` inside the VPC.

Invoked by ``aws.lambda_.Invocation`` after the database exists. The password comes from the
RDS-managed Secrets Manager secret named in the event; it is never logged or returned. A failed
migration raises, which fails the invocation and so fails ``pulumi up``.
"""

from __future__ import annotations

from typing import Any

from pgha.connect import ConnectionSettings, resolve, wait_for_writer
from pgha.schema.migrate import migrate


def handler(event: dict[str, Any], _context: Any = None) -> dict[str, Any]:
    """Apply pending migrations to the writer named in ``event``; return what was applied."""
    settings = resolve(
        ConnectionSettings(
            hosts=((event["host"], int(event.get("port", 5432))),),
            database=event.get("database", "app"),
            user=event.get("user", ""),
            sslmode=event.get("sslmode", "require"),
            application_name="pgha-schema-hook",
        ),
        secret_arn=event["secretArn"],
    )
    # bounded wait: a new cluster's writer answers minutes after its instances are "running"
    conn = wait_for_writer(settings, timeout=float(event.get("waitSeconds", 600)))
    try:
        result = migrate(conn, report=print)
    finally:
        conn.close()
    return {
        "applied": result.applied,
        "alreadyApplied": result.already_applied,
        "migrationsHash": result.hash,
        "notices": result.notices,
    }
