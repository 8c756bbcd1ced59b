"""The hardening policy rules: silent on the prod plan, and each one fires on a resource made to break it."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from pulumi_policy import (
    EnforcementLevel,
    PolicyCustomTimeouts,
    PolicyResource,
    PolicyResourceOptions,
    ResourceValidationArgs,
    StackValidationArgs,
)

from pgha.ci.harness import Plan, RegisteredResource, redact
from pgha.ci.policy.hardening import (
    POLICIES,
    STACK_POLICIES,
    default_security_group_closed,
    flow_log_complete,
    kms_logs_scoped,
    lambda_tracing,
    log_groups_encrypted,
    schema_hook_runs_alone,
    vpc_flow_logs,
)


def _opts(resource: RegisteredResource) -> PolicyResourceOptions:
    return PolicyResourceOptions(resource.protect, [], None, [], PolicyCustomTimeouts(0, 0, 0), [], resource.parent)


def resource_args(resource: RegisteredResource, **props: Any) -> ResourceValidationArgs:
    """What the policy engine hands a rule for this registered resource, with ``props`` changed."""
    inputs = copy.deepcopy(redact(resource.inputs))
    for key, value in props.items():
        if value is None:
            inputs.pop(key, None)
        else:
            inputs[key] = value
    return ResourceValidationArgs(resource.type, inputs, resource.urn, resource.name, _opts(resource), None)


def stack_args(plan: Plan, without: set[str] = frozenset()) -> StackValidationArgs:
    """The whole plan as the engine's stack view (resources by URN, with their dependencies)."""
    kept = [r for r in plan.resources if r.name not in without]
    policy = {r.urn: PolicyResource(r.type, redact(r.inputs), r.urn, r.name, _opts(r), None, None, [], {})
              for r in kept}
    for r in kept:
        policy[r.urn].dependencies.extend(policy[d] for d in r.dependencies if d in policy)
    return StackValidationArgs(list(policy.values()))


def violations(rule: Any, args: Any) -> list[str]:
    found: list[str] = []
    rule.validate(args, lambda message, urn=None: found.append(message))
    return found


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
    for rule in POLICIES:
        for resource in plan.resources:
            assert violations(rule, resource_args(resource)) == [], (rule.name, resource.name)
    for rule in STACK_POLICIES:
        assert violations(rule, stack_args(plan)) == [], rule.name


def test_a_vpc_without_flow_log_is_reported(prod_plan: Plan) -> None:
    found = violations(vpc_flow_logs, stack_args(prod_plan, without={"pgha-prod-dr-net-flow-log"}))
    assert found == ["VPC pgha-prod-dr-net-vpc has no flow log of ALL traffic (FSBP EC2.6)"]


def test_a_flow_log_of_rejected_traffic_only_is_reported(prod_plan: Plan) -> None:
    flow = prod_plan.get("pgha-prod-net-flow-log")
    assert violations(flow_log_complete, resource_args(flow, trafficType="REJECT"))
    assert violations(flow_log_complete, resource_args(flow, iamRoleArn=None))
    assert violations(vpc_flow_logs, _with_props(prod_plan, flow.name, trafficType="REJECT"))


def _with_props(plan: Plan, name: str, **props: Any) -> StackValidationArgs:
    args = stack_args(plan)
    target = next(r for r in args.resources if r.name == name)
    target.props = {**target.props, **props}
    return args


def test_a_default_security_group_with_rules_is_reported(prod_plan: Plan) -> None:
    group = prod_plan.of_type("aws:ec2/defaultSecurityGroup:DefaultSecurityGroup")[0]
    allow_all = [{"protocol": "-1", "fromPort": 0, "toPort": 0, "cidrBlocks": ["0.0.0.0/0"]}]
    assert violations(default_security_group_closed, resource_args(group, egress=allow_all))
    assert violations(default_security_group_closed, resource_args(group, ingress=allow_all, egress=allow_all)) == [
        "the default security group has ingress rules; it must have none (FSBP EC2.2)",
        "the default security group has egress rules; it must have none (FSBP EC2.2)",
    ]


def test_a_schema_hook_that_may_run_twice_at_once_is_reported(prod_plan: Plan) -> None:
    function = prod_plan.get("pgha-prod-schema-fn")
    assert violations(schema_hook_runs_alone, resource_args(function, reservedConcurrentExecutions=None))
    assert violations(schema_hook_runs_alone, resource_args(function, reservedConcurrentExecutions=5))
    # another function is not the schema hook's business
    other = resource_args(function, handler="app.handler", reservedConcurrentExecutions=None)
    assert violations(schema_hook_runs_alone, other) == []


def test_an_untraced_function_is_reported(prod_plan: Plan) -> None:
    function = prod_plan.get("pgha-prod-schema-fn")
    assert violations(lambda_tracing, resource_args(function, tracingConfig={"mode": "PassThrough"}))
    assert violations(lambda_tracing, resource_args(function, tracingConfig=None))


def test_a_key_logs_may_use_for_any_log_group_is_reported(prod_plan: Plan) -> None:
    key = prod_plan.get("pgha-prod-key")
    policy = json.loads(key.inputs["policy"])
    logs = next(s for s in policy["Statement"] if s["Sid"] == "CloudWatchLogsEncryptsDatabaseLogs")
    # the condition pgha had before: every log group of the account
    logs["Condition"] = {"ArnLike": {"kms:EncryptionContext:aws:logs:arn":
                                     "arn:aws:logs:eu-west-1:123456789012:log-group:*"}}
    found = violations(kms_logs_scoped, resource_args(key, policy=json.dumps(policy)))
    assert len(found) == 1 and "every log group" in found[0]
    del logs["Condition"]
    found = violations(kms_logs_scoped, resource_args(key, policy=json.dumps(policy)))
    assert len(found) == 1 and "any log group" in found[0]


def test_a_log_group_without_key_or_retention_is_reported(prod_plan: Plan) -> None:
    group = prod_plan.get("pgha-prod-net-flow-logs")
    assert violations(log_groups_encrypted, resource_args(group, kmsKeyId=None)) == [
        "log group not encrypted with a customer-managed KMS key"]
    assert violations(log_groups_encrypted, resource_args(group, retentionInDays=None)) == [
        "log group keeps its events forever: set retentionInDays"]
