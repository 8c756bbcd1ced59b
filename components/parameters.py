"""The PostgreSQL parameter group: settings pgha applies on every RDS instance it builds."""

from __future__ import annotations

import pulumi
import pulumi_aws as aws

#: Statements slower than this (ms) are logged: the seed's 1 s slow-query threshold.
SLOW_QUERY_MS = 1000


def postgres_parameters(max_connections: int, cron_database: str) -> dict[str, tuple[str, str]]:
    """RDS parameters as ``name -> (value, apply_method)``.

    Why each one: TLS is mandatory (``rds.force_ssl``); pg_stat_statements feeds the
    slow-query view and pg_cron runs the schema's scheduled jobs, both must be preloaded
    (static, so they wait for a reboot); slow statements, DDL, lock waits, temp files and
    slow autovacuum runs are logged for the audit trail and for tuning; SCRAM passwords
    only; abandoned transactions are ended before they pin vacuum for hours.
    """
    return {
        "rds.force_ssl": ("1", "pending-reboot"),
        "ssl_min_protocol_version": ("TLSv1.2", "immediate"),
        "password_encryption": ("scram-sha-256", "immediate"),
        "shared_preload_libraries": ("pg_stat_statements,pg_cron", "pending-reboot"),
        "cron.database_name": (cron_database, "pending-reboot"),
        "max_connections": (str(max_connections), "pending-reboot"),
        "pg_stat_statements.track": ("top", "immediate"),
        "track_io_timing": ("1", "immediate"),
        "log_min_duration_statement": (str(SLOW_QUERY_MS), "immediate"),
        "log_statement": ("ddl", "immediate"),
        "log_connections": ("1", "immediate"),
        "log_disconnections": ("1", "immediate"),
        "log_lock_waits": ("1", "immediate"),
        "log_temp_files": ("10240", "immediate"),
        "log_autovacuum_min_duration": ("10000", "immediate"),
        "idle_in_transaction_session_timeout": ("600000", "immediate"),
    }


def create_parameter_group(
    name: str,
    postgres_version: int,
    max_connections: int,
    cron_database: str,
    parent: pulumi.Resource,
    protect: bool = False,
) -> aws.rds.ParameterGroup:
    """A parameter group for one major version.

    The major version is part of the logical name, so a version upgrade creates the new
    group, moves the instances to it and only then deletes the old one: no instance is
    ever left pointing at a group of the wrong family. ``protect``: Pulumi refuses to delete it
    (a protected stack's upgrade then needs ``pulumi state unprotect`` of the old group).
    """
    return aws.rds.ParameterGroup(
        f"{name}-pg{postgres_version}",
        family=f"postgres{postgres_version}",
        description=f"pgha PostgreSQL {postgres_version} settings",
        parameters=[
            {"name": key, "value": value, "apply_method": method}
            for key, (value, method) in postgres_parameters(max_connections, cron_database).items()
        ],
        opts=pulumi.ResourceOptions(parent=parent, protect=protect),
    )
