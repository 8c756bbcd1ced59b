"""Small building blocks every component uses to grant access: TCP rules and service roles."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field

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


@dataclass
class ServiceRole:
    """A service's IAM role and the grants attached to it.

    IAM is eventually consistent, and AWS checks a role's permissions when a resource that uses it is
    created (RDS enhanced monitoring, a Lambda function in a VPC) or runs (the schema hook reading its
    secrets): whoever uses the role waits for :attr:`grants`, not only for the role.
    """

    role: aws.iam.Role
    #: Managed-policy attachments and inline policies, in the order they were declared.
    grants: list[pulumi.Resource] = field(default_factory=list)

    @property
    def arn(self) -> pulumi.Output[str]:
        """The role's ARN."""
        return self.role.arn

    @property
    def name(self) -> pulumi.Output[str]:
        """The role's name."""
        return self.role.name

    @property
    def ready(self) -> list[pulumi.Resource]:
        """The role and every grant: what a resource using the role depends on."""
        return [self.role, *self.grants]


def service_role(
    name: str, service: str, parent: pulumi.Resource, managed_policies: tuple[str, ...] = ()
) -> ServiceRole:
    """An IAM role only ``service`` (e.g. ``lambda.amazonaws.com``) may assume, with AWS managed policies attached.

    ``managed_policies`` are AWS managed policies by path (``service-role/AmazonRDSEnhancedMonitoringRole``),
    their ARNs built in the stack's partition (``aws``, ``aws-us-gov``, ...).
    """
    role = aws.iam.Role(
        name,
        assume_role_policy=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole", "Principal": {"Service": service}}],
            }
        ),
        opts=pulumi.ResourceOptions(parent=parent),
    )
    granted = ServiceRole(role)
    for policy in managed_policies:
        granted.grants.append(
            aws.iam.RolePolicyAttachment(
                f"{name}-{policy.rsplit('/', 1)[-1]}",
                role=role.name,
                policy_arn=aws_managed_policy(policy, parent),
                opts=pulumi.ResourceOptions(parent=parent),
            )
        )
    return granted


def partition(parent: pulumi.Resource) -> pulumi.Output[str]:
    """The ARN partition of the region ``parent``'s provider works in: ``aws``, ``aws-us-gov``, ``aws-cn``, ..."""
    return aws.get_partition_output(opts=pulumi.InvokeOutputOptions(parent=parent)).partition


def aws_managed_policy(policy: str, parent: pulumi.Resource) -> pulumi.Output[str]:
    """The ARN of an AWS managed policy (``service-role/AmazonRDSEnhancedMonitoringRole``) in the stack's partition."""
    return partition(parent).apply(lambda part: f"arn:{part}:iam::aws:policy/{policy}")


def inline_policy(
    name: str, role: ServiceRole, statements: pulumi.Input[list[dict]], parent: pulumi.Resource
) -> aws.iam.RolePolicy:
    """An inline policy of Allow statements ``{"Action": ..., "Resource": ...}`` on ``role``, counted in its grants."""
    policy = aws.iam.RolePolicy(
        name,
        role=role.role.id,
        policy=pulumi.Output.from_input(statements).apply(
            lambda items: json.dumps(
                {
                    "Version": "2012-10-17",
                    "Statement": [{"Effect": "Allow", **item} for item in items],
                }
            )
        ),
        opts=pulumi.ResourceOptions(parent=parent),
    )
    role.grants.append(policy)
    return policy


def may_read_secret(
    name: str,
    role: ServiceRole,
    secret_arn: pulumi.Input[str] | Sequence[pulumi.Input[str]],
    key_arn: pulumi.Input[str],
    parent: pulumi.Resource,
) -> aws.iam.RolePolicy:
    """Let ``role`` read these Secrets Manager secrets (one ARN or a list) and decrypt with their key, nothing else."""
    return inline_policy(
        name,
        role,
        [
            {"Action": "secretsmanager:GetSecretValue", "Resource": secret_arn},
            {"Action": "kms:Decrypt", "Resource": key_arn},
        ],
        parent,
    )
