"""DSN parsing, password resolution and sslmode for the runner, the lab and the Lambda hook."""

from __future__ import annotations

import contextlib
import json
import socket
import struct
import threading
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

from pgha.connect import ConnectError, ConnectionSettings, connect, parse_dsn, resolve, wait_for_writer
from pgha.lab.tls import Issued, issue, new_ca
from pgha.local import PostgresServer, free_port, give_to_service_user


def test_url_with_several_hosts_and_percent_encoded_password() -> None:
    settings = parse_dsn("postgresql://admin:p%40ss@h1:5432,h2:6543,h3/app?sslmode=require")
    assert settings.hosts == (("h1", 5432), ("h2", 6543), ("h3", 5432))
    assert (settings.user, settings.password, settings.database, settings.sslmode) == (
        "admin",
        "p@ss",
        "app",
        "require",
    )
    assert "p@ss" not in settings.display() and settings.display() == "postgresql://admin@h1:5432,h2:6543,h3:5432/app"


def test_libpq_key_value_with_a_port_list() -> None:
    settings = parse_dsn("host=a,b port=5432,5433 dbname=app user=me sslmode=disable")
    assert settings.hosts == (("a", 5432), ("b", 5433))
    assert settings.password is None and settings.user == "me"


def test_libpq_quoted_values_keep_their_spaces_and_escapes() -> None:
    settings = parse_dsn(r"host = db1 dbname=app password='s3cret with \'quote\' and \\' user=me")
    assert settings.password == "s3cret with 'quote' and \\"
    assert (settings.hosts, settings.database, settings.user) == ((("db1", 5432),), "app", "me")


@pytest.mark.parametrize(
    ("dsn", "message"),
    [
        ("postgresql://u@h/db?sslmode=maybe", "sslmode='maybe'"),
        ("host=a port=five", "bad port"),
        ("hostonly", "not key=value"),
        ("host=a connect_timeout=soon", "connect_timeout='soon': must be whole seconds"),
    ],
)
def test_bad_dsns_are_named(dsn: str, message: str) -> None:
    with pytest.raises(ConnectError, match=message):
        parse_dsn(dsn)


@pytest.mark.parametrize(
    ("dsn", "key"),
    [
        ("postgresql://u:S3cretPw@127.0.0.1/app?sslmdoe=verify-full", "sslmdoe"),
        ("postgresql://u:S3cretPw@127.0.0.1/app?sslmode=require&ssl_mode=verify-full", "ssl_mode"),
        ("postgresql://u:S3cretPw@h/app?foo=bar", "foo"),
        ("postgresql://u:S3cretPw@h/app?application_name=mine", "application_name"),
        ("host=h sslmdoe=verify-full password=S3cretPw", "sslmdoe"),
        ("host=h password='S3cretPw' hostaddr=10.0.0.1", "hostaddr"),
    ],
)
def test_an_unknown_or_misspelled_setting_is_refused_naming_it(dsn: str, key: str) -> None:
    """libpq refuses an unknown setting ("invalid URI query parameter"); ignoring it meant a misspelled
    sslmdoe=verify-full connected with the default, prefer: TLS without verifying the server."""
    with pytest.raises(ConnectError, match=rf"unknown DSN setting '{key}'; pgha understands .*sslmode") as raised:
        parse_dsn(dsn)
    assert "S3cretPw" not in str(raised.value)


@pytest.mark.parametrize(
    ("dsn", "message"),
    [
        ("postgresql://u@h/app?sslmode=", "sslmode='': must be one of disable, prefer"),
        ("host=h sslmode=", "sslmode='': must be one of"),
        (
            "postgresql://u@h/app?target_session_attrs=bogus",
            "target_session_attrs='bogus': pgha always connects to the writable host; use one of read-write",
        ),
        ("postgresql://u@h/app?target_session_attrs=prefer-standby", "target_session_attrs='prefer-standby'"),
        ("host=h target_session_attrs=", "target_session_attrs=''"),
        ("postgresql://u@h/app?sslmode", "DSN setting 'sslmode' has no value"),
    ],
)
def test_an_empty_or_invalid_value_is_refused_naming_the_setting(dsn: str, message: str) -> None:
    with pytest.raises(ConnectError, match=message):
        parse_dsn(dsn)


