"""The post-deploy schema hook: its resources under mocks, its bundle, and its handler on a real database."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import uuid
from dataclasses import replace
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

from components.schema_hook import lambda_bundle
from pgha.ci.harness import PROJECT_DIR, Plan, _fake_id, run_program
from pgha.connect import ConnectionSettings, connect
from pgha.local import PostgresServer
from pgha.schema.lambda_handler import handler
from pgha.schema.logins import LoginSpec, ensure_logins, scram_verifier
from pgha.schema.migrations import discover, migrations_hash


def test_hook_resources_depend_on_the_database(dev_plan: Plan) -> None:
    invocation = dev_plan.get("pgha-dev-schema-apply")
    function = dev_plan.get("pgha-dev-schema-fn")
    primary = dev_plan.get("pgha-dev-primary")
    assert primary.urn in invocation.dependencies
    assert function.urn in invocation.dependencies
    # every grant of its role: the first run reads the secrets at once
    grants = [
        dev_plan.get(name).urn
        for name in (
            "pgha-dev-schema-read-secrets",
            "pgha-dev-schema-role-AWSLambdaVPCAccessExecutionRole",
            "pgha-dev-schema-role-AWSXRayDaemonWriteAccess",
        )
    ]
    assert set(grants) <= set(invocation.dependencies) and set(grants) <= set(function.dependencies)
    assert invocation.inputs["triggers"]["migrationsHash"] == migrations_hash()
    assert invocation.inputs["triggers"]["writerEndpoint"] == dev_plan.outputs["writerEndpoint"]
    event = json.loads(invocation.inputs["input"])
    assert event["host"] == dev_plan.outputs["writerEndpoint"]
    assert event["secretArn"] == dev_plan.outputs["masterSecretArn"]
    assert dev_plan.outputs["schemaHash"] == migrations_hash()


def test_function_runs_in_the_private_subnets_with_least_privilege(dev_plan: Plan) -> None:
    function = dev_plan.get("pgha-dev-schema-fn")
    assert function.inputs["vpcConfig"]["subnetIds"] == dev_plan.outputs["subnetIds"]
    assert function.inputs["handler"] == "pgha.schema.lambda_handler.handler"
    policy = json.loads(dev_plan.get("pgha-dev-schema-read-secrets").inputs["policy"])
    grants = {s["Action"]: s["Resource"] for s in policy["Statement"]}
    assert grants == {
        "secretsmanager:GetSecretValue": [
            dev_plan.outputs["masterSecretArn"],
            *dev_plan.outputs["appSecretArns"].values(),
        ],
        "kms:Decrypt": dev_plan.outputs["kmsKeyArn"],
    }
    admit = dev_plan.get("pgha-dev-db-from-schema-hook")
    assert admit.inputs["securityGroupId"] == dev_plan.outputs["securityGroupId"]
    rules = dev_plan.of_type("aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule")
    egress = {r.inputs["fromPort"]: r for r in rules if r.name.startswith("pgha-dev-schema")}
    assert sorted(egress) == [443, 5432]
    assert egress[5432].inputs["cidrIpv4"] == "10.40.0.0/16"
    # HTTPS only to the VPC endpoints' security group, not to the whole VPC
    endpoint_sg = dev_plan.get("pgha-dev-net-endpoints-sg")
    assert egress[443].inputs["referencedSecurityGroupId"] == f"sg-{_fake_id(endpoint_sg.name)}"
    assert "cidrIpv4" not in egress[443].inputs


def test_hook_off_registers_no_function() -> None:
    plan = run_program("dev", {"schemaRunner": "off"})
    assert not plan.of_type("aws:lambda/function:Function")
    assert "schemaHash" not in plan.outputs


def test_triggers_change_when_a_migration_changes(tmp_path: Path, dev_plan: Plan) -> None:
    for name in ("__main__.py", "Pulumi.yaml", "Pulumi.dev.yaml"):
        shutil.copy(PROJECT_DIR / name, tmp_path / name)
    shutil.copytree(PROJECT_DIR / "schema", tmp_path / "schema")
    last = sorted((tmp_path / "schema" / "migrations").glob("*.sql"))[-1]
    last.write_text(last.read_text() + "\n-- a changed comment is a changed migration\n")
    changed = run_program("dev", project_dir=tmp_path)
    before = dev_plan.get("pgha-dev-schema-apply").inputs["triggers"]["migrationsHash"]
    after = changed.get("pgha-dev-schema-apply").inputs["triggers"]["migrationsHash"]
    assert after != before
    assert after == migrations_hash(tmp_path / "schema" / "migrations")
    bundle = changed.get("pgha-dev-schema-fn").inputs["code"]
    assert bundle.assets[f"schema/migrations/{last.name}"].path == str(last)


def test_bundle_imports_with_nothing_but_its_own_files(tmp_path: Path) -> None:
    for name, asset in lambda_bundle().items():
        target = tmp_path / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(asset.path, target)
    names = set(lambda_bundle())
    assert {f"schema/migrations/{m.name}" for m in discover()} <= names
    probe = (
        "import sys; sys.path.insert(0, sys.argv[1]); import pgha.schema.lambda_handler, pg8000, sqlparse; "
        "from pgha.schema.migrations import discover; print(len(discover()))"
    )
    # -S: no site-packages, so only the bundle (and the standard library) can satisfy the imports
    result = subprocess.run(
        [sys.executable, "-S", "-c", probe, str(tmp_path)], capture_output=True, text=True, timeout=60, cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    assert int(result.stdout) == len(discover())


@mock_aws
def test_handler_reads_the_password_from_secrets_manager(
    fresh_db: ConnectionSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    monkeypatch.delenv("PGPASSWORD", raising=False)
    secret = boto3.client("secretsmanager", region_name="eu-west-1").create_secret(
        Name="rds!db-test", SecretString=json.dumps({"username": fresh_db.user, "password": fresh_db.password})
    )
    host, port = fresh_db.hosts[0]
    event = {
        "host": host,
        "port": port,
        "database": fresh_db.database,
        "secretArn": secret["ARN"],
        "sslmode": "disable",
    }
    first = handler(event)
    assert first["applied"] == [m.name for m in discover()]
    assert first["migrationsHash"] == migrations_hash()
    assert fresh_db.password not in json.dumps(first)
    second = handler(event)
    assert second["applied"] == [] and len(second["alreadyApplied"]) == len(discover())
    conn = connect(fresh_db)
    assert conn.run("SELECT count(*) FROM pgha_schema_migrations")[0][0] == len(discover())
    conn.close()


@mock_aws
def test_handler_fails_loudly_on_a_wrong_password(
    fresh_db: ConnectionSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PGPASSWORD", raising=False)
    secret = boto3.client("secretsmanager", region_name="eu-west-1").create_secret(
        Name="rds!db-wrong", SecretString=json.dumps({"username": fresh_db.user, "password": "not-it"})
    )
    host, port = fresh_db.hosts[0]
    with pytest.raises(Exception, match="password authentication failed"):
        handler(
            {
                "host": host,
                "port": port,
                "database": fresh_db.database,
                "secretArn": secret["ARN"],
                "sslmode": "disable",
            }
        )


def _login_secret(client, name: str, user: str, password: str) -> str:
    return client.create_secret(Name=name, SecretString=json.dumps({"username": user, "password": password}))["ARN"]


@mock_aws
def test_handler_creates_application_logins_with_the_secrets_passwords(
    fresh_db: ConnectionSettings,
    postgres: PostgresServer,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.delenv("PGPASSWORD", raising=False)
    client = boto3.client("secretsmanager", region_name="eu-west-1")
    master = _login_secret(client, "rds!db-logins", fresh_db.user, fresh_db.password)
    app_password, exec_password = "app-" + uuid.uuid4().hex, "exec-" + uuid.uuid4().hex
    app = _login_secret(client, "pgha-app", "pgha_app", app_password)
    executive = _login_secret(client, "pgha-exec", "pgha_exec", exec_password)
    host, port = fresh_db.hosts[0]
    # log every statement of this database: the passwords must not reach the server's log either
    admin = connect(fresh_db)
    admin.run(f"ALTER DATABASE \"{fresh_db.database}\" SET log_statement = 'all'")
    admin.close()
    event = {
        "host": host,
        "port": port,
        "database": fresh_db.database,
        "secretArn": master,
        "sslmode": "disable",
        "logins": [
            {"secretArn": app, "memberOf": "application_role"},
            {"secretArn": executive, "memberOf": "executive_role"},
        ],
    }

    result = handler(event)
    assert result["logins"] == ["pgha_app", "pgha_exec"]
    as_app = connect(replace(fresh_db, user="pgha_app", password=app_password))
    member, superuser, bypass = as_app.run(
        "SELECT pg_has_role('application_role', 'MEMBER'), rolsuper, rolbypassrls FROM pg_roles "
        "WHERE rolname = current_user"
    )[0]
    assert (member, superuser, bypass) == (True, False, False)
    as_app.close()
    as_exec = connect(replace(fresh_db, user="pgha_exec", password=exec_password))
    assert as_exec.run("SELECT pg_has_role('executive_role', 'MEMBER'), pg_has_role('application_role', 'MEMBER')")[
        0
    ] == [True, False]
    as_exec.close()

    # a new password in the secret: the next run sets it, the old one stops working
    new_password = "app-" + uuid.uuid4().hex
    client.put_secret_value(SecretId=app, SecretString=json.dumps({"username": "pgha_app", "password": new_password}))
    assert handler(event)["logins"] == ["pgha_app", "pgha_exec"]
    connect(replace(fresh_db, user="pgha_app", password=new_password)).close()
    with pytest.raises(Exception, match="password authentication failed"):
        connect(replace(fresh_db, user="pgha_app", password=app_password))

    shown = capsys.readouterr()
    server_log = (postgres.root / "postgres.log").read_text(errors="replace")
    assert "ALTER ROLE" in server_log, "statement logging did not take effect: the check below would prove nothing"
    for password in (app_password, exec_password, new_password):
        assert password not in json.dumps(result) and password not in shown.out + shown.err
        assert password not in server_log


def test_scram_verifier_is_what_postgresql_accepts_and_not_the_password() -> None:
    verifier = scram_verifier("correct horse", salt=b"0123456789abcdef")
    assert verifier.startswith("SCRAM-SHA-256$4096:MDEyMzQ1Njc4OWFiY2RlZg==$")
    assert "correct horse" not in verifier and "'" not in verifier
    with pytest.raises(ValueError, match="not a plain lower-case SQL identifier"):
        ensure_logins(None, [LoginSpec("app; DROP TABLE x", "pw", "application_role")])  # type: ignore[arg-type]


def test_logins_are_made_by_a_master_user_that_is_not_a_superuser(fresh_db: ConnectionSettings) -> None:
    """Like RDS's master user (rds_superuser: CREATEROLE, not SUPERUSER)."""
    suffix = uuid.uuid4().hex[:8]
    master, group, login = f"master_{suffix}", f"group_{suffix}", f"login_{suffix}"
    admin = connect(fresh_db)
    admin.run(f"CREATE ROLE {master} LOGIN CREATEROLE PASSWORD 'master-pw'")
    conn = connect(replace(fresh_db, user=master, password="master-pw"))
    try:
        conn.run(f"CREATE ROLE {group} NOLOGIN")
        assert ensure_logins(conn, [LoginSpec(login, "login-pw-" + suffix, group)]) == [login]
        assert ensure_logins(conn, [LoginSpec(login, "login-pw-2-" + suffix, group)]) == [login]  # again: idempotent
    finally:
        conn.close()
    as_login = connect(replace(fresh_db, user=login, password="login-pw-2-" + suffix))
    assert as_login.run(f"SELECT pg_has_role('{group}', 'MEMBER')")[0] == [True]
    as_login.close()
    for role in (login, group, master):
        admin.run(f"DROP ROLE {role}")
    admin.close()


