"""Multi-AZ RDS PostgreSQL: CMK, parameter group, primary, read replicas, log groups."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

import pulumi
import pulumi_aws as aws
import pulumi_random as random

from components.access import ServiceRole, service_role
from components.kms import create_cmk
from components.names import primary_identifier, replica_identifier
from components.network import POSTGRES_PORT
from components.parameters import create_parameter_group

LOG_EXPORTS = ("postgresql", "upgrade")


@dataclass(frozen=True)
class RdsPostgresArgs:
    """What the RDS path builds. Every default is the secure, production choice."""

    region: str
    subnet_group_name: pulumi.Input[str]
    security_group_id: pulumi.Input[str]
    #: AZs of the DB subnets: a single-AZ primary is created in the first, replicas spread over the rest.
    azs: pulumi.Input[list[str]]
    postgres_version: int = 17
    instance_class: str = "db.m7g.large"
    allocated_storage: int = 100
    #: Storage autoscaling ceiling in GiB; 0 turns autoscaling off.
    max_allocated_storage: int = 1000
    multi_az: bool = True
    replicas: int = 1
    backup_retention_days: int = 7
    backup_window: str = "03:00-04:00"
    maintenance_window: str = "sun:05:00-sun:06:00"
    #: Also decides the final snapshot (a protected database is snapshotted when deleted) and Pulumi's
    #: ``protect`` on the stateful resources (instances, groups, keys, audit log groups).
    deletion_protection: bool = True
    max_connections: int = 400
    db_name: str = "app"
    master_username: str = "pgha_admin"
    log_retention_days: int = 30
    #: Enhanced monitoring granularity, seconds.
    monitoring_interval: int = 15
    ca_cert_identifier: str = "rds-ca-rsa2048-g1"


def create_monitoring_role(name: str, parent: pulumi.Resource) -> ServiceRole:
    """The IAM role RDS enhanced monitoring uses to publish OS metrics (IAM is global).

    RDS refuses an instance whose monitoring role lacks the policy yet ("IAM role ARN value is invalid or
    does not include the required permissions for: ENHANCED_MONITORING"; the provider retries that for a
    while): instances wait for its :attr:`~components.access.ServiceRole.ready` instead of racing IAM.
    """
    return service_role(
        f"{name}-monitoring-role",
        "monitoring.rds.amazonaws.com",
        parent,
        ("service-role/AmazonRDSEnhancedMonitoringRole",),
    )


def create_log_groups(
    identifier: str, key_arn: pulumi.Input[str], retention_days: int, parent: pulumi.Resource, protect: bool = False
) -> list[aws.cloudwatch.LogGroup]:
    """CMK-encrypted log groups with retention, made before the instance so RDS does not make them unbounded.

    ``protect`` (a protected stack): they hold the audit trail (DDL, connections), so Pulumi
    refuses to delete them.
    """
    return [
        aws.cloudwatch.LogGroup(
            f"{identifier}-{log}-logs",
            name=f"/aws/rds/instance/{identifier}/{log}",
            retention_in_days=retention_days,
            kms_key_id=key_arn,
            opts=pulumi.ResourceOptions(parent=parent, protect=protect),
        )
        for log in LOG_EXPORTS
    ]


def final_snapshot_identifier(
    identifier: str, keepers: dict[str, pulumi.Input[str]], parent: pulumi.Resource
) -> pulumi.Output[str]:
    """The name of the snapshot RDS takes when this instance is deleted: ``<identifier>-final-<8 hex>``.

    Unique per instance, not per identifier: RDS refuses a final snapshot whose name exists
    (DBSnapshotAlreadyExists), so a fixed ``<identifier>-final`` would fail the second deletion (a stack
    deleted and made again, a primary replaced). The suffix is drawn anew whenever ``keepers`` change:
    pass the inputs whose change replaces the instance, so a replacement has a new name.
    """
    suffix = random.RandomId(
        f"{identifier}-final-snapshot-suffix",
        byte_length=4,
        keepers=keepers,
        opts=pulumi.ResourceOptions(parent=parent),
    )
    return suffix.hex.apply(lambda hex_: f"{identifier}-final-{hex_}")


def instance_settings(
    args: RdsPostgresArgs,
    key_arn: pulumi.Input[str],
    monitoring_role_arn: pulumi.Input[str],
    parameter_group_name: pulumi.Input[str],
) -> dict[str, Any]:
    """Settings every instance shares, primary or replica, in any region.

    The storage autoscaling ceiling too: a replica that cannot grow stops replaying WAL when its disk
    fills, however far its primary grew (autoscaling is set per instance, replicas do not inherit it).
    """
    return {
        "instance_class": args.instance_class,
        "max_allocated_storage": args.max_allocated_storage or None,
        "storage_encrypted": True,
        "kms_key_id": key_arn,
        "publicly_accessible": False,
        "parameter_group_name": parameter_group_name,
        "iam_database_authentication_enabled": True,
        "monitoring_interval": args.monitoring_interval,
        "monitoring_role_arn": monitoring_role_arn,
        "performance_insights_enabled": True,
        "performance_insights_kms_key_id": key_arn,
        "performance_insights_retention_period": 7,
        "enabled_cloudwatch_logs_exports": list(LOG_EXPORTS),
        "copy_tags_to_snapshot": True,
        "auto_minor_version_upgrade": True,
        "ca_cert_identifier": args.ca_cert_identifier,
        "deletion_protection": args.deletion_protection,
        "port": POSTGRES_PORT,
    }


class RdsPostgres(pulumi.ComponentResource):
    """A Multi-AZ primary with same-region read replicas, encrypted with its own CMK."""

    primary: aws.rds.Instance
    replicas: list[aws.rds.Instance]
    key: aws.kms.Key
    monitoring_role: ServiceRole

    def __init__(self, name: str, args: RdsPostgresArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("pgha:rds:RdsPostgres", name, None, opts)
        self.args = args
        protect = args.deletion_protection
        self.key = create_cmk(
            name, "pgha database encryption (storage, secrets, logs, insights)", args.region, self, protect=protect
        )
        self.monitoring_role = create_monitoring_role(name, self)
        params = create_parameter_group(
            name, args.postgres_version, args.max_connections, args.db_name, self, protect=protect
        )
        shared = instance_settings(args, self.key.arn, self.monitoring_role.arn, params.name)
        azs = pulumi.Output.from_input(args.azs)

        primary_id = primary_identifier(name)
        self.primary = aws.rds.Instance(
            primary_id,
            identifier=primary_id,
            engine="postgres",
            engine_version=str(args.postgres_version),
            allow_major_version_upgrade=True,
            db_name=args.db_name,
            username=args.master_username,
            manage_master_user_password=True,
            master_user_secret_kms_key_id=self.key.arn,
            allocated_storage=args.allocated_storage,
            storage_type="gp3",
            multi_az=args.multi_az,
            # Only where the instance is first created: RDS refuses an AZ for a Multi-AZ instance, and a
            # Multi-AZ primary's AZ is RDS's choice and moves with every failover. The AZ is force-new, so
            # availabilityZone is in ignore_changes below: turning multiAz off later (or on) modifies the
            # instance in place where it runs now instead of replacing the database.
            availability_zone=None if args.multi_az else azs[0],
            db_subnet_group_name=args.subnet_group_name,
            vpc_security_group_ids=[args.security_group_id],
            backup_retention_period=args.backup_retention_days,
            backup_window=args.backup_window,
            maintenance_window=args.maintenance_window,
            delete_automated_backups=not args.deletion_protection,
            skip_final_snapshot=not args.deletion_protection,
            final_snapshot_identifier=final_snapshot_identifier(
                primary_id, {"kmsKeyId": self.key.arn, "dbName": args.db_name, "username": args.master_username}, self
            )
            if args.deletion_protection
            else None,
            **shared,
            opts=pulumi.ResourceOptions(
                parent=self,
                protect=protect,
                ignore_changes=["availabilityZone"],
                depends_on=[
                    *create_log_groups(primary_id, self.key.arn, args.log_retention_days, self, protect),
                    *self.monitoring_role.ready,
                ],
            ),
        )

        self.replicas = []
        for index in range(args.replicas):
            replica_id = replica_identifier(name, index + 1)
            self.replicas.append(
                aws.rds.Instance(
                    replica_id,
                    identifier=replica_id,
                    replicate_source_db=self.primary.identifier,
                    # spread over the AZs from the second on: apart from a single-AZ primary (created in the
                    # first); a Multi-AZ primary may fail over into a replica's AZ
                    availability_zone=azs.apply(lambda zones, i=index: zones[(i + 1) % len(zones)]),
                    vpc_security_group_ids=[args.security_group_id],
                    multi_az=False,
                    backup_retention_period=0,
                    # RDS refuses a final snapshot of a read replica: deleting one with it fails
                    skip_final_snapshot=True,
                    **shared,
                    opts=pulumi.ResourceOptions(
                        parent=self,
                        protect=protect,
                        depends_on=[
                            *create_log_groups(replica_id, self.key.arn, args.log_retention_days, self, protect),
                            *self.monitoring_role.ready,
                        ],
                    ),
                )
            )

        self.register_outputs(
            {
                "writerEndpoint": self.primary.address,
                "readerEndpoints": [replica.address for replica in self.replicas],
                "masterSecretArn": self.master_secret_arn,
                "kmsKeyArn": self.key.arn,
            }
        )

    @property
    def master_secret_arn(self) -> pulumi.Output[str]:
        """ARN of the RDS-managed Secrets Manager secret holding the master password."""
        # always set: the primary's password is RDS-managed (manage_master_user_password)
        return self.primary.master_user_secrets.apply(lambda secrets: cast(str, secrets[0].secret_arn))
