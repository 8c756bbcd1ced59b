"""Connecting to PostgreSQL from a DSN, with the password from the DSN, the environment or Secrets Manager.

Pure-Python (pg8000) so the same code runs in the CLI, the lab and AWS Lambda. Passwords are
never printed: :meth:`ConnectionSettings.display` is what a person may see.
"""

from __future__ import annotations

import json
import os
import re
import ssl
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from urllib.parse import parse_qs, unquote, urlsplit

import pg8000.native

DEFAULT_USER = "postgres"
SSL_MODES = ("disable", "prefer", "require", "verify-ca", "verify-full")


#: SQLSTATE class of a server refusing the client itself: pg_hba.conf, a wrong password, a refused certificate.
INVALID_AUTHORIZATION = "28"


class ConnectError(RuntimeError):
    """No usable server: bad DSN, unreachable hosts, no writable host, or missing password.

    ``refused`` is True when a server refused the client itself (SQLSTATE class 28): waiting fixes nothing.
    """

    def __init__(self, message: str, refused: bool = False):
        super().__init__(message)
        self.refused = refused


def sqlstate(err: Exception) -> str | None:
    """The SQLSTATE of a pg8000 server error, if it is one."""
    return err.args[0].get("C") if err.args and isinstance(err.args[0], dict) else None


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
    #: A client certificate and its key (PEM files), for a server that asks for one (libpq's names).
    sslcert: str | None = None
    sslkey: str | None = None
    application_name: str = "pgha"
    connect_timeout: int = 10
    #: Seconds any read may wait once connected; None = as long as a statement runs. A write probe sets it:
    #: a frozen server answers nothing, and only a client-side bound notices that.
    read_timeout: float | None = None

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
        fields = _key_values(dsn)
    return _settings(fields)


#: One libpq ``key = value`` pair: a value is single-quoted (``\'`` and ``\\`` escaped inside) or runs
#: to the next space; spaces around ``=`` are allowed, as libpq allows them.
_KEY_VALUE = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_]*)\s*=\s*('((?:[^'\\]|\\.)*)'|((?:[^\s'\\]|\\.)*))")


def _key_values(dsn: str) -> dict[str, str | None]:
    """The pairs of a libpq ``key=value`` string. An error names the key it follows, never a value
    (which may be part of a password)."""
    fields: dict[str, str | None] = {}
    position, last = 0, None
    while dsn[position:].strip():
        match = _KEY_VALUE.match(dsn, position)
        if not match:
            where = f"after {last}=" if last else "at its start"
            raise ConnectError(f"DSN is not key=value {where} (quote a value with spaces: key='a b')")
        last, quoted, bare = match[1], match[3], match[4]
        fields[last] = re.sub(r"\\(.)", r"\1", quoted if quoted is not None else bare)
        position = match.end()
    return fields


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
        sslcert=fields.get("sslcert"),
        sslkey=fields.get("sslkey"),
        connect_timeout=_connect_timeout(fields.get("connect_timeout")),
    )


def _connect_timeout(raw: str | None) -> int:
    """``connect_timeout`` in whole seconds (default 10)."""
    try:
        value = int(raw or 10)
    except ValueError:
        raise ConnectError(f"connect_timeout={raw!r}: must be whole seconds, e.g. 10") from None
    if value <= 0:
        raise ConnectError(f"connect_timeout={raw!r}: must be at least 1 second")
    return value


def secret_json(secret_arn: str, region: str | None = None) -> dict[str, str]:
    """The JSON object a Secrets Manager secret holds (e.g. the Patroni cluster's passwords)."""
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    if region is None and secret_arn.startswith("arn:"):
        region = secret_arn.split(":")[3]
    try:
        value = boto3.client("secretsmanager", region_name=region).get_secret_value(SecretId=secret_arn)
    except (BotoCoreError, ClientError) as err:
        raise ConnectError(f"cannot read secret {secret_arn}: {err}") from None
    try:
        secret = json.loads(value["SecretString"])
    except (KeyError, ValueError):
        secret = None
    if not isinstance(secret, dict):
        raise ConnectError(f"secret {secret_arn} is not a JSON object")
    return secret


def secret_credentials(secret_arn: str, region: str | None = None) -> tuple[str, str]:
    """(username, password) from a Secrets Manager secret such as the RDS-managed master secret."""
    secret = secret_json(secret_arn, region)
    try:
        return secret["username"], secret["password"]
    except KeyError:
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
    if settings.sslcert:
        context.load_cert_chain(settings.sslcert, settings.sslkey)
    return context


