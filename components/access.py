"""Small building blocks every component uses to grant access: TCP rules and service roles."""

from __future__ import annotations

import json
from collections.abc import Sequence

import pulumi
import pulumi_aws as aws


def allow_tcp(
    name: str,
    security_group_id: pulumi.Input[str],
    port: int,
    description: str,
    parent: pulumi.Resource,
    *,
    cidr: pulumi.Input[str] | None = None,
    source_security_group_id: pulumi.Input[str] | None = None,
    egress: bool = False,
    aliases: Sequence[pulumi.Alias] = (),
) -> aws.vpc.SecurityGroupIngressRule | aws.vpc.SecurityGroupEgressRule:
    """One TCP port, in (or out with ``egress``) from a CIDR or another security group: one rule per grant.

    ``aliases``: names the rule had before, so a renamed rule keeps its identity instead of being replaced.
    """
    rule = aws.vpc.SecurityGroupEgressRule if egress else aws.vpc.SecurityGroupIngressRule
    return rule(
        name,
        security_group_id=security_group_id,
        ip_protocol="tcp",
        from_port=port,
        to_port=port,
        cidr_ipv4=cidr,
        referenced_security_group_id=source_security_group_id,
        description=description,
        opts=pulumi.ResourceOptions(parent=parent, aliases=list(aliases) or None),
    )


def service_role(
    name: str, service: str, parent: pulumi.Resource, managed_policies: tuple[str, ...] = ()
) -> aws.iam.Role:
    """An IAM role only ``service`` (e.g. ``lambda.amazonaws.com``) may assume, with AWS managed policies attached."""
    role = aws.iam.Role(
        name,
        assume_role_policy=json.dumps({
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole", "Principal": {"Service": service}}],
        }),
        opts=pulumi.ResourceOptions(parent=parent),
    )
    for policy in managed_policies:
        aws.iam.RolePolicyAttachment(
            f"{name}-{policy.rsplit('/', 1)[-1]}", role=role.name, policy_arn=policy,
            opts=pulumi.ResourceOptions(parent=parent),
        )
    return role


def inline_policy(name: str, role: aws.iam.Role, statements: pulumi.Input[list[dict]], parent: pulumi.Resource) -> None:
    """An inline policy of Allow statements ``{"Action": ..., "Resource": ...}`` on ``role``."""
    aws.iam.RolePolicy(
        name,
        role=role.id,
        policy=pulumi.Output.from_input(statements).apply(lambda items: json.dumps({
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", **item} for item in items],
        })),
        opts=pulumi.ResourceOptions(parent=parent),
    )


def may_read_secret(
    name: str, role: aws.iam.Role, secret_arn: pulumi.Input[str] | Sequence[pulumi.Input[str]],
    key_arn: pulumi.Input[str], parent: pulumi.Resource,
) -> None:
    """Let ``role`` read these Secrets Manager secrets (one ARN or a list) and decrypt with their key, nothing else."""
    inline_policy(name, role, [
        {"Action": "secretsmanager:GetSecretValue", "Resource": secret_arn},
        {"Action": "kms:Decrypt", "Resource": key_arn},
    ], parent)
