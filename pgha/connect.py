"""Connecting to PostgreSQL from a DSN, with the password from the DSN, Secrets Manager or the environment.

Pure-Python (pg8000) so the same code runs in the CLI, the lab and AWS Lambda. Passwords are
never printed: :meth:`ConnectionSettings.display` is what a person may see, and an error about a DSN
names the problem, never the DSN's text.

``sslmode`` means what it means to libpq: ``disable`` never uses TLS; ``prefer`` (the default) uses TLS
without verifying the server when the server offers it and plain text only when it does not; ``require``
insists on TLS without verifying; ``verify-ca`` also verifies the server's certificate against
``sslrootcert`` (or the system CAs), and ``verify-full`` its host name too.
"""

from __future__ import annotations

import os
import re
import ssl
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, replace
from urllib.parse import unquote, urlsplit

import pg8000.native

from pgha.secret_store import SecretError, read_secret_json, region_of, secrets_client

DEFAULT_USER = "postgres"
SSL_MODES = ("disable", "prefer", "require", "verify-ca", "verify-full")
#: ``target_session_attrs`` values pgha accepts: it always connects to the writable host (every command that
#: takes a DSN writes), which is what ``read-write`` and ``primary`` ask for and a stricter ``any``.
TARGET_SESSION_ATTRS = ("read-write", "primary", "any")
#: The DSN settings pgha honours (libpq's names; ``database`` is pg8000's for ``dbname``). Any other is
#: refused, as libpq refuses an unknown one, instead of being silently ignored.
DSN_SETTINGS = (
    "host",
    "port",
    "dbname",
    "database",
    "user",
    "password",
    "sslmode",
    "sslrootcert",
    "sslcert",
    "sslkey",
    "connect_timeout",
    "target_session_attrs",
)
#: The host when a DSN names none or leaves a host of its list empty: pg8000 speaks TCP only, so libpq's
#: default (the Unix socket) is localhost here.
DEFAULT_HOST = "localhost"


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
    #: Empty means "not given": the secret's username when a secret supplies the password, else
    #: ``PGUSER``, else ``postgres`` (:func:`default_user`).
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
        """The target without the password, for logs and errors (an IPv6 address in brackets, as in a URL)."""
        hosts = ",".join(f"[{h}]:{p}" if ":" in h else f"{h}:{p}" for h, p in self.hosts)
        return f"postgresql://{self.user or default_user()}@{hosts}/{self.database}"


def default_user() -> str:
    """The user when neither the DSN nor a secret names one: ``PGUSER``, else ``postgres``, as libpq.

    Read when connecting, not when parsing, so that a secret's username comes before it (see :func:`resolve`).
    """
    return os.environ.get("PGUSER") or DEFAULT_USER


#: What a URL DSN whose password holds an unencoded ``/``, ``#`` or ``?`` is told (and nothing of the DSN).
UNENCODED_PASSWORD = (
    "the DSN's password contains one of / # ? unencoded, which cuts a postgresql:// URL short: "
    "percent-encode it (/ as %2F, # as %23, ? as %3F), or give the password with --secret-arn "
    "or PGPASSWORD"
)


