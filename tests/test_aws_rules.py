"""What AWS and the provider refuse (pgha/ci/aws_rules.py): each rule refuses a resource made to break it,
every committed stack passes them all, and the harness fails a run the way ``pulumi up`` would."""

from __future__ import annotations

import copy
import dataclasses
import json
from collections.abc import Callable
from typing import Any

import pytest
from typer.testing import CliRunner

from pgha.ci.aws_rules import AWS_RULES, POSTGRES_PARAMETERS, AwsRefusalError, refusals
from pgha.ci.harness import Plan, RegisteredResource, Secret, lambda_concurrency_quota, run_program
from pgha.cli import app
from pgha.connect import connect
from pgha.local import PostgresServer

GOV = {"aws:region": "us-gov-west-1", "drRegion": "us-gov-east-1"}
PATRONI = {"engine": "patroni"}


@pytest.fixture(scope="module")
def patroni_plan() -> Plan:
    return run_program("prod", PATRONI)


def broken(plan: Plan, changes: dict[str, dict[str, Any] | Callable[[RegisteredResource], None]]) -> Plan:
    """The plan's resources with some changed: an input set (None removes it), or a function that edits one."""
    resources = []
    for resource in plan.resources:
        change = changes.get(resource.name)
        if change is not None:
            resource = copy.deepcopy(resource)
            if callable(change):
                change(resource)
            else:
                for key, value in change.items():
                    resource.inputs.pop(key, None) if value is None else resource.inputs.__setitem__(key, value)
        resources.append(resource)
    assert set(changes) <= {r.name for r in plan.resources}, "a change names no resource of the plan"
    return dataclasses.replace(plan, resources=resources)


def rules_refusing(plan: Plan, name: str) -> set[str]:
    return {r.rule for r in refusals(plan) if r.resource == name}


def _policy(statements: list[dict[str, Any]]) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": statements})


def _without_dependency_on(name: str, plan_names: dict[str, str]) -> Callable[[RegisteredResource], None]:
    def edit(resource: RegisteredResource) -> None:
        resource.dependencies = [d for d in resource.dependencies if d != plan_names[name]]

    return edit


def _renamed(logical: str) -> Callable[[RegisteredResource], None]:
    def edit(resource: RegisteredResource) -> None:
        resource.name = logical

    return edit


def _param(name: str, method: str) -> Callable[[RegisteredResource], None]:
    def edit(resource: RegisteredResource) -> None:
        resource.inputs["parameters"] = [
            *resource.inputs["parameters"],
            {"name": name, "value": "1", "applyMethod": method},
        ]

    return edit


