"""DSN parsing and password resolution for the runner, the lab and the Lambda hook."""

from __future__ import annotations

import json
from dataclasses import replace

import boto3
import pytest
from moto import mock_aws

from pgha.connect import ConnectError, ConnectionSettings, parse_dsn, resolve, wait_for_writer
from pgha.local import free_port


def test_url_with_several_hosts_and_percent_encoded_password() -> None:
    settings = parse_dsn("postgresql://admin:p%40ss@h1:5432,h2:6543,h3/app?sslmode=require")
    assert settings.hosts == (("h1", 5432), ("h2", 6543), ("h3", 5432))
    assert (settings.user, settings.password, settings.database, settings.sslmode) == ("admin", "p@ss", "app",
                                                                                       "require")
    assert "p@ss" not in settings.display() and settings.display() == "postgresql://admin@h1:5432,h2:6543,h3:5432/app"


def test_libpq_key_value_with_a_port_list() -> None:
    settings = parse_dsn("host=a,b port=5432,5433 dbname=app user=me sslmode=disable")
    assert settings.hosts == (("a", 5432), ("b", 5433))
    assert settings.password is None and settings.user == "me"


def test_libpq_quoted_values_keep_their_spaces_and_escapes() -> None:
    settings = parse_dsn(r"host = db1 dbname=app password='s3cret with \'quote\' and \\' user=me")
    assert settings.password == "s3cret with 'quote' and \\"
    assert (settings.hosts, settings.database, settings.user) == ((("db1", 5432),), "app", "me")


@pytest.mark.parametrize(("dsn", "message"), [
    ("postgresql://u@h/db?sslmode=maybe", "sslmode='maybe'"),
    ("host=a port=five", "bad port"),
    ("hostonly", "not key=value"),
    ("host=a connect_timeout=soon", "connect_timeout='soon': must be whole seconds"),
])
def test_bad_dsns_are_named(dsn: str, message: str) -> None:
    with pytest.raises(ConnectError, match=message):
        parse_dsn(dsn)


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


def test_password_from_the_environment_wins_over_the_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PGPASSWORD", "from-env")
    assert resolve(parse_dsn("postgresql://u@h/db"), secret_arn="arn:unused").password == "from-env"


@mock_aws
def test_secret_supplies_user_and_password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PGPASSWORD", raising=False)
    monkeypatch.delenv("PGUSER", raising=False)
    arn = boto3.client("secretsmanager", region_name="eu-west-1").create_secret(
        Name="rds!db-x", SecretString=json.dumps({"username": "pgha_admin", "password": "s3cret"}))["ARN"]
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