def _denied_for(reads: int) -> object:
    """A botocore hook that refuses the first ``reads`` GetSecretValue calls as IAM does before a new grant
    has propagated (the secret itself is real, on moto)."""
    from botocore.exceptions import ClientError

    calls = {"denied": 0}

    def deny(**_kwargs: object) -> None:
        if calls["denied"] < reads:
            calls["denied"] += 1
            raise ClientError(
                {
                    "Error": {
                        "Code": "AccessDeniedException",
                        "Message": "not authorized to perform: secretsmanager:GetSecretValue",
                    }
                },
                "GetSecretValue",
            )

    deny.calls = calls  # type: ignore[attr-defined]
    return deny


@mock_aws
@pytest.mark.parametrize("denials, applies", [(2, True), (1000, False)])
def test_handler_waits_for_a_grant_that_is_not_visible_yet_then_fails_naming_the_secret(
    fresh_db: ConnectionSettings, monkeypatch: pytest.MonkeyPatch, denials: int, applies: bool
) -> None:
    import pgha.connect

    monkeypatch.setattr(pgha.connect, "SECRET_RETRY_INTERVAL", 0.05)
    monkeypatch.delenv("PGPASSWORD", raising=False)
    secret = boto3.client("secretsmanager", region_name="eu-west-1").create_secret(
        Name="rds!db-grant", SecretString=json.dumps({"username": fresh_db.user, "password": fresh_db.password})
    )
    deny = _denied_for(denials)
    boto3._get_default_session().events.register("before-call.secretsmanager.GetSecretValue", deny)
    host, port = fresh_db.hosts[0]
    event = {
        "host": host,
        "port": port,
        "database": fresh_db.database,
        "secretArn": secret["ARN"],
        "sslmode": "disable",
        "grantWaitSeconds": 1,
    }
    try:
        if applies:
            assert handler(event)["applied"] == [m.name for m in discover()]
            assert deny.calls["denied"] == 2  # type: ignore[attr-defined]
        else:
            with pytest.raises(
                pgha.connect.ConnectError,
                match=rf"cannot read secret {secret['ARN']} \(still "
                rf"denied after 1 s\).*AccessDeniedException",
            ):
                handler(event)
            conn = connect(fresh_db)  # nothing was applied: the runner never connected
            assert conn.run("SELECT to_regclass('pgha_schema_migrations')")[0][0] is None
            conn.close()
    finally:
        boto3._get_default_session().events.unregister("before-call.secretsmanager.GetSecretValue", deny)


def test_schema_function_reserves_no_concurrency_and_is_traced(any_plan: Plan) -> None:
    function = any_plan.get(f"pgha-{any_plan.stack}-schema-fn")
    # a reservation fails in accounts with a low quota; the migrations' advisory lock serializes runs
    assert "reservedConcurrentExecutions" not in function.inputs
    assert function.inputs["tracingConfig"] == {"mode": "Active"}
    attached = {
        a.inputs["policyArn"]
        for a in any_plan.of_type("aws:iam/rolePolicyAttachment:RolePolicyAttachment")
        if a.name.startswith(f"pgha-{any_plan.stack}-schema-role")
    }
    assert "arn:aws:iam::aws:policy/AWSXRayDaemonWriteAccess" in attached