def parse_dsn(dsn: str) -> ConnectionSettings:
    """Parse a ``postgresql://`` URL or a libpq ``key=value`` string (multi-host allowed).

    Only the settings pgha honours are accepted (:data:`DSN_SETTINGS`), as libpq refuses an unknown one: a
    misspelled ``sslmdoe=verify-full`` must not connect unverified. Errors never quote the DSN: a mistyped
    URL can put part of the password where a host, port or setting belongs.
    """
    if dsn.startswith(("postgresql://", "postgres://")):
        if _password_cut_short(dsn):
            raise ConnectError(UNENCODED_PASSWORD)
        try:
            parts = urlsplit(dsn)
        except ValueError:  # urlsplit's own check of a bracketed [address]; its message may quote the netloc
            raise ConnectError(
                "the DSN's host list is not valid: an IPv6 address goes in brackets, "
                "e.g. postgresql://user@[::1]:5432/db"
            ) from None
        netloc = parts.netloc.rsplit("@", 1)
        creds, hostlist = netloc if len(netloc) == 2 else ("", netloc[0])
        user, _, password = creds.partition(":")
        # an @ after the ? may mean an unencoded ? in the password moved part of it into the query (and
        # the user and the start of the password into the host list): errors then name no key, host or port
        suspect = "@" in parts.query
        _hosts(hostlist, "", url_hosts=True, may_hold_password=suspect)  # first: the likelier error there
        params = _query(parts.query, may_hold_password=suspect)
        fields: dict[str, str | None] = {
            "host": hostlist,
            "user": unquote(user) or params.get("user", ""),
            "password": unquote(password) if password else params.get("password"),
            "dbname": unquote(parts.path.lstrip("/")) or params.get("dbname", ""),
            **{k: v for k, v in params.items() if k not in ("user", "password", "dbname")},
        }
        # a host list from the URL itself takes [IPv6] in brackets; one from ?host= is plain, as in key=value
        return _settings(fields, url_hosts="host" not in params, may_hold_password=suspect)
    return _settings(_key_values(dsn), url_hosts=False, may_hold_password=False)


def _password_cut_short(dsn: str) -> bool:
    """True when a URL's user info runs past its authority: an unencoded ``/``, ``#`` or ``?`` in the password
    ends the authority early (``//user:pa/ss@host``), so an ``@`` comes after it.

    An ``@`` in a query value (``?user=me@corp``) is not that: a ``=`` comes before it.
    """
    rest = dsn.split("//", 1)[1]
    end = re.search(r"[/?#]", rest)
    before_at, at, _ = rest[end.start() :].partition("@") if end else ("", "", "")
    return bool(at) and "=" not in before_at


#: One libpq ``key = value`` pair: a value is single-quoted (``\'`` and ``\\`` escaped inside) or runs
#: to the next space; spaces around ``=`` are allowed, as libpq allows them.
_KEY_VALUE = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_]*)\s*=\s*('((?:[^'\\]|\\.)*)'|((?:[^\s'\\]|\\.)*))")


def _key_values(dsn: str) -> dict[str, str | None]:
    """The pairs of a libpq ``key=value`` string. An error names the key it follows, never a value
    (which may be part of a password)."""
    fields: dict[str, str | None] = {}
    position, last, after_bare_password = 0, None, False
    while dsn[position:].strip():
        match = _KEY_VALUE.match(dsn, position)
        if not match:
            where = f"after {last}=" if last else "at its start"
            raise ConnectError(f"DSN is not key=value {where} (quote a value with spaces: key='a b')")
        key, quoted, bare = match[1], match[3], match[4]
        if key not in DSN_SETTINGS:
            # after an unquoted password, the "key" may be the rest of a password with a space: not named then
            raise ConnectError(
                _unknown_setting(
                    None if after_bare_password else key,
                    "after password= (quote a password with spaces: password='a b')",
                )
            )
        last, after_bare_password = key, key == "password" and quoted is None
        fields[key] = re.sub(r"\\(.)", r"\1", quoted if quoted is not None else bare)
        position = match.end()
    return fields


def _query(query: str, may_hold_password: bool) -> dict[str, str]:
    """The settings of a URL's query, percent-decoded as libpq decodes them (``+`` stays ``+``); the last of a
    repeated key wins. An unknown key, or one without ``=``, is refused naming the key unless
    ``may_hold_password`` (the key could then be part of a password)."""
    params: dict[str, str] = {}
    for pair in query.split("&") if query else []:
        raw_key, sep, raw_value = pair.partition("=")
        key = unquote(raw_key)
        if not sep or key not in DSN_SETTINGS:
            hint = (
                "in the URL's query, which has an @ after its ?: if the password contains ? unencoded, "
                "percent-encode it as %3F"
            )
            named = None if may_hold_password else key
            if not sep and named is not None:
                raise ConnectError(
                    f"DSN setting {named!r} has no value: the URL's query takes key=value pairs joined by &"
                )
            raise ConnectError(_unknown_setting(named, hint))
        params[key] = unquote(raw_value)
    return params


