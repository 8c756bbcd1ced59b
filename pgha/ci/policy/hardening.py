"""Policy rules for the hardening pgha added for issue #12: flow logs, default security groups, the
schema hook's Lambda, the CloudWatch Logs scope of KMS keys, encrypted log groups with retention.

Each rule names the AWS Security Hub Foundational Security Best Practices (FSBP) control it
enforces, or says that none exists and which pgha requirement it keeps; each states its
enforcement level. ``POLICIES`` holds the resource rules (``validate(args, report_violation)``
takes a ``ResourceValidationArgs``); ``STACK_POLICIES`` the rules that need the whole stack
(``StackValidationArgs``). They are built, like every module's rules, by
:mod:`pgha.ci.policy.common`. Importing this module starts nothing; the pack's ``__main__`` does.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from pulumi_policy import PolicyResource, ResourceValidationArgs, ResourceValidationPolicy, StackValidationPolicy

from pgha.ci.policy.common import ADVISORY, MANDATORY, as_dict, as_list, resource_rule, stack_rule

VPC = "aws:ec2/vpc:Vpc"
FLOW_LOG = "aws:ec2/flowLog:FlowLog"
SCHEMA_HANDLER = "pgha.schema.lambda_handler.handler"
#: The requirement the rules without an FSBP control keep.
PGHA_12 = "pgha #12.5"


# --- EC2.6: VPC flow logging should be enabled in all VPCs -------------------------------------------


def _every_vpc_has_flow_logs(resources: Sequence[PolicyResource]) -> Iterable[tuple[str, str]]:
    logged = {
        dep.urn
        for r in resources
        if r.resource_type == FLOW_LOG
        for dep in r.dependencies
        if dep.resource_type == VPC and r.props.get("trafficType") == "ALL"
    }
    for vpc in resources:
        if vpc.resource_type == VPC and vpc.urn not in logged:
            yield vpc.urn, f"VPC {vpc.name} has no flow log of ALL traffic (FSBP EC2.6)"


vpc_flow_logs = stack_rule(
    "pgha-vpc-flow-logs",
    "EC2.6",
    "FSBP EC2.6: every VPC the stack creates has a flow log of ALL traffic. Mandatory.",
    MANDATORY,
    _every_vpc_has_flow_logs,
)


def _flow_log_complete(args: ResourceValidationArgs) -> Iterable[str]:
    props = args.props
    if props.get("trafficType") != "ALL":
        yield f"flow log records {props.get('trafficType')!r} traffic, not ALL (FSBP EC2.6)"
    if not props.get("logDestination"):
        yield "flow log has no destination (FSBP EC2.6)"
    if props.get("logDestinationType", "cloud-watch-logs") == "cloud-watch-logs" and not props.get("iamRoleArn"):
        yield "flow log to CloudWatch Logs has no IAM role to deliver with (FSBP EC2.6)"


flow_log_complete = resource_rule(
    "pgha-flow-log-complete",
    "EC2.6",
    "FSBP EC2.6: a flow log records ALL traffic to a destination it can deliver to. Mandatory.",
    MANDATORY,
    [FLOW_LOG],
    _flow_log_complete,
)


# --- EC2.2: VPC default security groups should not allow inbound or outbound traffic ----------------


def _default_sg_closed(args: ResourceValidationArgs) -> Iterable[str]:
    for direction in ("ingress", "egress"):
        if args.props.get(direction):
            yield f"the default security group has {direction} rules; it must have none (FSBP EC2.2)"


default_security_group_closed = resource_rule(
    "pgha-default-security-group-closed",
    "EC2.2",
    "FSBP EC2.2: the default security group of each VPC allows no inbound or outbound traffic. Mandatory.",
    MANDATORY,
    ["aws:ec2/defaultSecurityGroup:DefaultSecurityGroup"],
    _default_sg_closed,
)


# --- the schema hook's Lambda (no FSBP control: pgha issue #12 item 5) -------------------------------


def _lambda_traced(args: ResourceValidationArgs) -> Iterable[str]:
    if as_dict(args.props.get("tracingConfig")).get("mode") != "Active":
        yield "Lambda function without active X-Ray tracing"


lambda_tracing = resource_rule(
    "pgha-lambda-tracing",
    PGHA_12,
    "No FSBP control (pgha #12.5): Lambda functions have active X-Ray tracing. Advisory: tracing "
    "helps diagnose, its absence endangers nothing.",
    ADVISORY,
    ["aws:lambda/function:Function"],
    _lambda_traced,
)


# --- KMS: CloudWatch Logs may use a key only for named log groups ------------------------------------


def _logs_use_is_scoped(args: ResourceValidationArgs) -> Iterable[str]:
    policy = args.props.get("policy")
    if not isinstance(policy, str):  # unknown during a preview of a new key
        return
    statements = as_dict(policy).get("Statement", [])
    for statement in as_list(statements):
        services = as_list(as_dict(statement.get("Principal")).get("Service"))
        if statement.get("Effect") != "Allow" or not any(s.startswith("logs.") for s in services):
            continue
        condition = statement.get("Condition") or {}
        patterns = [
            p
            for op in ("ArnLike", "ArnEquals", "StringLike", "StringEquals")
            for p in as_list(as_dict(condition.get(op)).get("kms:EncryptionContext:aws:logs:arn"))
        ]
        if not patterns:
            yield (
                f"statement {statement.get('Sid', '?')}: CloudWatch Logs may use the key for any log group; "
                "add a kms:EncryptionContext:aws:logs:arn condition naming the stack's log groups"
            )
        for pattern in patterns:
            group = pattern.split(":log-group:", 1)[-1] if ":log-group:" in pattern else ""
            if group.strip("*") == "":
                yield (
                    f"statement {statement.get('Sid', '?')}: {pattern!r} lets CloudWatch Logs use the key "
                    "for every log group"
                )


kms_logs_scoped = resource_rule(
    "pgha-kms-logs-scoped",
    PGHA_12,
    "No FSBP control (least privilege on the key, pgha #12.5; cf. FSBP KMS.2 for principals): "
    "CloudWatch Logs may use a KMS key only for log groups named in "
    "kms:EncryptionContext:aws:logs:arn. Mandatory.",
    MANDATORY,
    ["aws:kms/key:Key"],
    _logs_use_is_scoped,
)


# --- log groups (flow logs, database logs): encrypted with a CMK and with a retention -----------------


def _log_group_encrypted_with_retention(args: ResourceValidationArgs) -> Iterable[str]:
    if not args.props.get("kmsKeyId"):
        yield "log group not encrypted with a customer-managed KMS key"
    if not args.props.get("retentionInDays"):
        yield "log group keeps its events forever: set retentionInDays"


log_groups_encrypted = resource_rule(
    "pgha-log-groups-encrypted-with-retention",
    PGHA_12,
    "No FSBP control of its own (it completes EC2.6: flow logs to a KMS-encrypted log group with "
    "retention): every log group is encrypted with a CMK and has a retention. Mandatory.",
    MANDATORY,
    ["aws:cloudwatch/logGroup:LogGroup"],
    _log_group_encrypted_with_retention,
)


#: Resource rules: ``validate(ResourceValidationArgs, report_violation)``.
POLICIES: list[ResourceValidationPolicy] = [
    flow_log_complete,
    default_security_group_closed,
    lambda_tracing,
    kms_logs_scoped,
    log_groups_encrypted,
]
#: Rules over the whole stack: ``validate(StackValidationArgs, report_violation)``.
STACK_POLICIES: list[StackValidationPolicy] = [vpc_flow_logs]