LAG = "pgha-prod-alarms-replica-1-replica-lag"
#: (stack, {resource: change}, the resource refused, the rule that refuses it)
CASES: list[tuple[str, dict[str, Any], str, str]] = [
    (
        "prod",
        {"pgha-prod-primary": {"engineVersion": "13.7"}, "pgha-prod-replica-1": {"backupRetentionPeriod": 7}},
        "pgha-prod-replica-1",
        "rds-replica-backups",
    ),
    ("prod", {"pgha-prod-primary": {"backupRetentionPeriod": 0}}, "pgha-prod-primary", "rds-replica-source-backups"),
    (
        "prod",
        {"pgha-prod-dr-replica": {"manageMasterUserPassword": True}},
        "pgha-prod-dr-replica",
        "rds-replica-inputs",
    ),
    ("prod", {"pgha-prod-replica-2": {"username": "someone"}}, "pgha-prod-replica-2", "rds-replica-inputs"),
    ("prod", {"pgha-prod-primary": {"availabilityZone": "eu-west-1a"}}, "pgha-prod-primary", "rds-multi-az-zone"),
    ("prod", {"pgha-prod-primary": {"monitoringInterval": 20}}, "pgha-prod-primary", "rds-monitoring"),
    ("dev", {"pgha-dev-primary": {"monitoringRoleArn": None}}, "pgha-dev-primary", "rds-monitoring"),
    (
        "prod",
        {"pgha-prod-primary": {"performanceInsightsRetentionPeriod": 30}},
        "pgha-prod-primary",
        "rds-insights-retention",
    ),
    (
        "prod",
        {"pgha-prod-primary": {"enabledCloudwatchLogsExports": ["postgresql", "error"]}},
        "pgha-prod-primary",
        "rds-log-exports",
    ),
    ("prod", {"pgha-prod-primary": {"backupRetentionPeriod": 36}}, "pgha-prod-primary", "rds-backups"),
    ("prod", {"pgha-prod-primary": {"backupWindow": "2:00-03:00"}}, "pgha-prod-primary", "rds-backups"),
    ("prod", {"pgha-prod-replica-1": {"maxAllocatedStorage": 210}}, "pgha-prod-replica-1", "rds-storage-autoscaling"),
    (
        "prod",
        {"pgha-prod-replica-1": {"skipFinalSnapshot": False, "finalSnapshotIdentifier": "x"}},
        "pgha-prod-replica-1",
        "rds-final-snapshot",
    ),
    (
        "prod",
        {"pgha-prod-primary": {"finalSnapshotIdentifier": "pgha--final"}},
        "pgha-prod-primary",
        "rds-final-snapshot",
    ),
    (
        "prod",
        {"pgha-prod-alarms-events": {"eventCategories": ["failover", "replica lag"]}},
        "pgha-prod-alarms-events",
        "rds-event-categories",
    ),
    ("prod", {"pgha-prod-pg17": _param("max_connections", "immediate")}, "pgha-prod-pg17", "rds-parameters"),
    ("prod", {"pgha-prod-pg17": _param("shared_bufers", "pending-reboot")}, "pgha-prod-pg17", "rds-parameters"),
    ("prod", {"pgha-prod-pg17": {"family": "postgresql17"}}, "pgha-prod-pg17", "rds-parameters"),
    (
        "prod",
        {"pgha-prod-logins-pgha-app": {"replicas": [{"region": "eu-west-1"}]}},
        "pgha-prod-logins-pgha-app",
        "secret-replicas",
    ),
    (
        "prod",
        {
            "pgha-prod-logins-pgha-app": {
                "replicas": [{"region": "eu-central-1", "kmsKeyId": "arn:aws:kms:eu-west-1:123456789012:key/k"}]
            }
        },
        "pgha-prod-logins-pgha-app",
        "secret-replicas",
    ),
    (
        "prod",
        {"pgha-prod-logins-pgha-app": {"recoveryWindowInDays": 3}},
        "pgha-prod-logins-pgha-app",
        "secret-recovery-window",
    ),
    ("prod", {"pgha-prod-alarms-primary-cpu": {"period": 45}}, "pgha-prod-alarms-primary-cpu", "metric-alarm"),
    ("prod", {"pgha-prod-alarms-primary-cpu": {"statistic": None}}, "pgha-prod-alarms-primary-cpu", "metric-alarm"),
    ("prod", {LAG: {"period": 60}}, LAG, "metric-alarm"),
    ("prod", {LAG: lambda r: r.inputs["metricQueries"][0].update(returnData=False)}, LAG, "metric-alarm"),
    ("prod", {LAG: lambda r: r.inputs["metricQueries"][1].update(id="Lag")}, LAG, "metric-alarm"),
    ("prod", {LAG: {"datapointsToAlarm": 6}}, LAG, "metric-alarm"),
    ("prod", {"pgha-prod-net-flow-logs": {"retentionInDays": 45}}, "pgha-prod-net-flow-logs", "log-retention"),
    ("prod", {"pgha-prod-key": {"deletionWindowInDays": 5}}, "pgha-prod-key", "kms-key"),
    ("prod", {"pgha-prod-key": {"rotationPeriodInDays": 30}}, "pgha-prod-key", "kms-key"),
    ("prod", {"pgha-prod-schema-fn": {"timeout": 901}}, "pgha-prod-schema-fn", "lambda-limits"),
    (
        "prod",
        {"pgha-prod-schema-fn": {"reservedConcurrentExecutions": 901}},
        "pgha-prod-schema-fn",
        "lambda-reserved-concurrency",
    ),
    (
        "prod",
        {
            "pgha-prod-schema-read-secrets": {
                "policy": _policy(
                    [{"Effect": "Allow", "Principal": "*", "Action": "secretsmanager:GetSecretValue", "Resource": "*"}]
                )
            }
        },
        "pgha-prod-schema-read-secrets",
        "policy-document",
    ),
    (
        "prod",
        {"pgha-prod-schema-read-secrets": {"policy": _policy([{"Effect": "Allow", "Resource": "*"}])}},
        "pgha-prod-schema-read-secrets",
        "policy-document",
    ),
    (
        "prod",
        {
            "pgha-prod-schema-read-secrets": {
                "policy": _policy([{"Effect": "Allow", "Action": "kms:Decrypt", "Resource": "pgha-prod-key"}])
            }
        },
        "pgha-prod-schema-read-secrets",
        "policy-document",
    ),
    (
        "prod",
        {"pgha-prod-schema-read-secrets": {"policy": "{not json"}},
        "pgha-prod-schema-read-secrets",
        "policy-document",
    ),
    (
        "prod",
        {"pgha-prod-schema-role": {"assumeRolePolicy": _policy([{"Effect": "Allow", "Action": "sts:AssumeRole"}])}},
        "pgha-prod-schema-role",
        "policy-document",
    ),
    (
        "prod",
        {
            "pgha-prod-schema-read-secrets": {
                "policy": _policy(
                    [
                        {
                            "Effect": "Allow",
                            "Action": "kms:Decrypt",
                            "Resource": [f"arn:aws:kms:eu-west-1:123456789012:key/{i:04}" for i in range(300)],
                        }
                    ]
                )
            }
        },
        "pgha-prod-schema-read-secrets",
        "policy-document",
    ),
    ("prod", {"pgha-prod-primary": {"identifier": "pgha-prod--primary"}}, "pgha-prod-primary", "names"),
    ("prod", {"pgha-prod-primary": {"identifier": "pgha-" + "p" * 60}}, "pgha-prod-primary", "names"),
    ("prod", {"pgha-prod-schema-fn": {"name": "pgha-prod-" + "s" * 60}}, "pgha-prod-schema-fn", "names"),
    ("prod", {"pgha-prod-key-alias": {"name": "alias/aws/pgha"}}, "pgha-prod-key-alias", "names"),
    ("prod", {"pgha-prod-pg17": _renamed("pgha-prod-pg17.1")}, "pgha-prod-pg17.1", "names"),
    ("prod", {"pgha-prod-net-db-subnets": {"name": "Default"}}, "pgha-prod-net-db-subnets", "names"),
    ("prod", {"pgha-prod-schema-role": _renamed("pgha-" + "r" * 53)}, "pgha-" + "r" * 53, "names"),
    ("patroni", {"pgha-prod-rw": _renamed("pgha-production-europe-rw")}, "pgha-production-europe-rw", "names"),
    ("patroni", {"pgha-prod-nlb": _renamed("internal-pgha-prod")}, "internal-pgha-prod", "names"),
    ("patroni", {"pgha-prod-patroni-backups": _renamed("pgha_prod_backups")}, "pgha_prod_backups", "names"),
]