def _unknown_setting(key: str | None, hint: str) -> str:
    """The error for a DSN setting pgha does not know: the key (when it cannot be a password's fragment, else
    ``hint`` says where it is), and the settings it knows."""
    what = f"unknown DSN setting {key!r}" if key is not None else f"an unknown DSN setting {hint}"
    return f"{what}; pgha understands {', '.join(DSN_SETTINGS)}"


def _port(text: str, what: str, may_hold_password: bool) -> int:
    """A TCP port, 1-65535 (digits only: int() would also take ``+5``, ``-1`` and non-ASCII digits). The
    error names ``what`` (e.g. "host 2") and, unless it may be a password's fragment, the text."""
    if re.fullmatch(r"[0-9]{1,5}", text) and 1 <= int(text) <= 65535:
        return int(text)
    if may_hold_password:  # not the text: in a URL whose password holds an unencoded / # ?, it is the password
        raise ConnectError(
            f"bad port for {what} of the DSN: a port is a number from 1 to 65535 (in a "
            "postgresql:// URL, a password containing / # ? must be percent-encoded)"
        )
    raise ConnectError(f"bad port {text!r} for {what} of the DSN: a port is a number from 1 to 65535")


def _host_entry(entry: str, index: int, url: bool) -> tuple[str, str | None]:
    """(host, port text or None) of one entry of a host list: ``host``, ``host:port``, ``[IPv6]``,
    ``[IPv6]:port``, ``:port``; in key=value form also a bare IPv6 address (``::1``), as libpq takes it.
    An empty host is :data:`DEFAULT_HOST`, as libpq uses its default host for one."""
    if entry.startswith("["):
        address, bracket, rest = entry[1:].partition("]")
        if not bracket or not address or (rest and not rest.startswith(":")):
            raise ConnectError(f"host {index} of the DSN: an IPv6 address is written [address] or [address]:port")
        return unquote(address), rest[1:] if rest else None  # a URL percent-encodes a zone: [fe80::1%25eth0]
    if entry.count(":") > 1:
        if url:
            raise ConnectError(
                f"host {index} of the DSN: an IPv6 address in a postgresql:// URL goes in brackets, e.g. [::1]:5432"
            )
        return entry, None
    name, colon, port = entry.partition(":")
    return (unquote(name) if url else name) or DEFAULT_HOST, port if colon else None


def _hosts(host_list: str, port_list: str, url_hosts: bool, may_hold_password: bool) -> tuple[tuple[str, int], ...]:
    """(host, port) pairs of a host list and a ``port=`` list (one port for all hosts, or one per host; an
    empty entry is 5432, an empty host :data:`DEFAULT_HOST`); a port given with its host wins."""
    ports = (
        [_port(p, f"entry {n + 1} of port=", False) if p else 5432 for n, p in enumerate(port_list.split(","))]
        if port_list
        else []
    )
    hosts = []
    for index, entry in enumerate((host_list or DEFAULT_HOST).split(",")):
        name, port = _host_entry(entry, index + 1, url_hosts)
        default_port = ports[index] if index < len(ports) else (ports[0] if ports else 5432)
        hosts.append((name, _port(port, f"host {index + 1}", may_hold_password) if port else default_port))
    return tuple(hosts)