def test_the_labs_writer_dsn_and_libpq_query_decoding_are_accepted() -> None:
    writer = parse_dsn(
        "postgresql://postgres@127.0.1.1:5432,127.0.1.2:5432/app?sslmode=require"
        "&target_session_attrs=read-write&password=a+b%20c"
    )
    assert (writer.sslmode, writer.password) == ("require", "a+b c"), "as libpq decodes it: + is not a space"


@pytest.mark.parametrize(
    "dsn",
    [
        "host=h password=Open Sesame=XYZ",  # an unquoted password with a space: "Sesame" is not a key
        "postgresql://u:Open?Sesame=XYZ@h:5432/app",  # an unencoded ? in the password: the rest reads as a query
        "postgresql://u:12345?Sesame=XYZ@h/app",
    ],
)
def test_an_unknown_setting_that_may_be_part_of_a_password_is_not_named(dsn: str) -> None:
    with pytest.raises(ConnectError, match=r"unknown DSN setting|bad port") as raised:
        parse_dsn(dsn)
    for fragment in ("Open", "Sesame", "XYZ", "12345"):
        assert fragment not in str(raised.value)


def test_bracketed_ipv6_hosts_in_a_url_and_bare_ones_in_key_value() -> None:
    settings = parse_dsn("postgresql://postgres@[::1]:5433,[2001:db8::7],[fe80::1%25eth0]:6000,h4/app")
    assert settings.hosts == (("::1", 5433), ("2001:db8::7", 5432), ("fe80::1%eth0", 6000), ("h4", 5432))
    assert settings.display() == ("postgresql://postgres@[::1]:5433,[2001:db8::7]:5432,[fe80::1%eth0]:6000,h4:5432/app")
    assert parse_dsn("host=::1,h2 port=5433,5434").hosts == (("::1", 5433), ("h2", 5434))
    with pytest.raises(
        ConnectError,
        match="host 1 of the DSN: an IPv6 address in a postgresql:// URL goes in "
        r"brackets, e.g. \[::1\]:5432",
    ):
        parse_dsn("postgresql://postgres@::1:5432/app")
    with pytest.raises(ConnectError, match=r"host 2 of the DSN: an IPv6 address is written \[address\]"):
        parse_dsn("host=h1,[::1]5432")
    with pytest.raises(ConnectError, match="an IPv6 address goes in brackets"):
        parse_dsn("postgresql://postgres@h1,[::1/app")


def test_an_empty_host_is_the_default_host_as_in_libpq() -> None:
    assert parse_dsn("postgresql://postgres@:5433/app").hosts == (("localhost", 5433),)
    assert parse_dsn("postgresql://postgres@/app").hosts == (("localhost", 5432),)
    assert parse_dsn("postgresql://postgres@h1,:5433/app").hosts == (("h1", 5432), ("localhost", 5433))


@pytest.mark.parametrize(
    ("dsn", "message"),
    [
        ("postgresql://u@h:-1/app", "bad port '-1' for host 1"),
        ("postgresql://u@h1,h2:99999/app", "bad port '99999' for host 2"),
        ("postgresql://u@h:0/app", "bad port '0' for host 1"),
        ("postgresql://u@h:65536/app", "bad port '65536' for host 1"),
        ("postgresql://u@h/app?port=70000", "bad port '70000' for entry 1 of port="),
        ("host=h port=5432,-1", "bad port '-1' for entry 2 of port="),
    ],
)
def test_a_port_outside_1_to_65535_is_refused_naming_it(dsn: str, message: str) -> None:
    with pytest.raises(ConnectError, match=f"{message} of the DSN: a port is a number from 1 to 65535"):
        parse_dsn(dsn)


