"""Policy rules for the hardening pgha added for issue #12: flow logs, default security groups, the
schema hook's Lambda, the CloudWatch Logs scope of KMS keys, encrypted log groups with retention.

Each rule names the AWS Security Hub Foundational Security Best Practices (FSBP) control it
enforces, or says that none exists and which pgha requirement it keeps; each states its
enforcement level. ``POLICIES`` holds the resource rules (``validate(args, report_violation)``
takes a ``ResourceValidationArgs``); ``STACK_POLICIES`` the rules that need the whole stack
(``StackValidationArgs``). Importing this module starts nothing; the pack's ``__main__`` does.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from pulumi_policy import (
    EnforcementLevel,
    PolicyComplianceFramework,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)

FSBP = "AWS Foundational Security Best Practices"
VPC = "aws:ec2/vpc:Vpc"
FLOW_LOG = "aws:ec2/flowLog:FlowLog"
SCHEMA_HANDLER = "pgha.schema.lambda_handler.handler"


def _fsbp(control: str) -> PolicyComplianceFramework:
    return PolicyComplianceFramework(name=FSBP, reference=control)


def _rule(name: str, description: str, resource_type: str,
          check: Callable[[Mapping[str, Any], ReportViolation], None], level: EnforcementLevel,
          control: str | None = None) -> ResourceValidationPolicy:
    """A rule that runs ``check(props, report)`` on resources of one type only."""
    def validate(args: ResourceValidationArgs, report: ReportViolation) -> None:
        if args.resource_type == resource_type:
            check(args.props, report)
    return ResourceValidationPolicy(name=name, description=description, validate=validate, enforcement_level=level,
                                    framework=_fsbp(control) if control else None)


# --- EC2.6: VPC flow logging should be enabled in all VPCs -------------------------------------------


def _every_vpc_has_flow_logs(args: StackValidationArgs, report: ReportViolation) -> None:
    logged = {dep.urn for r in args.resources if r.resource_type == FLOW_LOG for dep in r.dependencies
              if dep.resource_type == VPC and r.props.get("trafficType") == "ALL"}
    for vpc in args.resources:
        if vpc.resource_type == VPC and vpc.urn not in logged:
            report(f"VPC {vpc.name} has no flow log of ALL traffic (FSBP EC2.6)", vpc.urn)


vpc_flow_logs = StackValidationPolicy(
    name="pgha-vpc-flow-logs",
    description="FSBP EC2.6: every VPC the stack creates has a flow log of ALL traffic. Mandatory.",
    validate=_every_vpc_has_flow_logs,
    enforcement_level=EnforcementLevel.MANDATORY,
    framework=_fsbp("EC2.6"),
)


def _flow_log_complete(props: Mapping[str, Any], report: ReportViolation) -> None:
    if props.get("trafficType") != "ALL":
        report(f"flow log records {props.get('trafficType')!r} traffic, not ALL (FSBP EC2.6)")
    if not props.get("logDestination"):
        report("flow log has no destination (FSBP EC2.6)")
    if props.get("logDestinationType", "cloud-watch-logs") == "cloud-watch-logs" and not props.get("iamRoleArn"):
        report("flow log to CloudWatch Logs has no IAM role to deliver with (FSBP EC2.6)")


flow_log_complete = _rule(
    "pgha-flow-log-complete",
    "FSBP EC2.6: a flow log records ALL traffic to a destination it can deliver to. Mandatory.",
    FLOW_LOG, _flow_log_complete, EnforcementLevel.MANDATORY, "EC2.6",
)


# --- EC2.2: VPC default security groups should not allow inbound or outbound traffic ----------------


def _default_sg_closed(props: Mapping[str, Any], report: ReportViolation) -> None:
    for direction in ("ingress", "egress"):
        if props.get(direction):
            report(f"the default security group has {direction} rules; it must have none (FSBP EC2.2)")


default_security_group_closed = _rule(
    "pgha-default-security-group-closed",
    "FSBP EC2.2: the default security group of each VPC allows no inbound or outbound traffic. "
                "Mandatory.",
    "aws:ec2/defaultSecurityGroup:DefaultSecurityGroup", _default_sg_closed, EnforcementLevel.MANDATORY, "EC2.2",
)


# --- the schema hook's Lambda (no FSBP control: pgha issue #12 item 5) -------------------------------


def _schema_hook_runs_alone(props: Mapping[str, Any], report: ReportViolation) -> None:
    if props.get("handler") == SCHEMA_HANDLER and props.get("reservedConcurrentExecutions") != 1:
        report("the schema hook must have reserved concurrency 1: two deployments must never migrate at once")


schema_hook_runs_alone = _rule(
    "pgha-schema-hook-runs-alone",
    "No FSBP control (pgha #12.5): the schema hook Lambda has reserved concurrency 1. Mandatory.",
    "aws:lambda/function:Function", _schema_hook_runs_alone, EnforcementLevel.MANDATORY,
)


def _lambda_traced(props: Mapping[str, Any], report: ReportViolation) -> None:
    if (props.get("tracingConfig") or {}).get("mode") != "Active":
        report("Lambda function without active X-Ray tracing")


lambda_tracing = _rule(
    "pgha-lambda-tracing",
    "No FSBP control (pgha #12.5): Lambda functions have active X-Ray tracing. Advisory: tracing "
                "helps diagnose, its absence endangers nothing.",
    "aws:lambda/function:Function", _lambda_traced, EnforcementLevel.ADVISORY,
)


# --- KMS: CloudWatch Logs may use a key only for named log groups ------------------------------------


def _logs_use_is_scoped(props: Mapping[str, Any], report: ReportViolation) -> None:
    policy = props.get("policy")
    if not isinstance(policy, str):  # unknown during a preview of a new key
        return
    statements = json.loads(policy).get("Statement", [])
    for statement in statements if isinstance(statements, list) else [statements]:
        services = (statement.get("Principal") or {}).get("Service", [])
        services = [services] if isinstance(services, str) else services
        if statement.get("Effect") != "Allow" or not any(s.startswith("logs.") for s in services):
            continue
        condition = statement.get("Condition") or {}
        patterns = [p for op in ("ArnLike", "ArnEquals", "StringLike", "StringEquals")
                    for p in _as_list((condition.get(op) or {}).get("kms:EncryptionContext:aws:logs:arn"))]
        if not patterns:
            report(f"statement {statement.get('Sid', '?')}: CloudWatch Logs may use the key for any log group; "
                   "add a kms:EncryptionContext:aws:logs:arn condition naming the stack's log groups")
        for pattern in patterns:
            group = pattern.split(":log-group:", 1)[-1] if ":log-group:" in pattern else ""
            if group.strip("*") == "":
                report(f"statement {statement.get('Sid', '?')}: {pattern!r} lets CloudWatch Logs use the key "
                       "for every log group")


def _as_list(value: Any) -> list[str]:
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)


kms_logs_scoped = _rule(
    "pgha-kms-logs-scoped",
    "No FSBP control (least privilege on the key, pgha #12.5; cf. FSBP KMS.2 for principals): "
                "CloudWatch Logs may use a KMS key only for log groups named in "
                "kms:EncryptionContext:aws:logs:arn. Mandatory.",
    "aws:kms/key:Key", _logs_use_is_scoped, EnforcementLevel.MANDATORY,
)


# --- log groups (flow logs, database logs): encrypted with a CMK and with a retention -----------------


def _log_group_encrypted_with_retention(props: Mapping[str, Any], report: ReportViolation) -> None:
    if not props.get("kmsKeyId"):
        report("log group not encrypted with a customer-managed KMS key")
    if not props.get("retentionInDays"):
        report("log group keeps its events forever: set retentionInDays")


log_groups_encrypted = _rule(
    "pgha-log-groups-encrypted-with-retention",
    "No FSBP control of its own (it completes EC2.6: flow logs to a KMS-encrypted log group with "
                "retention): every log group is encrypted with a CMK and has a retention. Mandatory.",
    "aws:cloudwatch/logGroup:LogGroup", _log_group_encrypted_with_retention, EnforcementLevel.MANDATORY,
)


#: Resource rules: ``validate(ResourceValidationArgs, report_violation)``.
POLICIES: list[ResourceValidationPolicy] = [
    flow_log_complete, default_security_group_closed, schema_hook_runs_alone, lambda_tracing, kms_logs_scoped,
    log_groups_encrypted,
]
#: Rules over the whole stack: ``validate(StackValidationArgs, report_violation)``.
STACK_POLICIES: list[StackValidationPolicy] = [vpc_flow_logs]
