"""The nodes' pg_hba on a real PostgreSQL: the superuser from outside the members needs the cluster CA's
client certificate for its name, and the schema hook's Lambda handler connects with it.

On EC2 the members are /32s and the hook reaches PostgreSQL through the NLB from a VPC address, so without
the certificate line `pulumi up` on the Patroni engine could never apply the schema. Here the "members" are
127.0.0.2/32 and the client network 127.0.0.0/8, and the tests connect from 127.0.0.1: not a member.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import boto3
import pytest
import yaml
from moto import mock_aws

from pgha.connect import ConnectError, ConnectionSettings, client_certificate, connect
from pgha.lab.cluster import Lab
from pgha.lab.tls import Issued, issue, new_ca
from pgha.local import PostgresServer, give_to_service_user
from pgha.node.render import render_patroni
from pgha.schema.lambda_handler import handler

MEMBER = "127.0.0.2/32"
CLIENTS = "127.0.0.0/8"


@dataclass(frozen=True)
class GuardedServer:
    """A PostgreSQL behind the nodes' rendered pg_hba, and the certificates to knock with."""

    server: PostgresServer
    ca: Issued
    superuser_cert: Issued
    member_cert: Issued


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GuardedServer]:
    server = PostgresServer(database="app").start()
    try:
        ca = new_ca("hba-test")
        tls = server.root / "tls"
        tls.mkdir()
        served = issue(ca, "server", ("127.0.0.1",))
        for name, text in (("ca.crt", ca.cert), ("server.crt", served.cert), ("server.key", served.key)):
            (tls / name).write_text(text)
            (tls / name).chmod(0o600)
        give_to_service_user(tls, *tls.iterdir())
        cluster = Lab(root=tmp_path_factory.mktemp("lab"), addresses=("127.0.3.1", "127.0.3.2", "127.0.3.3")).cluster()
        cluster = replace(
            cluster,
            member_cidrs=[MEMBER],
            client_cidrs=[CLIENTS],
            users=replace(cluster.users, superuser=server.superuser),
        )
        rules = yaml.safe_load(render_patroni(cluster, cluster.nodes[0]))["postgresql"]["pg_hba"]
        (server.datadir / "pg_hba.conf").write_text("\n".join(rules) + "\n")
        admin = connect(server.settings("postgres"))
        for setting, value in (
            ("ssl", "on"),
            ("ssl_cert_file", tls / "server.crt"),
            ("ssl_key_file", tls / "server.key"),
            ("ssl_ca_file", tls / "ca.crt"),
        ):
            admin.run(f"ALTER SYSTEM SET {setting} = '{value}'")
        admin.run("SELECT pg_reload_conf()")
        deadline = time.monotonic() + 10  # the reload is asynchronous; hostssl rules are errors while ssl is off
        while errors := admin.run("SELECT line_number, error FROM pg_hba_file_rules WHERE error IS NOT NULL"):
            assert time.monotonic() < deadline, errors
            time.sleep(0.1)
        admin.close()
        yield GuardedServer(server, ca, issue(ca, server.superuser), issue(ca, "node1", ("127.0.0.2",)))
    finally:
        server.stop()


def superuser(guarded: GuardedServer) -> ConnectionSettings:
    """The superuser over TLS from 127.0.0.1, with its password and no certificate."""
    return replace(guarded.server.settings(), sslmode="require")


def with_certificate(settings: ConnectionSettings, issued: Issued, directory: Path) -> ConnectionSettings:
    (directory / "client.crt").write_text(issued.cert)
    (directory / "client.key").write_text(issued.key)
    return replace(settings, sslcert=str(directory / "client.crt"), sslkey=str(directory / "client.key"))


def test_the_superuser_is_refused_from_a_non_member_with_its_password_alone(guarded: GuardedServer) -> None:
    with pytest.raises(ConnectError, match="connection requires a valid client certificate"):
        connect(superuser(guarded))


def test_the_superuser_is_admitted_with_the_cluster_cas_certificate_for_its_name(
    guarded: GuardedServer, tmp_path: Path
) -> None:
    conn = connect(with_certificate(superuser(guarded), guarded.superuser_cert, tmp_path))
    assert conn.run("SELECT current_user, rolsuper FROM pg_roles WHERE rolname = current_user") == [
        [guarded.server.superuser, True]
    ]
    conn.close()


def test_a_members_certificate_does_not_stand_in_for_the_superusers(guarded: GuardedServer, tmp_path: Path) -> None:
    log = guarded.server.root / "postgres.log"
    logged_before = log.read_text(errors="replace").count("CN mismatch")
    with pytest.raises(ConnectError, match="authentication failed"):
        connect(with_certificate(superuser(guarded), guarded.member_cert, tmp_path))
    assert log.read_text(errors="replace").count("CN mismatch") == logged_before + 1, "refused for its name"


def test_the_certificate_does_not_replace_the_password(guarded: GuardedServer, tmp_path: Path) -> None:
    wrong = replace(with_certificate(superuser(guarded), guarded.superuser_cert, tmp_path), password="not-it")
    with pytest.raises(ConnectError, match="password authentication failed"):
        connect(wrong)


def test_an_application_role_needs_no_certificate(guarded: GuardedServer, tmp_path: Path) -> None:
    admin = connect(with_certificate(superuser(guarded), guarded.superuser_cert, tmp_path))
    admin.run("DROP ROLE IF EXISTS hba_app")
    admin.run("CREATE ROLE hba_app LOGIN PASSWORD 'app-Pass-1'")
    admin.close()
    conn = connect(replace(superuser(guarded), user="hba_app", password="app-Pass-1", database="postgres"))
    assert conn.run("SELECT current_user") == [["hba_app"]]
    conn.close()


@mock_aws
def test_the_schema_hook_applies_the_schema_with_the_certificate_and_is_refused_without(
    guarded: GuardedServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    client = boto3.client("secretsmanager", region_name="eu-west-1")
    credentials = client.create_secret(
        Name="hba-credentials",
        SecretString=json.dumps({"username": guarded.server.superuser, "password": guarded.server.password}),
    )["ARN"]
    client_tls = client.create_secret(
        Name="hba-superuser-client-tls",
        SecretString=json.dumps(
            {"ca": guarded.ca.cert, "cert": guarded.superuser_cert.cert, "key": guarded.superuser_cert.key}
        ),
    )["ARN"]
    event = {
        "host": "127.0.0.1",
        "port": guarded.server.port,
        "database": "app",
        "secretArn": credentials,
        "sslmode": "require",
        "waitSeconds": 60,
    }
    with pytest.raises(ConnectError, match="connection requires a valid client certificate") as refused:
        handler(event)
    assert "attempts" not in str(refused.value), "a refusal by pg_hba.conf fails at once, waiting cannot fix it"

    result = handler({**event, "clientTlsSecretArn": client_tls})
    assert result["applied"] and result["applied"][0].startswith("0001_")
    assert guarded.server.password not in json.dumps(result)


@mock_aws
def test_a_client_tls_secret_without_a_key_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    arn = boto3.client("secretsmanager", region_name="eu-west-1").create_secret(
        Name="hba-half", SecretString=json.dumps({"ca": "x", "cert": "y"})
    )["ARN"]
    settings = ConnectionSettings(hosts=(("127.0.0.1", 1),), database="app")
    with pytest.raises(ConnectError, match=f"secret {arn} lacks key"), client_certificate(settings, arn):
        pass