@contextmanager
def client_certificate(settings: ConnectionSettings, secret_arn: str | None) -> Iterator[ConnectionSettings]:
    """``settings`` presenting the client certificate a Secrets Manager secret holds (JSON: ca, cert, key) and
    verifying the server against its CA, while the block runs; ``settings`` unchanged without a secret.

    A Patroni node admits its superuser from outside the members only with such a certificate. Python's ssl
    loads keys from files only, so the PEMs live in a private temporary directory that the block removes.
    """
    if not secret_arn:
        yield settings
        return
    material = secret_json(secret_arn)
    missing = [k for k in ("ca", "cert", "key") if not material.get(k)]
    if missing:
        raise ConnectError(f"secret {secret_arn} lacks {', '.join(missing)}")
    with tempfile.TemporaryDirectory(prefix="pgha-client-tls-") as directory:
        paths = {}
        for name in ("ca", "cert", "key"):
            paths[name] = os.path.join(directory, f"{name}.pem")
            descriptor = os.open(paths[name], os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(descriptor, "w") as handle:
                handle.write(material[name])
        yield replace(settings, sslmode="verify-ca", sslrootcert=paths["ca"], sslcert=paths["cert"],
                      sslkey=paths["key"])


def connect(settings: ConnectionSettings, *, writable: bool = False) -> pg8000.native.Connection:
    """Open a connection to the first host that answers (and, with ``writable``, is not a standby)."""
    return connect_pinned(settings, writable=writable)[0]


def connect_pinned(
    settings: ConnectionSettings, *, writable: bool = False
) -> tuple[pg8000.native.Connection, ConnectionSettings]:
    """Like :func:`connect`, and also the settings narrowed to the host it reached.

    A second connection to the same server (e.g. the runner watching its own lock waits) must
    not land on another host of a multi-host DSN.

    ``connect_timeout`` bounds connecting only (TCP, TLS, authentication): pg8000 applies its
    ``timeout`` to every socket read, so once connected the socket waits as long as a statement
    runs (bounded by ``statement_timeout`` on the server, and TCP keepalives) unless ``read_timeout`` is set.
    """
    problems, refused = [], False
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
            conn._usock.settimeout(settings.read_timeout)  # pg8000 1.31 keeps the (TLS) socket here; see above
        except (pg8000.native.InterfaceError, pg8000.native.DatabaseError, OSError) as err:
            problems.append(f"{host}:{port}: {_safe_error(err, settings)}")
            refused = refused or (sqlstate(err) or "").startswith(INVALID_AUTHORIZATION)
            continue
        if writable and conn.run("SELECT pg_is_in_recovery()")[0][0]:
            conn.close()
            problems.append(f"{host}:{port}: read-only standby")
            continue
        return conn, replace(settings, hosts=((host, port),))
    raise ConnectError(f"cannot connect to {settings.display()}: " + "; ".join(problems), refused=refused)


def wait_for_writer(
    settings: ConnectionSettings, timeout: float = 600.0, interval: float = 10.0,
    sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.monotonic,
) -> tuple[pg8000.native.Connection, ConnectionSettings]:
    """A writable connection (and the settings pinned to its host, as :func:`connect_pinned`), retried every
    ``interval`` s for up to ``timeout`` s.

    A new Patroni cluster accepts connections only minutes after its instances are "running"
    (packages, bootstrap, initdb, the database created by post_bootstrap), and an RDS writer can be
    mid-failover: the schema hook waits, bounded, instead of failing on the first refusal.
    """
    deadline = clock() + timeout
    attempts = 0
    while True:
        attempts += 1
        try:
            return connect_pinned(settings, writable=True)
        except ConnectError as err:
            if err.refused:  # a wrong password or certificate, or pg_hba.conf: waiting fixes none of them
                raise
            if clock() + interval > deadline:
                raise ConnectError(f"no writable server at {settings.display()} after {attempts} attempts over "
                                   f"{timeout:.0f} s; last: {err}") from None
        sleep(interval)


def _safe_error(err: Exception, settings: ConnectionSettings) -> str:
    text = err.args[0].get("M", str(err)) if err.args and isinstance(err.args[0], dict) else str(err)
    return text.replace(settings.password, "***") if settings.password else text
