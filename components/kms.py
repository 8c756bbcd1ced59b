"""A customer-managed KMS key for one region of the stack."""

from __future__ import annotations

import json

import pulumi
import pulumi_aws as aws


def key_policy(account_id: str, region: str) -> str:
    """The CMK's explicit key policy.

    The account administers the key through IAM; CloudWatch Logs, CloudWatch alarms and
    RDS event notifications may use it only for their own encryption in this region.
    """
    root = f"arn:aws:iam::{account_id}:root"
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
            "Principal": {"Service": f"logs.{region}.amazonaws.com"},
            "Action": ["kms:Encrypt*", "kms:Decrypt*", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:Describe*"],
            "Resource": "*",
            "Condition": {
                "ArnLike": {"kms:EncryptionContext:aws:logs:arn": f"arn:aws:logs:{region}:{account_id}:log-group:*"}
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


def create_cmk(name: str, purpose: str, region: str, parent: pulumi.Resource) -> aws.kms.Key:
    """A rotating CMK with an explicit policy and an alias, as a child of ``parent``.

    Used for the primary region and again for the DR region: KMS keys are regional.
    """
    opts = pulumi.ResourceOptions(parent=parent)
    identity = aws.get_caller_identity_output(opts=pulumi.InvokeOutputOptions(parent=parent))
    key = aws.kms.Key(
        f"{name}-key",
        description=purpose,
        enable_key_rotation=True,
        rotation_period_in_days=365,
        deletion_window_in_days=30,
        policy=identity.account_id.apply(lambda account: key_policy(account, region)),
        opts=opts,
    )
    aws.kms.Alias(f"{name}-key-alias", name=f"alias/{name}", target_key_id=key.key_id, opts=opts)
    return key
