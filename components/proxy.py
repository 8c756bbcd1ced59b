"""Optional RDS Proxy in front of the primary: pooled, TLS-only, IAM-authenticated connections."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from components.access import allow_tcp, may_read_secret, service_role
from components.network import POSTGRES_PORT, admit_clients


@dataclass(frozen=True)
class RdsProxyArgs:
    """The instance to front and how clients reach the proxy."""

    db_instance_identifier: pulumi.Input[str]
    #: The application logins' secrets: the proxy authenticates clients as these, never as the master user.
    auth_secret_arns: Sequence[pulumi.Input[str]]
    kms_key_arn: pulumi.Input[str]
    vpc_id: pulumi.Input[str]
    vpc_cidr: pulumi.Input[str]
    subnet_ids: pulumi.Input[Sequence[str]]
    allowed_cidrs: Sequence[str] = ()
    allowed_security_group_ids: Sequence[str] = ()
    #: Share of max_connections the proxy may hold open to the database.
    max_connections_percent: int = 90


class RdsProxy(pulumi.ComponentResource):
    """RDS Proxy with TLS and IAM auth required, logging clients in as the application logins only.

    The master secret is deliberately not in its auth: a client of the proxy is then never
    ``rds_superuser`` and row-level security applies to it.
    """

    endpoint: pulumi.Output[str]
    security_group_id: pulumi.Output[str]

    def __init__(self, name: str, args: RdsProxyArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("pgha:proxy:RdsProxy", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)

        role = service_role(f"{name}-role", "rds.amazonaws.com", self)
        if not args.auth_secret_arns:
            raise ValueError("RdsProxy needs at least one application login secret")
        may_read_secret(f"{name}-read-secret", role, list(args.auth_secret_arns), args.kms_key_arn, self)

        sg = aws.ec2.SecurityGroup(
            f"{name}-sg", description="pgha RDS Proxy: PostgreSQL from allowed sources", vpc_id=args.vpc_id, opts=child
        )
        admit_clients(name, sg.id, POSTGRES_PORT, args.allowed_cidrs, args.allowed_security_group_ids, self)
        allow_tcp(
            f"{name}-to-db",
            sg.id,
            POSTGRES_PORT,
            "PostgreSQL to the database inside the VPC",
            self,
            cidr=args.vpc_cidr,
            egress=True,
        )

        proxy = aws.rds.Proxy(
            f"{name}-rds",
            engine_family="POSTGRESQL",
            require_tls=True,
            idle_client_timeout=1800,
            role_arn=role.arn,
            vpc_subnet_ids=args.subnet_ids,
            vpc_security_group_ids=[sg.id],
            auths=[
                {
                    "auth_scheme": "SECRETS",
                    "secret_arn": arn,
                    "iam_auth": "REQUIRED",
                    "client_password_auth_type": "POSTGRES_SCRAM_SHA_256",
                }
                for arn in args.auth_secret_arns
            ],
            # the proxy reads its secrets with the role as soon as it exists
            opts=pulumi.ResourceOptions(parent=self, depends_on=role.ready),
        )
        group = aws.rds.ProxyDefaultTargetGroup(
            f"{name}-targets",
            db_proxy_name=proxy.name,
            connection_pool_config={"max_connections_percent": args.max_connections_percent},
            opts=child,
        )
        aws.rds.ProxyTarget(
            f"{name}-primary",
            db_proxy_name=proxy.name,
            target_group_name=group.name,
            db_instance_identifier=args.db_instance_identifier,
            opts=child,
        )
        self.endpoint = proxy.endpoint
        self.security_group_id = sg.id
        self.register_outputs({"endpoint": self.endpoint, "securityGroupId": sg.id})