def _settings(fields: dict[str, str | None], url_hosts: bool, may_hold_password: bool) -> ConnectionSettings:
    """Settings from a DSN's parsed fields (keys already checked against :data:`DSN_SETTINGS`); each value is
    checked here, naming the setting and its value (never the password's; a host's port not when
    ``may_hold_password``). ``url_hosts``: the host list is a URL's, where an IPv6 address is bracketed."""
    hosts = _hosts(str(fields.get("host") or ""), str(fields.get("port") or ""), url_hosts, may_hold_password)
    sslmode = fields.get("sslmode", "prefer")
    if sslmode not in SSL_MODES:
        raise ConnectError(f"sslmode={sslmode!r}: must be one of {', '.join(SSL_MODES)}")
    attrs = fields.get("target_session_attrs", "any")
    if attrs not in TARGET_SESSION_ATTRS:
        raise ConnectError(
            f"target_session_attrs={attrs!r}: pgha always connects to the writable host; "
            f"use one of {', '.join(TARGET_SESSION_ATTRS)} (the lab's writer DSN, not its reader DSN)"
        )
    return ConnectionSettings(
        hosts=hosts,
        database=fields.get("dbname") or fields.get("database") or "postgres",
        user=fields.get("user") or "",
        password=fields.get("password"),
        sslmode=sslmode,
        sslrootcert=fields.get("sslrootcert") or None,
        sslcert=fields.get("sslcert") or None,
        sslkey=fields.get("sslkey") or None,
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
    """The JSON object a Secrets Manager secret holds (e.g. the Patroni cluster's passwords); ConnectError
    when it cannot be read (:func:`pgha.secret_store.read_secret_json`)."""
    try:
        return read_secret_json(secret_arn, secrets_client(region or region_of(secret_arn)))
    except SecretError as err:
        raise ConnectError(str(err)) from None


#: The error codes of a read IAM has not allowed (yet): Secrets Manager's own, and KMS's through it.
ACCESS_DENIED = ("AccessDeniedException", "AccessDenied")
#: Seconds between two tries of a denied secret read.
SECRET_RETRY_INTERVAL = 5.0


def wait_for_secret_access(secret_arns: list[str], timeout: float, clock: Callable[[], float] = time.monotonic) -> None:
    """Return once every secret can be read; refused reads are retried for ``timeout`` seconds.

    IAM is eventually consistent: a policy attached seconds before (the schema hook's first run after
    ``pulumi up`` made its role) can still be denied for a while. Any other error, or a denial that
    outlasts ``timeout``, raises :class:`ConnectError` naming the secret.
    """
    from botocore.exceptions import BotoCoreError, ClientError

    deadline = clock() + timeout
    for arn in secret_arns:
        client = secrets_client(region_of(arn))
        while True:
            try:
                client.get_secret_value(SecretId=arn)
                break
            except ClientError as err:
                code = err.response.get("Error", {}).get("Code", "")
                if code not in ACCESS_DENIED or clock() >= deadline:
                    waited = f" (still denied after {timeout:g} s)" if code in ACCESS_DENIED else ""
                    raise ConnectError(f"cannot read secret {arn}{waited}: {err}") from None
            except BotoCoreError as err:
                raise ConnectError(f"cannot read secret {arn}: {err}") from None
            time.sleep(min(SECRET_RETRY_INTERVAL, max(0.0, deadline - clock())))


def secret_credentials(secret_arn: str, region: str | None = None) -> tuple[str, str]:
    """(username, password) from a Secrets Manager secret such as the RDS-managed master secret."""
    secret = secret_json(secret_arn, region)
    try:
        return secret["username"], secret["password"]
    except KeyError:
        raise ConnectError("the secret is not JSON with username and password") from None


def resolve(settings: ConnectionSettings, secret_arn: str | None = None) -> ConnectionSettings:
    """Fill in the password: the DSN's first, then the Secrets Manager secret given, then ``PGPASSWORD``.

    A secret named explicitly (``--secret-arn``, the Lambda's event) wins over an ambient ``PGPASSWORD``, and
    then its ``username`` is the user unless the DSN names one: its password belongs to that user.
    """
    if settings.password:
        return settings
    if secret_arn:
        user, password = secret_credentials(secret_arn)
        return replace(settings, user=settings.user or user, password=password)
    if os.environ.get("PGPASSWORD"):
        return replace(settings, password=os.environ["PGPASSWORD"])
    return settings


#: What pg8000 1.31 raises (an InterfaceError with this one argument, socket closed) when it asked for TLS with
#: an SSL context and the server answered 'N': it offers no TLS (``ssl = off``).
_SERVER_REFUSES_SSL = ("Server refuses SSL",)


def _server_refuses_ssl(err: Exception) -> bool:
    """True when ``err`` is pg8000 saying the server offers no TLS, and nothing else (not a failed handshake)."""
    return isinstance(err, pg8000.native.InterfaceError) and err.args == _SERVER_REFUSES_SSL


def _ssl_context(settings: ConnectionSettings) -> ssl.SSLContext | bool:
    """What pg8000 takes for ``sslmode``: False for no TLS, else the context to wrap the socket with.

    Never None: pg8000 then negotiates TLS on its own whenever the server offers it, even for ``disable``,
    and without the client certificate.
    """
    if settings.sslmode == "disable":
        return False
    if settings.sslmode == "prefer":
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        if settings.sslcert:
            context.load_cert_chain(settings.sslcert, settings.sslkey)
        return context
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
        yield replace(
            settings, sslmode="verify-ca", sslrootcert=paths["ca"], sslcert=paths["cert"], sslkey=paths["key"]
        )


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
            conn = _open(settings, host, port)
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


def _open(settings: ConnectionSettings, host: str, port: int) -> pg8000.native.Connection:
    """One connection to ``host:port``; with ``prefer``, TLS when the server offers it, else (only then) plain."""

    def attempt(ssl_context: ssl.SSLContext | bool) -> pg8000.native.Connection:
        conn = pg8000.native.Connection(
            settings.user or default_user(),
            host=host,
            port=port,
            database=settings.database,
            password=settings.password,
            ssl_context=ssl_context,
            timeout=settings.connect_timeout,
            application_name=settings.application_name,
        )
        conn._usock.settimeout(settings.read_timeout)  # pg8000 1.31 keeps the (TLS) socket here; see connect_pinned
        return conn

    try:
        return attempt(_ssl_context(settings))
    except pg8000.native.InterfaceError as err:
        if settings.sslmode != "prefer" or not _server_refuses_ssl(err):
            raise
    return attempt(False)  # libpq's prefer: the server offers no TLS, so plain text on a new connection


#: What a query can raise when its connection breaks. pg8000 wraps most socket errors in InterfaceError, but
#: not one from the first read of a reply: a connection reset while the server works on a statement (a
#: failover, a load balancer dropping it) arrives as a bare ConnectionResetError.
CONNECTION_LOST_ERRORS = (pg8000.native.InterfaceError, OSError)
#: Everything a query can raise: a server error, or the connection lost.
QUERY_ERRORS = (pg8000.native.Error, OSError)


def close_quietly(conn: pg8000.native.Connection) -> None:
    """Close ``conn``, ignoring that it is already broken or closed: closing is cleanup, never the error to show."""
    with suppress(*QUERY_ERRORS):
        conn.close()


def run_quietly(conn: pg8000.native.Connection, sql: str) -> None:
    """Run ``sql`` if the connection allows: cleanup after an error (a ROLLBACK), whose own failure on a
    broken connection must not replace the error being raised."""
    with suppress(*QUERY_ERRORS):
        conn.run(sql)


def wait_for_writer(
    settings: ConnectionSettings,
    timeout: float = 600.0,
    interval: float = 10.0,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
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
                raise ConnectError(
                    f"no writable server at {settings.display()} after {attempts} attempts over "
                    f"{timeout:.0f} s; last: {err}"
                ) from None
        sleep(interval)


def _safe_error(err: Exception, settings: ConnectionSettings) -> str:
    """What a person may read of a failed connection: the server's message, without the password."""
    if _server_refuses_ssl(err):
        return f"the server does not offer TLS, which sslmode={settings.sslmode} requires"
    text = err.args[0].get("M", str(err)) if err.args and isinstance(err.args[0], dict) else str(err)
    return text.replace(settings.password, "***") if settings.password else text
