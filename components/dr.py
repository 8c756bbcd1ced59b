"""Cross-region disaster recovery: the DR region's provider, a read replica and automated-backup replication."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws

from components.access import ServiceRole
from components.kms import create_cmk
from components.names import dr_replica_identifier
from components.network import Network, NetworkArgs
from components.parameters import create_parameter_group
from components.rds import RdsPostgresArgs, create_log_groups, final_snapshot_identifier, instance_settings


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
    #: The primary's enhanced-monitoring role (IAM is global): the replica waits for its grants.
    monitoring_role: ServiceRole
    vpc_cidr: str = "10.41.0.0/16"
    tags: dict[str, str] | None = None
    #: The replica has been promoted (``pgha:drPromoted``): declare it as a standalone primary.
    promoted: bool = False
    #: A Multi-AZ replica (production stacks): once promoted it is a Multi-AZ primary straight away.
    multi_az: bool = False


class DrReplica(pulumi.ComponentResource):
    """Everything in the DR region, under its own provider, KMS key and subnet group.

    While it replicates, the instance has no automated backups, by choice: a replica in ``backing-up``
    cannot be promoted (PromoteReadReplica), and a DR promotion must not wait for a backup window
    (RDS allows automated backups on a PostgreSQL replica from 14.1 on). Until the promotion, the DR
    region's point-in-time restores come from the primary's automated backups replicated there
    (``<name>-backup-replication``). In production the replica is Multi-AZ from the start (RDS for
    PostgreSQL supports Multi-AZ read replicas, cross-region ones included), so that, once promoted,
    it is a Multi-AZ primary straight away (the policy pack's RDS.5 rule holds every production
    primary to Multi-AZ). What the promotion changes:
    :func:`promotion_settings`.
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
        identifier = dr_replica_identifier(name)
        self.instance = aws.rds.Instance(
            identifier,
            identifier=identifier,
            db_subnet_group_name=self.network.db_subnet_group_name,
            vpc_security_group_ids=[self.network.db_security_group_id],
            multi_az=args.multi_az,
            maintenance_window=args.rds.maintenance_window,
            **promotion_settings(identifier, args, self.key.arn, self),
            **instance_settings(args.rds, self.key.arn, args.monitoring_role.arn, params.name),
            opts=pulumi.ResourceOptions(
                parent=self,
                protect=protect,
                depends_on=[
                    *create_log_groups(identifier, self.key.arn, args.rds.log_retention_days, self, protect),
                    *args.monitoring_role.ready,
                ],
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


def promotion_settings(
    identifier: str, args: DrReplicaArgs, key_arn: pulumi.Input[str], parent: pulumi.Resource
) -> dict[str, Any]:
    """The inputs of the DR instance that differ between replica and promoted primary.

    As a replica it follows the primary (by ARN: it is cross-region), keeps no automated backups
    (retention 0: see :class:`DrReplica`) and skips the final snapshot, which RDS refuses for a read
    replica.

    Promoted (``pgha:drPromoted``), it drops ``replicate_source_db`` and declares what a primary needs.
    The provider applies that in one update, in this order (terraform-provider-aws
    internal/service/rds/instance.go, resourceInstanceUpdate): PromoteReadReplica with the declared
    ``backup_retention_period`` and ``backup_window``, so the instance has automated backups from the
    promotion on; a wait until it is available; then one ModifyDBInstance with the other changes:
    the retention again (a no-op by then), and ``manage_master_user_password`` with the DR region's key,
    so RDS makes the promoted instance a master secret in the DR region (the primary's is in the lost
    one). The wait is what hashicorp/terraform-provider-aws#4419 lacked. After ``pgha drill rds
    promote-dr`` promoted it already, apply with ``pulumi up --refresh`` so the state reads the
    standalone instance first. On a protected stack it also takes a uniquely named final snapshot and
    keeps its automated backups on delete.
    """
    if not args.promoted:
        # cross-region replicas name their source by ARN
        return {"replicate_source_db": args.source.arn, "backup_retention_period": 0, "skip_final_snapshot": True}
    protected = args.rds.deletion_protection
    return {
        "backup_retention_period": args.rds.backup_retention_days,
        "backup_window": args.rds.backup_window,
        "manage_master_user_password": True,
        "master_user_secret_kms_key_id": key_arn,
        "skip_final_snapshot": not protected,
        "final_snapshot_identifier": final_snapshot_identifier(identifier, {"kmsKeyId": key_arn}, parent)
        if protected
        else None,
        "delete_automated_backups": not protected,
    }
