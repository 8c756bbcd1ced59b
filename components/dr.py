"""Cross-region disaster recovery: a read replica and automated-backup replication in another region."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from components.kms import create_cmk
from components.network import Network, NetworkArgs
from components.parameters import create_parameter_group
from components.rds import RdsPostgresArgs, create_log_groups, instance_settings


@dataclass(frozen=True)
class DrReplicaArgs:
    """The DR region and what the replica copies from the primary."""

    region: str
    source: aws.rds.Instance
    #: The primary's settings; the DR replica mirrors them in its own region.
    rds: RdsPostgresArgs
    monitoring_role_arn: pulumi.Input[str]
    vpc_cidr: str = "10.41.0.0/16"
    tags: dict[str, str] | None = None


class DrReplica(pulumi.ComponentResource):
    """Everything in the DR region, under its own provider, KMS key and subnet group.

    The replica keeps the primary's backup retention so that, once promoted, it is a
    protected primary straight away.
    """

    instance: aws.rds.Instance
    key: aws.kms.Key

    def __init__(self, name: str, args: DrReplicaArgs, opts: pulumi.ResourceOptions | None = None):
        self.provider = aws.Provider(
            f"{name}-provider", region=args.region, default_tags={"tags": args.tags or {}}, opts=opts
        )
        super().__init__(
            "pgha:dr:DrReplica",
            name,
            None,
            pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(providers={"aws": self.provider})),
        )
        child = pulumi.ResourceOptions(parent=self)
        self.key = create_cmk(name, "pgha DR replica encryption", args.region, self)
        self.network = Network(f"{name}-net", NetworkArgs(vpc_cidr=args.vpc_cidr, interface_endpoints=()), child)
        params = create_parameter_group(
            name, args.rds.postgres_version, args.rds.max_connections, args.rds.db_name, self
        )
        identifier = f"{name}-replica"
        self.instance = aws.rds.Instance(
            identifier,
            identifier=identifier,
            # cross-region replicas name their source by ARN
            replicate_source_db=args.source.arn,
            db_subnet_group_name=self.network.db_subnet_group_name,
            vpc_security_group_ids=[self.network.db_security_group_id],
            multi_az=False,
            backup_retention_period=args.rds.backup_retention_days,
            backup_window=args.rds.backup_window,
            maintenance_window=args.rds.maintenance_window,
            skip_final_snapshot=not args.rds.deletion_protection,
            final_snapshot_identifier=f"{identifier}-final" if args.rds.deletion_protection else None,
            **instance_settings(args.rds, self.key.arn, args.monitoring_role_arn, params.name),
            opts=pulumi.ResourceOptions(
                parent=self,
                depends_on=create_log_groups(identifier, self.key.arn, args.rds.log_retention_days, self),
            ),
        )
        self.backups = aws.rds.InstanceAutomatedBackupsReplication(
            f"{name}-backup-replication",
            source_db_instance_arn=args.source.arn,
            kms_key_id=self.key.arn,
            retention_period=args.rds.backup_retention_days,
            opts=child,
        )
        self.register_outputs({"drReplicaArn": self.instance.arn, "drKmsKeyArn": self.key.arn})
