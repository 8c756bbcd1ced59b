"""Issue #12 (AWS hardening) and #10's guards, asserted on what the real program registers under mocks."""

from __future__ import annotations

import fnmatch
import json

import pytest

from pgha.ci.harness import (
    BYO_ENDPOINT_SG,
    BYO_VPC_WITH_ENDPOINT,
    BYO_VPC_WITH_NAT,
    BYO_VPC_WITHOUT_EGRESS,
    Plan,
    RegisteredResource,
    Secret,
    _fake_id,
    run_program,
)
from pgha.ci.stateful import is_stateful

INSTANCE = "aws:rds/instance:Instance"
LOG_GROUP = "aws:cloudwatch/logGroup:LogGroup"
BYO_SUBNETS = '["subnet-0123456789abcdef1", "subnet-0123456789abcdef2"]'


def byo(vpc_id: str, **overrides: str) -> Plan:
    """The dev stack in a bring-your-own VPC the mocks describe (see pgha/ci/harness.py)."""
    return run_program("dev", {"vpcCidr": None, "vpcId": vpc_id, "subnetIds": BYO_SUBNETS, **overrides},
                       check=False)


def egress_rules(plan: Plan, prefix: str) -> list[RegisteredResource]:
    return [r for r in plan.of_type("aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule")
            if r.name.startswith(prefix)]


# --- 1. final snapshots --------------------------------------------------------------------------


def test_replicas_skip_the_final_snapshot_rds_refuses_for_them(prod_plan: Plan) -> None:
    reps = [r for r in prod_plan.of_type(INSTANCE) if r.name != "pgha-prod-primary"]
    assert {r.name for r in reps} == {"pgha-prod-replica-1", "pgha-prod-replica-2", "pgha-prod-dr-replica"}
    for replica in reps:
        assert replica.inputs["replicateSourceDb"]
        assert replica.inputs["skipFinalSnapshot"] is True, replica.name
        assert "finalSnapshotIdentifier" not in replica.inputs, replica.name
    assert prod_plan.get("pgha-prod-primary").inputs["skipFinalSnapshot"] is False


# --- 2. application logins -----------------------------------------------------------------------


def test_application_logins_have_generated_passwords_in_cmk_encrypted_secrets(any_plan: Plan) -> None:
    stack = any_plan.stack
    arns = any_plan.outputs["appSecretArns"]
    assert set(arns) == {"pgha_app", "pgha_exec"}
    assert any_plan.outputs["appSecretArn"] == arns["pgha_app"]
    for slug in ("pgha-app", "pgha-exec"):
        secret = any_plan.get(f"pgha-{stack}-logins-{slug}")
        assert secret.inputs["kmsKeyId"] == any_plan.outputs["kmsKeyArn"]
        value = any_plan.get(f"pgha-{stack}-logins-{slug}-value")
        assert secret.urn in value.dependencies
        # the secret's value is a secret in the state: never plaintext
        assert isinstance(value.inputs["secretString"], Secret)
        content = json.loads(value.inputs["secretString"].value)
        assert content["username"] == slug.replace("-", "_") and len(content["password"]) >= 32
        password = any_plan.get(f"pgha-{stack}-logins-{slug}-password")
        assert password.urn in value.dependencies and password.inputs["length"] >= 32


def test_schema_hook_creates_the_logins_after_their_secrets_hold_a_value(any_plan: Plan) -> None:
    stack = any_plan.stack
    invocation = any_plan.get(f"pgha-{stack}-schema-apply")
    event = json.loads(invocation.inputs["input"])
    arns = any_plan.outputs["appSecretArns"]
    assert event["logins"] == [{"secretArn": arns["pgha_app"], "memberOf": "application_role"},
                               {"secretArn": arns["pgha_exec"], "memberOf": "executive_role"}]
    assert "password" not in invocation.inputs["input"]
    for slug in ("pgha-app", "pgha-exec"):
        assert any_plan.get(f"pgha-{stack}-logins-{slug}-value").urn in invocation.dependencies
    assert {"login-pgha_app", "login-pgha_exec"} <= set(invocation.inputs["triggers"])


# --- 3. schema hook egress -----------------------------------------------------------------------


def test_invocation_depends_on_every_rule_and_endpoint_the_hook_needs(dev_plan: Plan) -> None:
    invocation = dev_plan.get("pgha-dev-schema-apply")
    needed = [
        "pgha-dev-net-secretsmanager-endpoint", "pgha-dev-net-s3-endpoint",  # Network.egress
        "pgha-dev-schema-to-5432", "pgha-dev-schema-https-to-endpoints-0",  # out of the hook
        "pgha-dev-db-from-schema-hook",  # into the database
        "pgha-dev-schema-fn",
    ]
    for name in needed:
        assert dev_plan.get(name).urn in invocation.dependencies, name