def _plan(stack: str, prod_plan: Plan, dev_plan: Plan, patroni_plan: Plan) -> Plan:
    return {"prod": prod_plan, "dev": dev_plan, "patroni": patroni_plan}[stack]


@pytest.mark.parametrize(
    "stack, changes, refused, rule", CASES, ids=[f"{rule}-{i}" for i, (_s, _c, _r, rule) in enumerate(CASES)]
)
def test_each_rule_refuses_a_resource_made_to_break_it(
    stack: str, changes: dict[str, Any], refused: str, rule: str, prod_plan: Plan, dev_plan: Plan, patroni_plan: Plan
) -> None:
    plan = _plan(stack, prod_plan, dev_plan, patroni_plan)
    assert rule not in rules_refusing(plan, refused), "the committed stack already breaks it"
    assert rule in rules_refusing(broken(plan, changes), refused)


def test_every_rule_has_a_case() -> None:
    """Each rule is shown refusing something here, or (the two below) in a test of its own."""
    assert {r.id for r in AWS_RULES} - {"arn-partition", "grants-before-use"} <= {rule for *_, rule in CASES}


def test_a_grant_the_user_does_not_wait_for_is_refused(prod_plan: Plan, patroni_plan: Plan) -> None:
    """The user waits for its role's grants directly or through what it waits for: taken away from both, the
    user is refused (the invocation waits through the function, an instance through its profile)."""
    schema = ("pgha-prod-schema-fn", "pgha-prod-schema-apply")
    for plan, users, grant, refused in (
        (prod_plan, schema, "pgha-prod-schema-read-secrets", "pgha-prod-schema-apply"),
        (
            prod_plan,
            ("pgha-prod-primary",),
            "pgha-prod-monitoring-role-AmazonRDSEnhancedMonitoringRole",
            "pgha-prod-primary",
        ),
        (prod_plan, schema, "pgha-prod-schema-role-AWSLambdaVPCAccessExecutionRole", "pgha-prod-schema-fn"),
        (patroni_plan, ("pgha-prod-patroni-1-profile",), "pgha-prod-patroni-1-access", "pgha-prod-patroni-1"),
    ):
        urns = {r.name: r.urn for r in plan.resources}
        stack = broken(plan, {user: _without_dependency_on(grant, urns) for user in users})
        found = [r for r in refusals(stack) if r.rule == "grants-before-use" and r.resource == refused]
        assert found and grant in found[0].message, (refused, grant)


def test_a_refusal_names_its_rule_and_its_source(prod_plan: Plan) -> None:
    [refusal] = [r for r in refusals(broken(prod_plan, {"pgha-prod-primary": {"monitoringInterval": 20}}))]
    text = str(refusal)
    assert text.startswith("pgha-prod-primary (aws:rds/instance:Instance): monitoringInterval 20: must be one of")
    assert "[rds-monitoring; Amazon RDS API Reference, ModifyDBInstance" in text
    assert "hashicorp/terraform-provider-aws @1a5174b137 internal/service/rds/instance.go" in text


