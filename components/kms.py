"""A customer-managed KMS key for one region of the stack."""

from __future__ import annotations

import json
import re

import pulumi
import pulumi_aws as aws

from components.partitions import COMMERCIAL, Partition


def stack_prefix(project: str | None = None, stack: str | None = None) -> str:
    """Physical-name prefix shared by every resource of a stack (e.g. ``pgha-prod``).

    Defaults to the running program's project and stack.
    """
    project = project if project is not None else pulumi.get_project()
    stack = stack if stack is not None else pulumi.get_stack()
    return re.sub(r"[^a-z0-9-]", "-", f"{project}-{stack}".lower())


def stack_log_groups(account_id: str, region: str, prefix: str, part: Partition = COMMERCIAL) -> list[str]:
    """ARN patterns of the log groups a stack makes: RDS exports, its Lambda functions, ``/pgha/<prefix>-...``.

    The key policy lets CloudWatch Logs use a key only for these (FSBP: scope key use).
    """
    base = f"arn:{part.name}:logs:{region}:{account_id}:log-group:"
    return [f"{base}/aws/rds/instance/{prefix}-*", f"{base}/aws/lambda/{prefix}-*", f"{base}/pgha/{prefix}-*"]


def key_policy(account_id: str, region: str, prefix: str | None = None, part: Partition = COMMERCIAL) -> str:
    """The CMK's explicit key policy.

    The account administers the key through IAM; CloudWatch Logs may use it only for this
    stack's log groups (``kms:EncryptionContext:aws:logs:arn``), CloudWatch alarms and RDS
    event notifications only for their own encryption in this account.
    """
    prefix = prefix if prefix is not None else stack_prefix()
    root = f"arn:{part.name}:iam::{account_id}:root"
    statements = [
        {
            "Sid": "AccountAdministersKeyThroughIam",
            "Effect": "Allow",
            "Principal": {"AWS": root},
            "Action": "kms:*",
            "Resource": "*",
        },
        {
            "Sid": "CloudWatchLogsEncryptsDatabaseLogs",
            "Effect": "Allow",
            "Principal": {"Service": f"logs.{region}.{part.dns_suffix}"},
            "Action": ["kms:Encrypt*", "kms:Decrypt*", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:Describe*"],
            "Resource": "*",
            "Condition": {
                "ArnLike": {"kms:EncryptionContext:aws:logs:arn": stack_log_groups(account_id, region, prefix, part)}
            },
        },
        {
            "Sid": "AlarmsAndRdsEventsPublishToEncryptedTopic",
            "Effect": "Allow",
            "Principal": {"Service": ["cloudwatch.amazonaws.com", "events.rds.amazonaws.com"]},
            "Action": ["kms:Decrypt", "kms:GenerateDataKey*"],
            "Resource": "*",
            "Condition": {"StringEquals": {"aws:SourceAccount": account_id}},
        },
    ]
    return json.dumps({"Version": "2012-10-17", "Statement": statements})


def create_cmk(
    name: str, purpose: str, region: pulumi.Input[str], parent: pulumi.Resource, protect: bool = False
) -> aws.kms.Key:
    """A rotating CMK with an explicit policy and an alias, as a child of ``parent``.

    Used for the primary region and again for the DR region: KMS keys are regional.
    ``protect``: Pulumi refuses to delete it (everything it encrypted would be lost with it).
    """
    opts = pulumi.ResourceOptions(parent=parent)
    invoke = pulumi.InvokeOutputOptions(parent=parent)
    identity = aws.get_caller_identity_output(opts=invoke)
    part = aws.get_partition_output(opts=invoke)
    prefix = stack_prefix()
    key = aws.kms.Key(
        f"{name}-key",
        description=purpose,
        enable_key_rotation=True,
        rotation_period_in_days=365,
        deletion_window_in_days=30,
        policy=pulumi.Output.all(identity.account_id, region, part.partition, part.dns_suffix).apply(
            lambda values: key_policy(values[0], values[1], prefix, Partition(values[2], values[3]))
        ),
        opts=pulumi.ResourceOptions(parent=parent, protect=protect),
    )
    aws.kms.Alias(f"{name}-key-alias", name=f"alias/{name}", target_key_id=key.key_id, opts=opts)
    return key