def test_an_ipv6_url_connects_to_that_address_and_port() -> None:
    """``[::1]:5432`` was read as host "[::1]:5432" with port 5432 ("cannot connect to ...:5432:5432")."""
    listener = socket.create_server(("::1", 0), family=socket.AF_INET6)
    port = listener.getsockname()[1]
    accepted: list[bytes] = []

    def serve() -> None:
        with listener:
            listener.settimeout(5)
            with contextlib.suppress(OSError):
                peer, _ = listener.accept()
                with peer:
                    accepted.append(peer.recv(8))  # the startup message's length and protocol; then hang up

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    settings = replace(parse_dsn(f"postgresql://postgres:x@[::1]:{port}/app?sslmode=disable"), connect_timeout=2)
    with pytest.raises(
        ConnectError,
        match=rf"cannot connect to postgresql://postgres@\[::1\]:{port}/app: "
        rf"::1:{port}: ",
    ):
        connect(settings)
    thread.join(timeout=10)
    assert len(accepted) == 1 and accepted[0][4:] == struct.pack("!i", 196608), "a startup message reached [::1]"


@pytest.mark.parametrize("character", ["/", "#", "?"])
def test_an_unencoded_slash_hash_or_question_mark_in_a_url_password_is_named_without_echoing_it(character: str) -> None:
    """urlsplit ends the netloc at the first / # ?, so "user:pa" became a host with a bad port, and the error
    printed it: the user and the start of the password."""
    dsn = f"postgresql://pgha_admin:Xy7q{character}Zr9Kp2w@db.example.internal:5432/app?sslmode=require"
    with pytest.raises(ConnectError, match=r"password contains one of / # \? .*percent-encode") as raised:
        parse_dsn(dsn)
    message = str(raised.value)
    for fragment in ("pgha_admin", "Xy7q", "Zr9Kp2w", "db.example", "Xy7q" + character):
        assert fragment not in message
    with pytest.raises(ConnectError, match=r"password contains one of / # \? ") as raised:
        parse_dsn(f"postgresql://pgha_admin:Xy@7q{character}Zr9Kp2w@db.example.internal/app")  # an @ of its own
    assert "7q" not in str(raised.value) and "Xy" not in str(raised.value)


def test_an_at_sign_in_a_query_value_is_not_taken_for_a_cut_short_password() -> None:
    settings = parse_dsn("postgresql://db1:5433/app?user=admin@corp&sslmode=require")
    assert (settings.hosts, settings.user, settings.sslmode) == ((("db1", 5433),), "admin@corp", "require")
    encoded = parse_dsn("postgresql://u:Xy7q%2FZr%23K%3Fw@db1/app")
    assert (encoded.user, encoded.password, encoded.hosts) == ("u", "Xy7q/Zr#K?w", (("db1", 5432),))


def test_a_bad_port_error_does_not_quote_the_host_text() -> None:
    """A password like ``Xy7q?a=b`` reads as a query (so is not caught as cut short), and its start lands in the
    host list: never print that."""
    with pytest.raises(ConnectError, match="bad port for host 1 of the DSN") as raised:
        parse_dsn("postgresql://pgha_admin:Xy7q?a=b@db.example.internal/app")
    assert "pgha_admin" not in str(raised.value) and "Xy" not in str(raised.value)


def test_a_bad_dsn_error_never_shows_a_password_fragment() -> None:
    with pytest.raises(ConnectError, match="after password=") as raised:
        parse_dsn("host=a password=open sesame-XYZ dbname=app")
    assert "sesame" not in str(raised.value)


@mock_aws
def test_an_unreadable_secret_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PGPASSWORD", raising=False)
    arn = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:missing-AbCdEf"
    with pytest.raises(ConnectError, match=f"cannot read secret {arn}: .*ResourceNotFoundException"):
        resolve(parse_dsn("postgresql://u@h/app"), secret_arn=arn)


def _secret(username: str, password: str) -> str:
    return boto3.client("secretsmanager", region_name="eu-west-1").create_secret(
        Name="rds!db-x", SecretString=json.dumps({"username": username, "password": password})
    )["ARN"]


@mock_aws
def test_a_secret_given_explicitly_wins_over_pgpassword_with_its_username(monkeypatch: pytest.MonkeyPatch) -> None:
    """``--secret-arn`` is an explicit choice, PGPASSWORD an ambient one: the secret's password, and the user it
    belongs to, are used (PGPASSWORD used to win, and the user fell back to postgres)."""
    monkeypatch.setenv("PGPASSWORD", "from-env")
    monkeypatch.setenv("PGUSER", "from-env-user")
    arn = _secret("pgha_admin", "s3cret")
    resolved = resolve(parse_dsn("postgresql://h/app"), secret_arn=arn)
    assert (resolved.user, resolved.password) == ("pgha_admin", "s3cret")
    named = resolve(parse_dsn("postgresql://someone@h/app"), secret_arn=arn)
    assert (named.user, named.password) == ("someone", "s3cret"), "a user named in the DSN is kept"
    assert resolve(parse_dsn("postgresql://u:in-dsn@h/app"), secret_arn=arn).password == "in-dsn", "the DSN first"


