"""AWS Lambda entry point of the post-deploy schema hook: runs ``pgha migrate`` inside the VPC.

Invoked by ``aws.lambda_.Invocation`` after the database exists. The password comes from the
RDS-managed Secrets Manager secret named in the event; it is never logged or returned. Then the
application login roles listed in ``logins`` (``[{"secretArn", "memberOf"}]``) are created or
updated with the passwords of their secrets (see :mod:`pgha.schema.logins`). A failed migration
raises, which fails the invocation and so fails ``pulumi up``.

On the Patroni engine the event also carries ``clientTlsSecretArn``: the nodes admit the superuser from
outside the cluster's members only with the client certificate that secret holds (see
:func:`pgha.connect.client_certificate`), and ``patroni`` (``urls``, ``caCert``, ``dynamicConfig``,
``user``, ``passwordKey``): the cluster's dynamic config is then brought to what the stack declares
through a member's REST API (see :mod:`pgha.node.dynamic_config`), with the REST API password read
from the same secret.
"""

from __future__ import annotations

import ssl
from dataclasses import replace
from typing import Any

from pgha.connect import (
    ConnectionSettings,
    client_certificate,
    close_quietly,
    connect,
    resolve,
    secret_credentials,
    secret_json,
    wait_for_secret_access,
    wait_for_writer,
)
from pgha.node.dynamic_config import DynamicConfigError, apply_dynamic_config, changed_keys
from pgha.schema.logins import LoginSpec, ensure_logins
from pgha.schema.migrate import Timeouts, migrate


def handler(event: dict[str, Any], _context: object = None) -> dict[str, Any]:
    """Apply pending migrations to the writer named in ``event`` (and on Patroni, its dynamic config);
    return what was applied.

    Optional ``lockTimeout`` / ``statementTimeout`` (seconds; 0 = no limit) override the
    runner's defaults (5 s / none); outside 1 ms to 2147483647 ms they are refused before connecting
    (ValueError from :class:`Timeouts`). ``grantWaitSeconds`` (default 120) bounds how long a denied
    read of the event's secrets is retried: the role's grants were made moments before the first run.
    """
    secrets = [
        event["secretArn"],
        *(item["secretArn"] for item in event.get("logins", [])),
        *([event["clientTlsSecretArn"]] if event.get("clientTlsSecretArn") else []),
    ]
    wait_for_secret_access(secrets, timeout=float(event.get("grantWaitSeconds", 120)))
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
    logins = [
        LoginSpec(*secret_credentials(item["secretArn"]), member_of=item["memberOf"])
        for item in event.get("logins", [])
    ]
    timeouts = Timeouts(
        statement=float(event.get("statementTimeout") or 0) or None,
        lock=float(event.get("lockTimeout", 5)) or None,
    )
    with client_certificate(settings, event.get("clientTlsSecretArn")) as settings:
        # bounded wait: a new cluster's writer answers minutes after its instances are "running"
        conn, pinned = wait_for_writer(settings, timeout=float(event.get("waitSeconds", 600)))
        try:
            result = migrate(
                conn,
                report=print,
                timeouts=timeouts,
                observer=lambda: connect(replace(pinned, application_name="pgha-schema-hook-watch")),
            )
            # after the migrations: they create the group roles the logins join
            ensured = ensure_logins(conn, logins, report=print)
        finally:
            close_quietly(conn)  # on a lost connection, raise the runner's error, not close()'s
    outcome = {
        "applied": result.applied,
        "alreadyApplied": result.already_applied,
        "migrationsHash": result.hash,
        "notices": result.notices,
        "logins": ensured,
    }
    if "patroni" in event:
        outcome["patroniConfigChanged"] = patroni_dynamic_config(event["patroni"], event["secretArn"])
    return outcome


def patroni_dynamic_config(target: dict[str, Any], secret_arn: str) -> list[str]:
    """Bring the Patroni cluster's dynamic config to ``target["dynamicConfig"]``; the settings it changed."""
    password = secret_json(secret_arn).get(target["passwordKey"])
    if not password:
        raise DynamicConfigError(f"secret {secret_arn} has no {target['passwordKey']!r} for the REST API")
    context = ssl.create_default_context(cadata=target["caCert"])
    changed = changed_keys(
        apply_dynamic_config(target["urls"], target["dynamicConfig"], auth=(target["user"], password), context=context)
    )
    print(f"Patroni dynamic config: {', '.join(changed) if changed else 'already as declared'}")
    return changed
