"""Connecting to PostgreSQL from a DSN, with the password from the DSN, the environment or Secrets Manager.

Pure-Python (pg8000) so the same code runs in the CLI, the lab and AWS Lambda. Passwords are
never printed: :meth:`ConnectionSettings.display` is what a person may see.
"""

from __future__ import annotations

import json
import os
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from urllib.parse import parse_qs, unquote, urlsplit

import pg8000.native

DEFAULT_USER = "postgres"
SSL_MODES = ("disable", "prefer", "require", "verify-ca", "verify-full")


class ConnectError(RuntimeError):
    """No usable server: bad DSN, unreachable hosts, no writable host, or missing password."""


@dataclass(frozen=True)
class ConnectionSettings:
    """Where and how to connect; ``hosts`` may list several for a multi-host DSN."""

    hosts: tuple[tuple[str, int], ...]
    database: str
    #: Empty means "not given": the secret's username, else ``postgres``.
    user: str = ""
    password: str | None = None
    sslmode: str = "prefer"
    sslrootcert: str | None = None
    application_name: str = "pgha"
    connect_timeout: int = 10

    def display(self) -> str:
        """The target without the password, for logs and errors."""
        hosts = ",".join(f"{h}:{p}" for h, p in self.hosts)
        return f"postgresql://{self.user or DEFAULT_USER}@{hosts}/{self.database}"


def parse_dsn(dsn: str) -> ConnectionSettings:
    """Parse a ``postgresql://`` URL or a libpq ``key=value`` string (multi-host allowed)."""
    if dsn.startswith(("postgresql://", "postgres://")):
        parts = urlsplit(dsn)
        netloc = parts.netloc.rsplit("@", 1)
        creds, hostlist = (netloc if len(netloc) == 2 else ("", netloc[0]))
        user, _, password = creds.partition(":")
        params = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        fields = {
            "host": hostlist,
            "user": unquote(user) or params.get("user", ""),
            "password": unquote(password) if password else params.get("password"),
            "dbname": unquote(parts.path.lstrip("/")) or params.get("dbname", ""),
            **{k: v for k, v in params.items() if k not in ("user", "password", "dbname")},
        }
    else:
        fields = {}
        for item in dsn.split():
            key, sep, value = item.partition("=")
            if not sep:
                raise ConnectError(f"DSN part {key!r} is not key=value")
            fields[key] = value.strip("'")
    return _settings(fields)


def _settings(fields: dict[str, str | None]) -> ConnectionSettings:
    hosts = []
    ports = str(fields.get("port") or "").split(",") if fields.get("port") else []
    for index, host in enumerate(str(fields.get("host") or "localhost").split(",")):
        name, _, port = host.rpartition(":") if host.count(":") == 1 else (host, "", "")
        default_port = ports[index] if index < len(ports) else (ports[0] if ports else "5432")
        try:
            hosts.append((name or host, int(port or default_port)))
        except ValueError:
            raise ConnectError(f"bad port in DSN host {host!r}") from None
    sslmode = fields.get("sslmode") or "prefer"
    if sslmode not in SSL_MODES:
        raise ConnectError(f"sslmode={sslmode!r}: must be one of {', '.join(SSL_MODES)}")
    return ConnectionSettings(
        hosts=tuple(hosts),
        database=fields.get("dbname") or fields.get("database") or "postgres",
        user=fields.get("user") or os.environ.get("PGUSER") or "",
        password=fields.get("password"),
        sslmode=sslmode,
        sslrootcert=fields.get("sslrootcert"),
        connect_timeout=int(fields.get("connect_timeout") or 10),
    )


def secret_credentials(secret_arn: str, region: str | None = None) -> tuple[str, str]:
    """(username, password) from a Secrets Manager secret such as the RDS-managed master secret."""
    import boto3

    if region is None and secret_arn.startswith("arn:"):
        region = secret_arn.split(":")[3]
    value = boto3.client("secretsmanager", region_name=region).get_secret_value(SecretId=secret_arn)
    try:
        secret = json.loads(value["SecretString"])
        return secret["username"], secret["password"]
    except (KeyError, ValueError):
        raise ConnectError("the secret is not JSON with username and password") from None


def resolve(settings: ConnectionSettings, secret_arn: str | None = None) -> ConnectionSettings:
    """Fill in the password: DSN first, then PGPASSWORD, then the Secrets Manager secret."""
    if settings.password:
        return settings
    if os.environ.get("PGPASSWORD"):
        return replace(settings, password=os.environ["PGPASSWORD"])
    if secret_arn:
        user, password = secret_credentials(secret_arn)
        return replace(settings, user=settings.user or user, password=password)
    return settings


def _ssl_context(settings: ConnectionSettings) -> ssl.SSLContext | bool | None:
    if settings.sslmode in ("disable", "prefer"):
        return None
    context = ssl.create_default_context(cafile=settings.sslrootcert)
    if settings.sslmode == "require":
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    elif settings.sslmode == "verify-ca":
        context.check_hostname = False
    return context


def connect(settings: ConnectionSettings, *, writable: bool = False) -> pg8000.native.Connection:
    """Open a connection to the first host that answers (and, with ``writable``, is not a standby)."""
    problems = []
    for host, port in settings.hosts:
        try:
            conn = pg8000.native.Connection(
                settings.user or DEFAULT_USER,
                host=host,
                port=port,
                database=settings.database,
                password=settings.password,
                ssl_context=_ssl_context(settings),
                timeout=settings.connect_timeout,
                application_name=settings.application_name,
            )
        except (pg8000.native.InterfaceError, pg8000.native.DatabaseError, OSError) as err:
            problems.append(f"{host}:{port}: {_safe_error(err, settings)}")
            continue
        if writable and conn.run("SELECT pg_is_in_recovery()")[0][0]:
            conn.close()
            problems.append(f"{host}:{port}: read-only standby")
            continue
        return conn
    raise ConnectError(f"cannot connect to {settings.display()}: " + "; ".join(problems))


def wait_for_writer(
    settings: ConnectionSettings, timeout: float = 600.0, interval: float = 10.0,
    sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.monotonic,
) -> pg8000.native.Connection:
    """A writable connection, retried every ``interval`` s for up to ``timeout`` s.

    A new Patroni cluster accepts connections only minutes after its instances are "running"
    (packages, bootstrap, initdb, the database created by post_bootstrap), and an RDS writer can be
    mid-failover: the schema hook waits, bounded, instead of failing on the first refusal.
    """
    deadline = clock() + timeout
    attempts = 0
    while True:
        attempts += 1
        try:
            return connect(settings, writable=True)
        except ConnectError as err:
            if "authentication failed" in str(err):  # waiting does not fix a wrong password
                raise
            if clock() + interval > deadline:
                raise ConnectError(f"no writable server at {settings.display()} after {attempts} attempts over "
                                   f"{timeout:.0f} s; last: {err}") from None
        sleep(interval)


def _safe_error(err: Exception, settings: ConnectionSettings) -> str:
    text = err.args[0].get("M", str(err)) if err.args and isinstance(err.args[0], dict) else str(err)
    return text.replace(settings.password, "***") if settings.password else text