def test_without_a_secret_pgpassword_and_pguser_still_apply(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PGPASSWORD", "from-env")
    monkeypatch.setenv("PGUSER", "env-user")
    resolved = resolve(parse_dsn("postgresql://h/db"))
    assert resolved.password == "from-env"
    assert resolved.display() == "postgresql://env-user@h:5432/db"
    monkeypatch.delenv("PGUSER")
    assert resolve(parse_dsn("postgresql://h/db")).display() == "postgresql://postgres@h:5432/db"


def test_pgpassword_authenticates_against_a_real_server(postgres, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PGPASSWORD", postgres.password)
    conn = connect(resolve(parse_dsn(postgres.dsn(with_password=False))))
    assert conn.run("SELECT current_user") == [[postgres.superuser]]
    conn.close()


@mock_aws
def test_secret_supplies_user_and_password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PGPASSWORD", raising=False)
    monkeypatch.delenv("PGUSER", raising=False)
    arn = _secret("pgha_admin", "s3cret")
    resolved = resolve(ConnectionSettings(hosts=(("h", 5432),), database="app"), secret_arn=arn)
    assert (resolved.user, resolved.password) == ("pgha_admin", "s3cret")
    named = resolve(parse_dsn("postgresql://someone@h/app"), secret_arn=arn)
    assert named.user == "someone", "a user named in the DSN is kept"


def test_waiting_for_a_writer_that_never_answers_ends_with_a_clear_error() -> None:
    port = free_port("127.0.0.1")  # nobody listens there
    settings = ConnectionSettings(hosts=(("127.0.0.1", port),), database="app", password="x", connect_timeout=1)
    now = [0.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    with pytest.raises(ConnectError, match=rf"no writable server at .*:{port}/app after 4 attempts over 30 s; last: "):
        wait_for_writer(settings, timeout=30, interval=10, sleep=sleep, clock=lambda: now[0])
    assert slept == [10, 10, 10]


def test_waiting_for_a_writer_returns_once_it_answers(postgres) -> None:
    calls = []

    def sleep(seconds: float) -> None:
        calls.append(seconds)

    conn, pinned = wait_for_writer(postgres.settings(), timeout=5, interval=1, sleep=sleep)
    assert pinned.hosts == postgres.settings().hosts[:1]
    assert conn.run("SELECT pg_is_in_recovery()")[0][0] is False and calls == []
    conn.close()


def test_waiting_for_a_writer_stops_at_once_when_the_server_refuses_the_client(postgres) -> None:
    """A wrong password (SQLSTATE 28P01), like a pg_hba.conf or certificate refusal (28000), is not fixed by
    waiting: the schema hook fails at once instead of retrying for ten minutes. Judged by SQLSTATE, not by the
    server's (translatable) message."""
    slept: list[float] = []
    wrong = replace(postgres.settings(), password="not-the-password")
    with pytest.raises(ConnectError, match="password authentication failed") as refused:
        wait_for_writer(wrong, timeout=600, interval=10, sleep=slept.append)
    assert refused.value.refused and slept == []


@pytest.fixture(scope="module")
def tls_postgres() -> Iterator[tuple[PostgresServer, Issued, Issued]]:
    """A real PostgreSQL with ``ssl = on`` (its CA also asks clients for a certificate, optionally); the CA, and a
    client certificate for the superuser."""
    server = PostgresServer(database="app")
    try:
        ca = new_ca("connect-test")
        served = issue(ca, "server", ("127.0.0.1",))
        tls = server.root / "tls"
        tls.mkdir()
        for name, text in (("ca.crt", ca.cert), ("server.crt", served.cert), ("server.key", served.key)):
            (tls / name).write_text(text)
            (tls / name).chmod(0o600)
        give_to_service_user(tls, *tls.iterdir())
        server.extra_settings.update(
            ssl="on",
            ssl_cert_file=str(tls / "server.crt"),
            ssl_key_file=str(tls / "server.key"),
            ssl_ca_file=str(tls / "ca.crt"),
        )
        yield server.start(), ca, issue(ca, server.superuser)
    finally:
        server.stop()


def _encrypted(settings: ConnectionSettings) -> list[list[object]]:
    """(ssl, client_dn) of a new connection made with ``settings``, from the server's side."""
    conn = connect(settings)
    try:
        return conn.run("SELECT ssl, client_dn FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
    finally:
        conn.close()


def test_prefer_uses_tls_when_the_server_offers_it(tls_postgres: tuple[PostgresServer, Issued, Issued]) -> None:
    server, _, _ = tls_postgres
    assert _encrypted(replace(server.settings(), sslmode="prefer")) == [[True, None]]
    default = parse_dsn(server.dsn().replace("?sslmode=disable", ""))
    assert default.sslmode == "prefer" and _encrypted(default)[0][0] is True, "prefer is the default"


def test_prefer_presents_the_client_certificate(
    tls_postgres: tuple[PostgresServer, Issued, Issued], tmp_path: Path
) -> None:
    """pg8000 left to itself (ssl_context=None) negotiated TLS with a context of its own, without sslcert."""
    server, _, client = tls_postgres
    (tmp_path / "client.crt").write_text(client.cert)
    (tmp_path / "client.key").write_text(client.key)
    settings = replace(
        server.settings(), sslmode="prefer", sslcert=str(tmp_path / "client.crt"), sslkey=str(tmp_path / "client.key")
    )
    assert _encrypted(settings) == [[True, f"/CN={server.superuser}"]]


def test_disable_never_uses_tls(tls_postgres: tuple[PostgresServer, Issued, Issued]) -> None:
    """pg8000 negotiates TLS with any server offering it unless told ssl_context=False."""
    server, _, _ = tls_postgres
    assert _encrypted(replace(server.settings(), sslmode="disable")) == [[False, None]]


def test_require_and_verify_full_use_tls(tls_postgres: tuple[PostgresServer, Issued, Issued], tmp_path: Path) -> None:
    server, ca, _ = tls_postgres
    (tmp_path / "ca.crt").write_text(ca.cert)
    assert _encrypted(replace(server.settings(), sslmode="require"))[0][0] is True
    verified = replace(server.settings(), sslmode="verify-full", sslrootcert=str(tmp_path / "ca.crt"))
    assert _encrypted(verified)[0][0] is True


def test_prefer_falls_back_to_plain_text_when_the_server_offers_no_tls(postgres: PostgresServer) -> None:
    assert _encrypted(replace(postgres.settings(), sslmode="prefer")) == [[False, None]]


@pytest.mark.parametrize("sslmode", ["require", "verify-ca", "verify-full"])
def test_tls_modes_fail_clearly_when_the_server_offers_no_tls(postgres: PostgresServer, sslmode: str) -> None:
    with pytest.raises(ConnectError, match=f"the server does not offer TLS, which sslmode={sslmode} requires"):
        connect(replace(postgres.settings(), sslmode=sslmode))


def test_prefer_retries_in_plain_text_only_when_the_server_refuses_tls() -> None:
    """A server that says yes to TLS and then breaks the handshake is not retried in plain text: only pg8000's
    'Server refuses SSL' (the server answered 'N') is."""
    listener = socket.create_server(("127.0.0.1", 0))
    accepted: list[bytes] = []

    def serve() -> None:
        with listener:
            listener.settimeout(5)
            try:
                while True:
                    peer, _ = listener.accept()
                    with peer:
                        accepted.append(peer.recv(8))
                        peer.sendall(b"S")  # yes to TLS, then hang up mid-handshake
            except OSError:
                return

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    port = listener.getsockname()[1]
    settings = ConnectionSettings(
        hosts=(("127.0.0.1", port),), database="app", password="x", sslmode="prefer", connect_timeout=2
    )
    with pytest.raises(ConnectError, match=f"127.0.0.1:{port}: "):
        connect(settings)
    listener.close()
    thread.join(timeout=10)
    assert len(accepted) == 1, "no second, plain-text attempt"
    assert accepted[0] == struct.pack("!ii", 8, 80877103), "the first asked for TLS"