def test_a_postgresql_17_replica_may_keep_automated_backups(prod_plan: Plan) -> None:
    """RDS refuses automated backups on a PostgreSQL replica only before 14.1: the rule is AWS's, not pgha's (the
    program still gives replicas none, so that a replica backing up never blocks a promotion)."""
    stack = broken(prod_plan, {"pgha-prod-replica-1": {"backupRetentionPeriod": 7}})
    assert "rds-replica-backups" not in rules_refusing(stack, "pgha-prod-replica-1")


@pytest.mark.parametrize(
    "stack, overrides",
    [
        ("dev", {}),
        ("prod", {}),
        ("prod", PATRONI),
        ("dev", PATRONI),
        ("prod", {"drPromoted": "true"}),
        ("prod", {"replicas": 5, "proxy": "true"}),
        ("prod", {**PATRONI, "patroni": {"nodes": 7}}),
        ("prod", GOV),
        ("prod", {**GOV, **PATRONI}),
        ("dev", {"schemaReservedConcurrency": 5}),
    ],
)
def test_the_committed_stacks_pass_every_rule(stack: str, overrides: dict[str, Any]) -> None:
    plan = run_program(stack, overrides, check=False)
    assert plan.error is None, plan.error


def test_govcloud_arns_come_from_the_partition() -> None:
    plan = run_program("prod", GOV)
    texts = json.dumps([r.inputs for r in plan.resources], default=lambda v: v.value if isinstance(v, Secret) else "")
    assert (
        "arn:aws:" not in texts
        and "arn:aws-us-gov:iam::aws:policy/service-role/AmazonRDSEnhancedMonitoringRole" in texts
    )
    policy = json.loads(plan.get("pgha-prod-key").inputs["policy"])
    assert policy["Statement"][0]["Principal"] == {"AWS": "arn:aws-us-gov:iam::123456789012:root"}
    assert policy["Statement"][1]["Principal"] == {"Service": "logs.us-gov-west-1.amazonaws.com"}


def test_a_hard_coded_commercial_arn_in_govcloud_is_refused() -> None:
    plan = run_program("prod", GOV)
    stack = broken(
        plan,
        {
            "pgha-prod-schema-role-AWSXRayDaemonWriteAccess": {
                "policyArn": "arn:aws:iam::aws:policy/AWSXRayDaemonWriteAccess"
            }
        },
    )
    [refusal] = refusals(stack)
    assert refusal.rule == "arn-partition" and "partition 'aws' in a resource of us-gov-west-1" in refusal.message


@pytest.mark.parametrize(
    "quota, reserved, refused",
    [(10, 1, True), (50, 1, True), (1000, 900, False), (1000, None, False), (10, None, False)],
)
def test_reserved_concurrency_is_refused_where_the_account_cannot_spare_it(
    quota: int, reserved: int | None, refused: bool
) -> None:
    overrides = {"schemaReservedConcurrency": reserved} if reserved else {}
    with lambda_concurrency_quota(quota):
        plan = run_program("dev", overrides, check=False)
    if refused:
        assert isinstance(plan.error, AwsRefusalError)
        assert [r.rule for r in plan.error.refusals] == ["lambda-reserved-concurrency"]
        assert f"below its minimum value of {min(100, quota)}" in str(plan.error)
    else:
        assert plan.error is None


def test_run_program_raises_what_pulumi_up_would_fail_with() -> None:
    with lambda_concurrency_quota(10), pytest.raises(AwsRefusalError, match="lambda-reserved-concurrency"):
        run_program("dev", {"schemaReservedConcurrency": 1})


def test_plan_cli_prints_the_refusal_and_exits_1() -> None:
    with lambda_concurrency_quota(10):
        result = CliRunner().invoke(app, ["plan", "--stack", "dev", "--set", "schemaReservedConcurrency=1"])
    assert result.exit_code == 1, result.output
    assert "AWS would refuse 1 resource setting(s)" in result.output
    assert "pgha-dev-schema-fn (aws:lambda/function:Function): reservedConcurrentExecutions 1" in result.output
    assert "Traceback" not in result.output


def test_parameter_apply_types_are_postgresqls_own(postgres: PostgresServer) -> None:
    """Static in the table is PostgreSQL's ``postmaster`` context (a restart, hence an RDS reboot): checked against
    a real server with the libraries pgha preloads, so a parameter that is static cannot be marked dynamic."""
    conn = connect(postgres.settings())
    try:
        contexts = dict(conn.run("SELECT name, context FROM pg_settings"))
    finally:
        conn.close()
    for name, parameter in POSTGRES_PARAMETERS.items():
        if parameter.postgres_name is None:
            continue
        assert parameter.postgres_name in contexts, f"{name} is not a PostgreSQL setting"
        static = contexts[parameter.postgres_name] == "postmaster"
        assert (parameter.apply_type == "static") == static, (name, contexts[parameter.postgres_name])