def test_byo_vpc_with_a_nat_gets_https_out_through_it() -> None:
    plan = byo(BYO_VPC_WITH_NAT)
    assert plan.error is None
    https = [r for r in egress_rules(plan, "pgha-dev-schema-https") if r.inputs["fromPort"] == 443]
    assert [(r.inputs.get("cidrIpv4"), r.inputs.get("referencedSecurityGroupId")) for r in https] == [
        ("0.0.0.0/0", None)]
    assert https[0].urn in plan.get("pgha-dev-schema-apply").dependencies


def test_byo_vpc_with_an_endpoint_gets_https_to_the_endpoint_only() -> None:
    plan = byo(BYO_VPC_WITH_ENDPOINT)
    assert plan.error is None
    https = egress_rules(plan, "pgha-dev-schema-https")
    assert [(r.inputs.get("cidrIpv4"), r.inputs.get("referencedSecurityGroupId")) for r in https] == [
        (None, BYO_ENDPOINT_SG)]


def test_byo_vpc_without_nat_or_endpoint_fails_naming_what_is_missing() -> None:
    plan = byo(BYO_VPC_WITHOUT_EGRESS)
    message = str(plan.error)
    assert type(plan.error).__name__ == "EgressError"
    assert BYO_VPC_WITHOUT_EGRESS in message
    assert "com.amazonaws.eu-west-1.secretsmanager" in message and "NAT" in message
    assert "subnet-0123456789abcdef1" in message and "subnet-0123456789abcdef2" in message
    assert not plan.of_type(INSTANCE), "nothing is declared once the way out is known to be missing"


def test_byo_vpc_without_egress_is_fine_when_nothing_needs_aws_apis() -> None:
    plan = byo(BYO_VPC_WITHOUT_EGRESS, schemaRunner="off")
    assert plan.error is None
    assert not plan.of_type("aws:lambda/function:Function")


# --- 5. FSBP controls ----------------------------------------------------------------------------


def test_every_created_vpc_has_flow_logs_to_an_encrypted_log_group(prod_plan: Plan) -> None:
    vpcs = prod_plan.of_type("aws:ec2/vpc:Vpc")
    assert {v.name for v in vpcs} == {"pgha-prod-net-vpc", "pgha-prod-dr-net-vpc"}
    for vpc in vpcs:
        net = vpc.name.removesuffix("-vpc")
        flow = prod_plan.get(f"{net}-flow-log")
        assert flow.inputs["vpcId"] == f"vpc-{_fake_id(vpc.name)}"
        assert flow.inputs["trafficType"] == "ALL"
        assert flow.inputs["logDestinationType"] == "cloud-watch-logs"
        group = prod_plan.get(f"{net}-flow-logs")
        assert flow.inputs["logDestination"].endswith(group.name) and group.urn in flow.dependencies
        assert group.inputs["retentionInDays"] >= 365
        key = prod_plan.get(f"{net}-key")
        region = prod_plan.region_of(key)
        assert group.inputs["kmsKeyId"] == f"arn:aws:kms:{region}:123456789012:key/{_fake_id(key.name)}"
        assert flow.provider == vpc.provider, "flow log in the VPC's own region"
        role = prod_plan.get(f"{net}-flow-logs-role")
        assert "vpc-flow-logs.amazonaws.com" in role.inputs["assumeRolePolicy"]


def test_default_security_group_of_every_created_vpc_has_no_rules(prod_plan: Plan) -> None:
    defaults = prod_plan.of_type("aws:ec2/defaultSecurityGroup:DefaultSecurityGroup")
    vpcs = {f"vpc-{_fake_id(v.name)}" for v in prod_plan.of_type("aws:ec2/vpc:Vpc")}
    assert {d.inputs["vpcId"] for d in defaults} == vpcs
    for group in defaults:
        assert not group.inputs.get("ingress") and not group.inputs.get("egress")


def test_schema_function_reserves_no_concurrency_and_is_traced(any_plan: Plan) -> None:
    function = any_plan.get(f"pgha-{any_plan.stack}-schema-fn")
    # a reservation fails in accounts with a low quota; the migrations' advisory lock serializes runs
    assert "reservedConcurrentExecutions" not in function.inputs
    assert function.inputs["tracingConfig"] == {"mode": "Active"}
    attached = {a.inputs["policyArn"] for a in any_plan.of_type("aws:iam/rolePolicyAttachment:RolePolicyAttachment")
                if a.name.startswith(f"pgha-{any_plan.stack}-schema-role")}
    assert "arn:aws:iam::aws:policy/AWSXRayDaemonWriteAccess" in attached


