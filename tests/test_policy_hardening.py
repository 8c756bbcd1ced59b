"""The hardening policy rules: silent on the prod plan, and each one fires on a resource made to break it."""

from __future__ import annotations

import copy
import dataclasses
import json
from typing import Any

import pytest
from pulumi_policy import EnforcementLevel

from pgha.ci.harness import Plan, RegisteredResource
from pgha.ci.policy import evaluate
from pgha.ci.policy.hardening import (
    POLICIES,
    STACK_POLICIES,
    default_security_group_closed,
    flow_log_complete,
    kms_logs_scoped,
    lambda_tracing,
    log_groups_encrypted,
    vpc_flow_logs,
)


def changed(resource: RegisteredResource, **props: Any) -> RegisteredResource:
    """A copy of the resource with ``props`` set (``None`` removes the input)."""
    inputs = copy.deepcopy(resource.inputs)
    for key, value in props.items():
        if value is None:
            inputs.pop(key, None)
        else:
            inputs[key] = value
    return dataclasses.replace(resource, inputs=inputs)


def violations(rule: Any, *resources: RegisteredResource) -> list[str]:
    """What one rule reports over these resources, evaluated as `pgha policy` evaluates it."""
    return [v.message for v in evaluate(list(resources), [rule])]


def with_props(plan: Plan, name: str, **props: Any) -> list[RegisteredResource]:
    """The plan's resources with one of them changed."""
    return [changed(r, **props) if r.name == name else r for r in plan.resources]


def test_every_rule_names_its_control_and_enforcement_level() -> None:
    for rule in [*POLICIES, *STACK_POLICIES]:
        assert "FSBP" in rule.description, rule.name
        level = rule.enforcement_level
        assert level in (EnforcementLevel.MANDATORY, EnforcementLevel.ADVISORY), rule.name
        assert level.value.capitalize() in rule.description, rule.name
    assert vpc_flow_logs.framework.reference == "EC2.6"
    assert default_security_group_closed.framework.reference == "EC2.2"


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_the_committed_stacks_pass_every_rule(stack: str, dev_plan: Plan, prod_plan: Plan) -> None:
    plan = {"dev": dev_plan, "prod": prod_plan}[stack]
    for rule in [*POLICIES, *STACK_POLICIES]:
        assert violations(rule, *plan.resources) == [], rule.name


def test_a_vpc_without_flow_log_is_reported(prod_plan: Plan) -> None:
    found = violations(vpc_flow_logs, *(r for r in prod_plan.resources if r.name != "pgha-prod-dr-net-flow-log"))
    assert found == ["VPC pgha-prod-dr-net-vpc has no flow log of ALL traffic (FSBP EC2.6)"]


def test_a_flow_log_of_rejected_traffic_only_is_reported(prod_plan: Plan) -> None:
    flow = prod_plan.get("pgha-prod-net-flow-log")
    assert violations(flow_log_complete, changed(flow, trafficType="REJECT"))
    assert violations(flow_log_complete, changed(flow, iamRoleArn=None))
    assert violations(vpc_flow_logs, *with_props(prod_plan, flow.name, trafficType="REJECT"))


def test_a_default_security_group_with_rules_is_reported(prod_plan: Plan) -> None:
    group = prod_plan.of_type("aws:ec2/defaultSecurityGroup:DefaultSecurityGroup")[0]
    allow_all = [{"protocol": "-1", "fromPort": 0, "toPort": 0, "cidrBlocks": ["0.0.0.0/0"]}]
    assert violations(default_security_group_closed, changed(group, egress=allow_all))
    assert violations(default_security_group_closed, changed(group, ingress=allow_all, egress=allow_all)) == [
        "the default security group has ingress rules; it must have none (FSBP EC2.2)",
        "the default security group has egress rules; it must have none (FSBP EC2.2)",
    ]


def test_an_untraced_function_is_reported(prod_plan: Plan) -> None:
    function = prod_plan.get("pgha-prod-schema-fn")
    assert violations(lambda_tracing, changed(function, tracingConfig={"mode": "PassThrough"}))
    assert violations(lambda_tracing, changed(function, tracingConfig=None))


def test_a_key_logs_may_use_for_any_log_group_is_reported(prod_plan: Plan) -> None:
    key = prod_plan.get("pgha-prod-key")
    policy = json.loads(key.inputs["policy"])
    logs = next(s for s in policy["Statement"] if s["Sid"] == "CloudWatchLogsEncryptsDatabaseLogs")
    # the condition pgha had before: every log group of the account
    logs["Condition"] = {
        "ArnLike": {"kms:EncryptionContext:aws:logs:arn": "arn:aws:logs:eu-west-1:123456789012:log-group:*"}
    }
    found = violations(kms_logs_scoped, changed(key, policy=json.dumps(policy)))
    assert len(found) == 1 and "every log group" in found[0]
    del logs["Condition"]
    found = violations(kms_logs_scoped, changed(key, policy=json.dumps(policy)))
    assert len(found) == 1 and "any log group" in found[0]


def test_a_log_group_without_key_or_retention_is_reported(prod_plan: Plan) -> None:
    group = prod_plan.get("pgha-prod-net-flow-logs")
    assert violations(log_groups_encrypted, changed(group, kmsKeyId=None)) == [
        "log group not encrypted with a customer-managed KMS key"
    ]
    assert violations(log_groups_encrypted, changed(group, retentionInDays=None)) == [
        "log group keeps its events forever: set retentionInDays"
    ]
