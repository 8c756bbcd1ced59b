"""Wires the components of one stack together from its validated config."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pulumi
import pulumi_aws as aws

from components.alarms import DatabaseAlarms, DatabaseAlarmsArgs, MonitoredInstance, rds_alarm_specs
from components.config import StackConfig
from components.dr import DrReplica, DrReplicaArgs, dr_provider
from components.logins import AppLogins, AppLoginsArgs, LoginSecret
from components.names import dr_name
from components.network import POSTGRES_PORT, Network, NetworkArgs
from components.patroni_cluster import READER_PORT, PatroniCluster, PatroniClusterArgs
from components.proxy import RdsProxy, RdsProxyArgs
from components.rds import RdsPostgres, RdsPostgresArgs
from components.schema_hook import PatroniTarget, SchemaHook, SchemaHookArgs


@dataclass(frozen=True)
class Database:
    """What the rest of the stack needs from either engine."""

    writer_host: pulumi.Output[str]
    secret_arn: pulumi.Output[str]
    key_arn: pulumi.Output[str]
    database: str
    ready: tuple[pulumi.Resource, ...]
    #: Let a security group reach the writer (the schema hook); returns the rule, which the hook waits for.
    admit: Callable[[str, pulumi.Input[str], str], pulumi.Resource]
    #: Application logins the schema hook creates, and their secret values.
    logins: tuple[LoginSecret, ...] = ()
    logins_ready: tuple[aws.secretsmanager.SecretVersion, ...] = ()
    #: The Patroni engine's cluster, whose dynamic config the hook keeps at the stack's (None for RDS).
    patroni: PatroniTarget | None = None


def build_stack(cfg: StackConfig, project_dir: Path) -> dict[str, Any]:
    """Declare every resource of the stack and return its outputs by export name.

    Both engines export the same names, so the schema hook and the drills do not
    care which path built the database. ``project_dir`` holds ``schema/migrations``.
    """
    for warning in cfg.warnings:
        pulumi.log.warn(warning)
    provider = aws.Provider("aws", region=cfg.region, default_tags={"tags": cfg.all_tags})
    opts = pulumi.ResourceOptions(providers={"aws": provider})
    name = cfg.name_prefix

    network = Network(
        f"{name}-net",
        NetworkArgs(
            vpc_cidr=cfg.vpc_cidr,
            vpc_id=cfg.vpc_id,
            subnet_ids=cfg.subnet_ids,
            allowed_cidrs=cfg.allowed_cidrs,
            allowed_security_group_ids=cfg.allowed_security_group_ids,
            # Patroni nodes install their packages at boot
            internet_egress=cfg.engine == "patroni",
            # a bring-your-own VPC is checked for a way to Secrets Manager only when something uses it
            interface_endpoints=NetworkArgs.interface_endpoints
            if not cfg.vpc_id or cfg.schema_runner == "lambda" or cfg.engine == "patroni"
            else (),
            region=cfg.region,
            protect=cfg.deletion_protection,
        ),
        opts,
    )
    outputs: dict[str, Any] = {
        "engine": cfg.engine,
        "port": POSTGRES_PORT,
        "vpcId": network.vpc_id,
        "subnetIds": network.subnet_ids,
    }
    build = _patroni if cfg.engine == "patroni" else _rds
    db = build(cfg, name, network, opts, outputs)

    if cfg.schema_runner == "lambda":
        hook = SchemaHook(
            f"{name}-schema",
            SchemaHookArgs(
                vpc_id=network.vpc_id,
                vpc_cidr=network.vpc_cidr,
                subnet_ids=network.subnet_ids,
                writer_host=db.writer_host,
                master_secret_arn=db.secret_arn,
                kms_key_arn=db.key_arn,
                https_egress=network.https_egress,
                depends_on=db.ready,
                egress_ready=tuple(network.egress),
                logins=db.logins,
                logins_ready=db.logins_ready,
                patroni=db.patroni,
                admit=lambda sg_id: db.admit(f"{name}-db-from-schema-hook", sg_id, "PostgreSQL from the schema hook"),
                database=db.database,
                migrations_dir=project_dir / "schema" / "migrations",
                reserved_concurrency=cfg.schema_reserved_concurrency,
            ),
            opts,
        )
        outputs["schemaHash"] = hook.migrations_hash
    return outputs


def _rds(
    cfg: StackConfig, name: str, network: Network, opts: pulumi.ResourceOptions, outputs: dict[str, Any]
) -> Database:
    """Multi-AZ RDS with replicas, alarms, and optionally a DR replica and RDS Proxy."""
    rds_args = RdsPostgresArgs(
        region=cfg.region,
        subnet_group_name=network.db_subnet_group_name,
        security_group_id=network.db_security_group_id,
        azs=network.azs,
        postgres_version=cfg.postgres_version,
        instance_class=cfg.instance_class,
        allocated_storage=cfg.allocated_storage,
        max_allocated_storage=cfg.max_allocated_storage,
        multi_az=cfg.multi_az,
        replicas=cfg.replicas,
        backup_retention_days=cfg.backup_retention_days,
        backup_window=cfg.backup_window,
        maintenance_window=cfg.maintenance_window,
        deletion_protection=cfg.deletion_protection,
        max_connections=cfg.max_connections,
    )
    db = RdsPostgres(name, rds_args, opts)
    # the DR replica's lag is watched from here, through the primary's replication slots
    watched = [MonitoredInstance("primary", db.primary.identifier, watch_slots=bool(cfg.dr_region))] + [
        MonitoredInstance(f"replica-{i + 1}", replica.identifier, replica=True, source=db.primary.identifier)
        for i, replica in enumerate(db.replicas)
    ]
    alarms = DatabaseAlarms(f"{name}-alarms", _rds_alarms(cfg, db.key.key_id, watched), opts)
    outputs.update(
        writerEndpoint=db.primary.address,
        readerEndpoints=[replica.address for replica in db.replicas],
        readerPort=POSTGRES_PORT,
        masterSecretArn=db.master_secret_arn,
        kmsKeyArn=db.key.arn,
        securityGroupId=network.db_security_group_id,
        alarmTopicArn=alarms.topic.arn,
    )

    dr = None
    if cfg.dr_region:
        dr = DrReplica(
            dr_name(name),
            DrReplicaArgs(
                region=cfg.dr_region,
                source=db.primary,
                rds=rds_args,
                monitoring_role=db.monitoring_role,
                vpc_cidr=cfg.dr_vpc_cidr,
                tags=cfg.all_tags,
                promoted=cfg.dr_promoted,
                # production: Multi-AZ already as a replica, so the promoted primary needs no second change
                multi_az=cfg.production,
            ),
        )
        DatabaseAlarms(
            f"{name}-dr-alarms",
            _rds_alarms(cfg, dr.key.key_id, [MonitoredInstance("dr-replica", dr.instance.identifier, replica=True)]),
            pulumi.ResourceOptions(providers={"aws": dr.provider}),
        )
        outputs.update(drReplicaArn=dr.instance.arn, drRegion=cfg.dr_region)
        if cfg.dr_promoted:
            # the promoted DR instance is the writer of the DR region, with a master secret of its own there
            outputs["drWriterEndpoint"] = dr.instance.address
            outputs["drMasterSecretArn"] = dr.instance.master_user_secrets.apply(lambda secrets: secrets[0].secret_arn)

    logins = AppLogins(
        f"{name}-logins",
        AppLoginsArgs(
            kms_key_arn=db.key.arn,
            protect=cfg.deletion_protection,
            replica_region=cfg.dr_region,
            replica_kms_key_arn=dr.key.arn if dr else None,
        ),
        opts,
    )
    outputs["appSecretArns"] = {s.login.username: s.secret_arn for s in logins.secrets}
    outputs["appSecretArn"] = logins.secrets[0].secret_arn
    if cfg.dr_region:
        outputs["drAppSecretArns"] = logins.replica_arns(cfg.dr_region)

    if cfg.proxy:
        proxy = RdsProxy(
            f"{name}-proxy",
            RdsProxyArgs(
                db_instance_identifier=db.primary.identifier,
                auth_secret_arns=logins.secret_arns,
                kms_key_arn=db.key.arn,
                vpc_id=network.vpc_id,
                vpc_cidr=network.vpc_cidr,
                subnet_ids=network.subnet_ids,
                allowed_cidrs=cfg.allowed_cidrs,
                allowed_security_group_ids=cfg.allowed_security_group_ids,
            ),
            opts,
        )
        network.admit(f"{name}-db-from-proxy", proxy.security_group_id, "PostgreSQL from the RDS Proxy")
        outputs["proxyEndpoint"] = proxy.endpoint

    return Database(
        writer_host=db.primary.address,
        secret_arn=db.master_secret_arn,
        key_arn=db.key.arn,
        database=rds_args.db_name,
        ready=(db.primary,),
        admit=network.admit,
        logins=tuple(logins.secrets),
        logins_ready=tuple(logins.versions),
    )


def _patroni(
    cfg: StackConfig, name: str, network: Network, opts: pulumi.ResourceOptions, outputs: dict[str, Any]
) -> Database:
    """Patroni + etcd on EC2 behind an internal NLB."""
    cluster = PatroniCluster(
        f"{name}-patroni",
        PatroniClusterArgs(
            region=cfg.region,
            vpc_id=network.vpc_id,
            vpc_cidr=network.vpc_cidr,
            subnet_ids=network.subnet_ids,
            azs=network.azs,
            postgres_version=cfg.postgres_version,
            settings=cfg.patroni,
            allowed_cidrs=cfg.allowed_cidrs,
            allowed_security_group_ids=cfg.allowed_security_group_ids,
            deletion_protection=cfg.deletion_protection,
            max_connections=cfg.max_connections,
            egress=network.egress,
            # the backup bucket replicates to the DR region (Patroni has no DR replica instance)
            dr_region=cfg.dr_region,
            dr_provider=dr_provider(dr_name(name), cfg.dr_region, cfg.all_tags) if cfg.dr_region else None,
            balancer_stem=name,
        ),
        opts,
    )
    alarms = DatabaseAlarms(
        f"{name}-alarms",
        DatabaseAlarmsArgs(kms_key_id=cluster.key.key_id, alarms=cluster.alarm_specs(), alarm_email=cfg.alarm_email),
        opts,
    )
    outputs.update(
        alarmTopicArn=alarms.topic.arn,
        writerEndpoint=cluster.writer_endpoint,
        readerEndpoints=[cluster.writer_endpoint],
        readerPort=READER_PORT,
        masterSecretArn=cluster.secret_arn,
        kmsKeyArn=cluster.key.arn,
        securityGroupId=cluster.front_security_group_id,
        backupBucket=cluster.backup_bucket.bucket,
    )
    if cluster.dr_backup_bucket is not None:
        outputs.update(drBackupBucket=cluster.dr_backup_bucket.bucket, drRegion=cfg.dr_region)
    patroni = PatroniTarget(
        urls=cluster.restapi_urls,
        ca_cert_pem=cluster.ca_cert_pem,
        dynamic_config=cluster.dynamic_config,
        admit=lambda sg_id: cluster.admit_restapi(
            f"{name}-restapi-from-schema-hook", sg_id, "Patroni REST API from the post-deploy hook"
        ),
        client_tls_secret_arn=cluster.superuser_tls_secret_arn,
        client_tls_ready=cluster.superuser_tls_version,
    )
    return Database(
        writer_host=cluster.writer_endpoint,
        secret_arn=cluster.secret_arn,
        key_arn=cluster.key.arn,
        # the hook connects through the NLB: its listeners and targets must exist, not only the nodes
        database="app",
        ready=(*cluster.instances, *cluster.serving),
        admit=cluster.admit,
        patroni=patroni,
    )


def _rds_alarms(cfg: StackConfig, key_id: pulumi.Input[str], watched: list[MonitoredInstance]) -> DatabaseAlarmsArgs:
    """KPI alarms and failover/failure events for these RDS instances."""
    return DatabaseAlarmsArgs(
        kms_key_id=key_id,
        alarms=rds_alarm_specs(watched, cfg.allocated_storage, cfg.max_connections),
        alarm_email=cfg.alarm_email,
        rds_event_sources=[instance.identifier for instance in watched],
    )
