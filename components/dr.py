"""Cross-region disaster recovery: the DR region's provider, a read replica and automated-backup replication."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws

from components.kms import create_cmk
from components.network import Network, NetworkArgs
from components.parameters import create_parameter_group
from components.rds import RdsPostgresArgs, create_log_groups, instance_settings


def dr_provider(
    name: str, region: str, tags: dict[str, str] | None = None, opts: pulumi.ResourceOptions | None = None
) -> aws.Provider:
    """The explicit AWS provider of the DR region (``<name>-provider``), with the stack's default tags.

    Everything pgha puts in the DR region goes through one of these: the RDS DR replica and, with
    engine patroni, the replica of the backup bucket. The primary region's provider never reaches it.
    """
    return aws.Provider(f"{name}-provider", region=region, default_tags={"tags": tags or {}}, opts=opts)


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
    #: The replica has been promoted (``pgha:drPromoted``): declare it as a standalone primary.
    promoted: bool = False
    #: A Multi-AZ replica (production stacks): once promoted it is a Multi-AZ primary without a
    #: change of its own, so the promotion update stays the promotion alone (see :func:`promotion_settings`).
    multi_az: bool = False


class DrReplica(pulumi.ComponentResource):
    """Everything in the DR region, under its own provider, KMS key and subnet group.

    The replica keeps the primary's backup retention and window, and in production is Multi-AZ from
    the start (RDS for PostgreSQL supports Multi-AZ read replicas, cross-region ones included), so
    that, once promoted, it is a protected, Multi-AZ primary straight away (the policy pack's RDS.5
    rule holds every production primary to Multi-AZ), and so that declaring the promotion changes
    no backup or availability setting (see :func:`promotion_settings`). Changing ``multi_az`` on an
    existing replica is an in-place modification, not a replacement.
    """

    instance: aws.rds.Instance
    key: aws.kms.Key

    def __init__(self, name: str, args: DrReplicaArgs, opts: pulumi.ResourceOptions | None = None):
        self.provider = dr_provider(name, args.region, args.tags, opts)
        super().__init__(
            "pgha:dr:DrReplica",
            name,
            None,
            pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(providers={"aws": self.provider})),
        )
        child = pulumi.ResourceOptions(parent=self)
        protect = args.rds.deletion_protection
        self.key = create_cmk(name, "pgha DR replica encryption", args.region, self, protect=protect)
        self.network = Network(
            f"{name}-net", NetworkArgs(vpc_cidr=args.vpc_cidr, interface_endpoints=(), protect=protect), child
        )
        params = create_parameter_group(
            name, args.rds.postgres_version, args.rds.max_connections, args.rds.db_name, self, protect=protect
        )
        identifier = f"{name}-replica"
        self.instance = aws.rds.Instance(
            identifier,
            identifier=identifier,
            db_subnet_group_name=self.network.db_subnet_group_name,
            vpc_security_group_ids=[self.network.db_security_group_id],
            multi_az=args.multi_az,
            backup_retention_period=args.rds.backup_retention_days,
            backup_window=args.rds.backup_window,
            maintenance_window=args.rds.maintenance_window,
            **promotion_settings(identifier, args),
            **instance_settings(args.rds, self.key.arn, args.monitoring_role_arn, params.name),
            opts=pulumi.ResourceOptions(
                parent=self,
                protect=protect,
                depends_on=create_log_groups(identifier, self.key.arn, args.rds.log_retention_days, self, protect),
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


def promotion_settings(identifier: str, args: DrReplicaArgs) -> dict[str, Any]:
    """The only inputs of the DR instance that differ between replica and promoted primary.

    As a replica it follows the primary (by ARN: it is cross-region) and skips the final
    snapshot, which RDS refuses for a read replica (deleting one with a snapshot fails).
    Promoted (``pgha:drPromoted``), it drops ``replicate_source_db`` (the provider promotes the
    instance in place; after ``pgha drill rds promote-dr`` promoted it already, apply with
    ``pulumi up --refresh`` so the state reads the standalone instance first) and takes a final
    snapshot and keeps its automated backups on delete
    when the stack is protected. Nothing else changes in that update: backups, windows and (in
    production) Multi-AZ are already set on the replica, and the final-snapshot settings are only
    read on delete, so the update is the promotion alone (hashicorp/terraform-provider-aws#4419:
    promotion plus other modifications needs two applies).
    """
    if not args.promoted:
        # cross-region replicas name their source by ARN
        return {"replicate_source_db": args.source.arn, "skip_final_snapshot": True}
    protected = args.rds.deletion_protection
    return {
        "skip_final_snapshot": not protected,
        "final_snapshot_identifier": f"{identifier}-final" if protected else None,
        "delete_automated_backups": not protected,
    }