def _logs_statement(key: RegisteredResource) -> dict:
    policy = json.loads(key.inputs["policy"])
    return next(s for s in policy["Statement"] if s["Sid"] == "CloudWatchLogsEncryptsDatabaseLogs")


def test_logs_may_use_a_key_only_for_this_stacks_log_groups(any_plan: Plan) -> None:
    keys = {f"arn:aws:kms:{any_plan.region_of(k)}:123456789012:key/{_fake_id(k.name)}": k
            for k in any_plan.of_type("aws:kms/key:Key")}
    groups = any_plan.of_type(LOG_GROUP)
    assert groups
    for key in keys.values():
        patterns = _logs_statement(key)["Condition"]["ArnLike"]["kms:EncryptionContext:aws:logs:arn"]
        assert all(f":log-group:/aws/rds/instance/pgha-{any_plan.stack}-" in p
                   or f":log-group:/aws/lambda/pgha-{any_plan.stack}-" in p
                   or f":log-group:/pgha/pgha-{any_plan.stack}-" in p for p in patterns), patterns
    for group in groups:  # and every log group the stack makes is inside its key's scope
        key = keys[group.inputs["kmsKeyId"]]
        patterns = _logs_statement(key)["Condition"]["ArnLike"]["kms:EncryptionContext:aws:logs:arn"]
        suffixes = [p.split(":log-group:", 1)[1] for p in patterns]
        assert any(fnmatch.fnmatchcase(group.inputs["name"], s) for s in suffixes), group.inputs["name"]


def test_another_stacks_log_group_is_outside_the_key_scope(prod_plan: Plan) -> None:
    patterns = _logs_statement(prod_plan.get("pgha-prod-key"))["Condition"]["ArnLike"][
        "kms:EncryptionContext:aws:logs:arn"]
    for other in ("/aws/rds/instance/pgha-dev-primary/postgresql", "/aws/lambda/someone-else", "/pgha/pgha-prodx"):
        arn = f"arn:aws:logs:eu-west-1:123456789012:log-group:{other}"
        assert not any(fnmatch.fnmatchcase(arn, p) for p in patterns), other


# --- #10 item 3: protect -------------------------------------------------------------------------

#: What the RDS path of a protected stack has and protects: its stateful types, and the log groups.
PROTECTED_TYPES = {
    INSTANCE, "aws:rds/parameterGroup:ParameterGroup", "aws:rds/subnetGroup:SubnetGroup", "aws:kms/key:Key",
    "aws:secretsmanager/secret:Secret", LOG_GROUP,
}


def test_prod_protects_every_stateful_resource(prod_plan: Plan) -> None:
    # stateful as pgha diff and preview-check count it (pgha/ci/stateful.py), so a type added there is covered here
    stateful = [r for r in prod_plan.resources if r.type in PROTECTED_TYPES or is_stateful(r.type)]
    assert {r.type for r in stateful} == PROTECTED_TYPES
    unprotected = [r.name for r in stateful if not r.protect]
    # the schema hook's own log group holds migration output, not the database's audit trail
    assert unprotected == ["pgha-prod-schema-logs"]
    assert prod_plan.get("pgha-prod-dr-replica").protect and prod_plan.get("pgha-prod-dr-key").protect
    # and nothing else: alarms, rules, roles stay freely replaceable
    assert not [r.name for r in prod_plan.resources if r.protect and r.type not in PROTECTED_TYPES]


def test_dev_protects_nothing(dev_plan: Plan) -> None:
    assert not [r.name for r in dev_plan.resources if r.protect]


@pytest.mark.parametrize("stack", ["prod"])
def test_protection_follows_deletion_protection(stack: str) -> None:
    plan = run_program(stack, {"deletionProtection": "false"})
    assert not [r.name for r in plan.resources if r.protect]


def test_prod_patroni_protects_every_stateful_resource_but_the_instances() -> None:
    """Volumes, their key, the credentials, node identities (ENIs) and buckets survive a forced `pulumi up`;
    instances are meant to be replaced one at a time (their data lives on the protected volumes), and a
    replaced instance replaces its volume attachment (instanceId is force-new), so that is not protected either."""
    plan = run_program("prod", {"engine": "patroni"})
    unprotected = {r.type for r in plan.resources if is_stateful(r.type) and not r.protect}
    assert unprotected == {"aws:ec2/instance:Instance", "aws:ec2/volumeAttachment:VolumeAttachment"}
    key = next(r for r in plan.resources if r.type == "aws:kms/key:Key" and "patroni" in r.name)
    assert key.protect
