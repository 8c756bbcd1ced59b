"""Self-managed HA PostgreSQL on EC2: etcd + Patroni + PostgreSQL on each of N nodes, round-robin over the AZs.

Rendered from the same ``patroni/`` templates as the local lab. Each node owns a network
interface (its address) and an EBS data volume that outlive the instance, so a replaced instance
comes back as the same member with its data. An internal NLB health-checks Patroni's REST API:
the writer listener only reaches the node answering ``/primary``, the reader listener the replicas.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field

import pulumi
import pulumi_aws as aws
import pulumi_random as random
import pulumi_tls as tls

from components.access import allow_tcp, inline_policy, service_role
from components.alarms import AlarmSpec
from components.config import PatroniSettings
from components.kms import create_cmk
from components.network import POSTGRES_PORT, admit_clients
from pgha.node.config import AwsAccess, NodeConfig
from pgha.node.render import (
    SECRET_JSON_KEYS,
    TEMPLATES_DIR,
    BackupRepo,
    BootSettings,
    ClusterSpec,
    NodeSpec,
    PatroniTiming,
    Ports,
    Users,
    dynamic_config,
    render_user_data,
)

READER_PORT = 5433
#: NLB health checks: a dead primary is out of the writer target group after interval x threshold.
HEALTH_CHECK_INTERVAL = 5
HEALTH_CHECK_THRESHOLD = 2
#: Replicas further behind than this (bytes) leave the reader target group.
READER_MAX_LAG = 1048576
DEBIAN_OWNER = "136693071363"
#: The node's TLS certificates; renew by tainting them before they expire (docs/patroni.md).
CERT_VALIDITY_HOURS = 3 * 365 * 24
#: Where a root shell on a node finds patronictl's configuration (REST API password, CA, client cert).
PATRONICTL_CONFIG = "/root/.config/patroni/patronictl.yaml"
#: Where a node's EBS data volume is mounted (cloud-init's pgha-mount-data); its data lives only there.
DATA_MOUNT = "/var/lib/pgha"


@dataclass(frozen=True)
class PatroniClusterArgs:
    """Where the cluster runs and who may reach it."""

    region: str
    vpc_id: pulumi.Input[str]
    vpc_cidr: pulumi.Input[str]
    subnet_ids: pulumi.Input[list[str]]
    azs: pulumi.Input[list[str]]
    postgres_version: int = 17
    settings: PatroniSettings = field(default_factory=PatroniSettings)
    allowed_cidrs: Sequence[str] = ()
    allowed_security_group_ids: Sequence[str] = ()
    #: Protects the data volumes and the backup bucket from `pulumi destroy`.
    deletion_protection: bool = True
    max_connections: int = 200
    database: str = "app"
    #: What instances need before they boot: the NAT route and VPC endpoints (components/network.py).
    #: Empty for a bring-your-own VPC.
    # TODO(lead): with vpcId, check the VPC's NAT route / endpoints (components/egress.py, another branch)
    # and fail with a clear error naming what is missing; until then a BYO VPC without egress boots nodes
    # that retry apt, S3 and Secrets Manager forever.
    egress: Sequence[pulumi.Resource] = ()
    #: Replicate the backup bucket to this region (``pgha:drRegion``), through ``dr_provider`` (its provider).
    dr_region: str | None = None
    dr_provider: aws.Provider | None = None
    #: Stem of the logical names of the NLB and its target groups (``<stem>-nlb``, ``<stem>-rw``, ``<stem>-ro``):
    #: AWS allows them 32 characters and Pulumi's autonaming adds 8, so it is the stack's prefix, not the
    #: cluster's longer name (None: the cluster's name). Clusters made before keep their names (aliases).
    balancer_stem: str | None = None


def ec2_node(name: str, address: str, postgres_version: int) -> NodeSpec:
    """A node's file layout on EC2 (data and etcd on the node's own EBS volume)."""
    return NodeSpec(
        name=name,
        address=address,
        data_dir=f"{DATA_MOUNT}/postgresql/{postgres_version}/data",
        bin_dir=f"/usr/lib/postgresql/{postgres_version}/bin",
        etcd_data_dir=f"{DATA_MOUNT}/etcd",
        socket_dir="/var/run/postgresql",
        # in a directory of postgres's own: Patroni refuses to start unless it can write beside its pgpass,
        # and the volume's root (/var/lib/pgha, root's) stays root's
        pgpass=f"{DATA_MOUNT}/patroni/pgpass",
        ssl_cert_file="/etc/pgha/tls/node.crt",
        ssl_key_file="/etc/pgha/tls/node.key",
        ca_file="/etc/pgha/tls/ca.crt",
        config_dir="/etc/pgha",
        pgbackrest_dir=f"{DATA_MOUNT}/pgbackrest",
    )


def ec2_cluster_spec(
    name: str,
    addresses: Sequence[str],
    vpc_cidr: str,
    settings: PatroniSettings,
    postgres_version: int,
    max_connections: int = 200,
    database: str = "app",
    region: str = "us-east-1",
    bucket: str = "",
    kms_key_arn: str = "",
) -> ClusterSpec:
    """The cluster as the EC2 nodes render it: the lab's inputs with VPC addresses and EC2 paths.

    Clients reach the nodes through the NLB, which does not preserve their addresses for IP
    targets: PostgreSQL sees NLB addresses from the VPC, so the VPC is the client network and
    the NLB's security group is where ``allowedCidrs`` is enforced. The superuser, rewind and
    replication roles are admitted only from the members' own addresses.
    """
    return ClusterSpec(
        name=name,
        nodes=[ec2_node(f"{name}-{i + 1}", address, postgres_version) for i, address in enumerate(addresses)],
        member_cidrs=[f"{address}/32" for address in addresses],
        client_cidrs=[vpc_cidr],
        timing=PatroniTiming(settings.ttl, settings.loop_wait, settings.retry_timeout),
        synchronous_mode=settings.synchronous_mode,
        synchronous_mode_strict=settings.synchronous_mode_strict,
        max_connections=max_connections,
        database=database,
        preload_libraries=("pg_stat_statements", "pg_cron"),
        backup=BackupRepo(
            bucket=bucket, region=region, kms_key_arn=kms_key_arn, retention_full_days=settings.backup_retention
        ),
    )


def node_bundle() -> tuple[pulumi.AssetArchive, str]:
    """The code a node bootstraps with (pgha + patroni/ templates) and a key naming its content.

    A change of the code changes the key, hence the user-data, hence the launch template version.
    Bytecode caches are left out of both: they depend on the machine that runs ``pulumi up``, and
    would otherwise re-upload an unchanged bundle (and ship .pyc files for another Python).
    """
    root = TEMPLATES_DIR.parent
    digest = hashlib.sha256()
    files: dict[str, pulumi.Asset | pulumi.Archive] = {}
    for directory in ("pgha", "patroni"):
        for path in sorted((root / directory).rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts:
                relative = str(path.relative_to(root))
                digest.update(relative.encode() + b"\0" + path.read_bytes())
                files[relative] = pulumi.FileAsset(str(path))
    return pulumi.AssetArchive(files), f"bootstrap/pgha-node-{digest.hexdigest()[:16]}.zip"


def _architecture(instance_type: str) -> str:
    family = instance_type.split(".")[0]
    return "arm64" if "g" in family[1:] else "x86_64"


def private_bucket(
    name: str, key_arn: pulumi.Input[str], retention_days: int, parent: pulumi.Resource, protect: bool
) -> tuple[aws.s3.Bucket, aws.s3.BucketVersioning]:
    """A versioned, SSE-KMS, private, TLS-only bucket that expires old versions after ``retention_days``.

    The backup bucket and its DR-region replica share these controls (FSBP S3.5, S3.8, S3.14,
    S3.17); children are named ``<name>-versioning``, ``-sse``, ``-private``, ``-lifecycle``,
    ``-tls-only``. Returns the bucket and its versioning (replication must wait for it).
    """
    child = pulumi.ResourceOptions(parent=parent)
    bucket = aws.s3.Bucket(name, force_destroy=False, opts=pulumi.ResourceOptions(parent=parent, protect=protect))
    versioning = aws.s3.BucketVersioning(
        f"{name}-versioning", bucket=bucket.id, versioning_configuration={"status": "Enabled"}, opts=child
    )
    aws.s3.BucketServerSideEncryptionConfiguration(
        f"{name}-sse",
        bucket=bucket.id,
        rules=[
            {
                "apply_server_side_encryption_by_default": {"sse_algorithm": "aws:kms", "kms_master_key_id": key_arn},
                "bucket_key_enabled": True,
            }
        ],
        opts=child,
    )
    aws.s3.BucketPublicAccessBlock(
        f"{name}-private",
        bucket=bucket.id,
        block_public_acls=True,
        block_public_policy=True,
        ignore_public_acls=True,
        restrict_public_buckets=True,
        opts=child,
    )
    aws.s3.BucketLifecycleConfiguration(
        f"{name}-lifecycle",
        bucket=bucket.id,
        rules=[
            {
                "id": "expire-old-versions",
                "status": "Enabled",
                "filter": {},
                "noncurrent_version_expiration": {"noncurrent_days": retention_days},
                "abort_incomplete_multipart_upload": {"days_after_initiation": 7},
            }
        ],
        opts=child,
    )
    deny_plain_http = bucket.arn.apply(
        lambda arn: json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Sid": "DenyPlainHttp",
                        "Effect": "Deny",
                        "Principal": "*",
                        "Action": "s3:*",
                        "Resource": [arn, f"{arn}/*"],
                        "Condition": {"Bool": {"aws:SecureTransport": "false"}},
                    }
                ],
            }
        )
    )
    aws.s3.BucketPolicy(f"{name}-tls-only", bucket=bucket.id, policy=deny_plain_http, opts=child)
    return bucket, versioning


class BackupReplica(pulumi.ComponentResource):
    """The backup bucket's copy in the DR region: its own KMS key (keys are regional) and a bucket with
    the source's controls, all through the DR region's provider (``opts.providers``)."""

    key: aws.kms.Key
    bucket: aws.s3.Bucket
    versioning: aws.s3.BucketVersioning

    def __init__(self, name: str, region: str, retention_days: int, protect: bool, opts: pulumi.ResourceOptions):
        super().__init__("pgha:patroni:BackupReplica", name, None, opts)
        self.region = region
        # protected like the source's: losing the key loses every replicated backup
        self.key = create_cmk(
            f"{name}-backups", "pgha Patroni backup replica encryption (DR region)", region, self, protect=protect
        )
        self.bucket, self.versioning = private_bucket(f"{name}-backups", self.key.arn, retention_days, self, protect)
        self.register_outputs({"bucket": self.bucket.bucket, "kmsKeyArn": self.key.arn})


class PatroniCluster(pulumi.ComponentResource):
    """N nodes (ENI + data volume + launch template + instance), NLB, security groups, secret, backups."""

    writer_endpoint: pulumi.Output[str]
    secret_arn: pulumi.Output[str]
    key: aws.kms.Key
    backup_bucket: aws.s3.Bucket
    front_security_group_id: pulumi.Output[str]
    instances: list[aws.ec2.Instance]
    #: The NLB's listeners and target-group attachments: the writer endpoint reaches a node only once they
    #: exist, so whatever connects through it at deploy time (the schema hook's invocation) waits for them.
    serving: list[pulumi.Resource]
    #: The members' REST APIs (``https://<address>:8008``), their CA, and the cluster-wide settings the stack
    #: declares (``bootstrap.dcs``): what the post-deploy hook keeps Patroni's dynamic config at.
    restapi_urls: pulumi.Output[list[str]]
    ca_cert_pem: pulumi.Output[str]
    dynamic_config: pulumi.Output[dict]
    #: The superuser's client certificate (secret JSON: ca, cert, key) for connections from outside the members.
    superuser_tls_secret_arn: pulumi.Output[str]
    superuser_tls_version: aws.secretsmanager.SecretVersion

    def __init__(self, name: str, args: PatroniClusterArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("pgha:patroni:PatroniCluster", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        protect = pulumi.ResourceOptions(parent=self, protect=args.deletion_protection)
        settings = args.settings
        # protected with the data: losing the key or the credentials loses the volumes and backups they unlock
        self.key = create_cmk(
            name,
            "pgha Patroni cluster encryption (volumes, secret, backups)",
            args.region,
            self,
            protect=args.deletion_protection,
        )

        # the DR region's copy of the backups, and of the credentials that open them
        replica = (
            BackupReplica(
                f"{name}-dr",
                args.dr_region,
                settings.backup_retention,
                args.deletion_protection,
                pulumi.ResourceOptions(parent=self, providers={"aws": args.dr_provider}),
            )
            if args.dr_region and args.dr_provider is not None
            else None
        )
        self.secret_arn = self._credentials(name, protect, child, replica)
        self.backup_bucket = self._backup_bucket(name, settings, protect, child)
        self.dr_backup_bucket: aws.s3.Bucket | None = None
        if replica is not None:
            self._replicate_backups(name, args, replica)
            self.dr_backup_bucket = replica.bucket
        bundle, bundle_key = node_bundle()
        # the code each node bootstraps with, fetched through the S3 gateway endpoint with the instance role
        bundle_object = aws.s3.BucketObjectv2(
            f"{name}-node-bundle", bucket=self.backup_bucket.id, key=bundle_key, source=bundle, opts=child
        )
        node_sg, self._nlb_sg = self._security_groups(name, args, child)
        self.front_security_group_id = self._nlb_sg.id
        ca_key, ca_cert = self._certificate_authority(name, child)

        arch = _architecture(settings.instance_type)
        ami = aws.ec2.get_ami_output(
            most_recent=True,
            owners=[DEBIAN_OWNER],
            filters=[
                {"name": "name", "values": [f"debian-12-{'arm64' if arch == 'arm64' else 'amd64'}-*"]},
                {"name": "architecture", "values": [arch]},
            ],
            opts=pulumi.InvokeOutputOptions(parent=self),
        )
        azs = pulumi.Output.from_input(args.azs)
        subnets = pulumi.Output.from_input(args.subnet_ids)
        interfaces, volumes = [], []
        for index in range(settings.nodes):
            node = f"{name}-{index + 1}"
            interfaces.append(
                aws.ec2.NetworkInterface(
                    f"{node}-eni",
                    subnet_id=subnets.apply(lambda ids, i=index: ids[i % len(ids)]),
                    security_groups=[node_sg.id],
                    description=f"pgha {node}: stable address across replacements",
                    tags={"Name": node},
                    opts=protect,  # the node's identity: its address outlives instances
                )
            )
            volumes.append(
                aws.ebs.Volume(
                    f"{node}-data",
                    availability_zone=azs.apply(lambda zones, i=index: zones[i % len(zones)]),
                    size=settings.volume_size,
                    type="gp3",
                    encrypted=True,
                    kms_key_id=self.key.arn,
                    tags={"Name": f"{node}-data"},
                    opts=protect,
                )
            )
        addresses = pulumi.Output.all(*[eni.private_ip for eni in interfaces])
        tls_secrets = [
            self._node_tls(f"{name}-{index + 1}", eni, ca_key, ca_cert, protect, child)
            for index, eni in enumerate(interfaces)
        ]
        # the superuser's client certificate: the nodes admit it from outside the members (the post-deploy hook,
        # through the NLB) only with this certificate as well as its password
        superuser_tls, self.superuser_tls_version = self._tls_secret(
            f"{name}-superuser-client",
            Users().superuser,
            ca_key,
            ca_cert,
            protect,
            child,
            uses=["digital_signature", "client_auth"],
        )
        self.superuser_tls_secret_arn = superuser_tls.arn
        self.restapi_urls = addresses.apply(lambda ips: [f"https://{ip}:{Ports().restapi}" for ip in ips])
        self.ca_cert_pem = ca_cert.cert_pem
        self.dynamic_config = pulumi.Output.all(addresses, args.vpc_cidr).apply(
            lambda v: dynamic_config(
                ec2_cluster_spec(name, v[0], v[1], settings, args.postgres_version, args.max_connections, args.database)
            )
        )
        self._node_sg = node_sg

        self.instances = []
        for index, (eni, volume) in enumerate(zip(interfaces, volumes, strict=True)):
            node = f"{name}-{index + 1}"
            tls_secret, tls_version = tls_secrets[index]
            profile = self._instance_profile(node, tls_secret.arn, child)
            user_data = pulumi.Output.all(
                addresses,
                args.vpc_cidr,
                self.secret_arn,
                self.backup_bucket.bucket,
                self.key.arn,
                volume.id,
                tls_secret.arn,
            ).apply(
                lambda v, i=index: base64.b64encode(
                    self._user_data(name, args, v, i, bundle_key, arch).encode()
                ).decode()
            )
            template = aws.ec2.LaunchTemplate(
                f"{node}-lt",
                image_id=ami.id,
                instance_type=settings.instance_type,
                user_data=user_data,
                iam_instance_profile={"arn": profile.arn},
                network_interfaces=[{"device_index": 0, "network_interface_id": eni.id}],
                metadata_options={
                    "http_tokens": "required",
                    "http_endpoint": "enabled",
                    "http_put_response_hop_limit": 1,
                    "instance_metadata_tags": "enabled",
                },
                block_device_mappings=[
                    {
                        "device_name": "/dev/xvda",
                        "ebs": {
                            "volume_size": 20,
                            "volume_type": "gp3",
                            "encrypted": "true",
                            "kms_key_id": self.key.arn,
                            "delete_on_termination": "true",
                        },
                    }
                ],
                monitoring={"enabled": True},
                tag_specifications=[{"resource_type": "instance", "tags": {"Name": node, "pgha:node": node}}],
                opts=child,
            )
            instance = aws.ec2.Instance(
                node,
                launch_template={"id": template.id, "version": template.latest_version.apply(str)},
                # also here, not only in the template (ignored after launch): a running node moves to a new
                # profile in place (ReplaceIamInstanceProfileAssociation), before the old one is deleted
                iam_instance_profile=profile.name,
                tags={"Name": node},
                # A new template version (AMI, user-data) must not replace every node at once:
                # roll nodes one at a time with `pulumi up --replace <urn>` (docs/patroni.md).
                # Boot needs egress (apt, S3, Secrets Manager), its code and its secrets in place first.
                opts=pulumi.ResourceOptions(
                    parent=self,
                    ignore_changes=["launchTemplate"],
                    delete_before_replace=True,
                    depends_on=[*args.egress, bundle_object, self._credentials_version, tls_version],
                ),
            )
            aws.ec2.VolumeAttachment(
                f"{node}-data-attach",
                device_name="/dev/sdf",
                volume_id=volume.id,
                instance_id=instance.id,
                stop_instance_before_detaching=True,
                opts=child,
            )
            self.instances.append(instance)

        stem = args.balancer_stem or name
        nlb = aws.lb.LoadBalancer(
            f"{stem}-nlb",
            internal=True,
            load_balancer_type="network",
            subnets=subnets,
            security_groups=[self._nlb_sg.id],
            enable_cross_zone_load_balancing=True,
            # NLB access logs exist only for TLS listeners; these are TCP (PostgreSQL does its own TLS),
            # so connection logging is PostgreSQL's log_connections, not an access-log bucket
            enable_deletion_protection=args.deletion_protection,
            opts=pulumi.ResourceOptions(parent=self, aliases=[pulumi.Alias(name=f"{name}-nlb")]),
        )
        self._target_group_suffixes: dict[str, pulumi.Output[str]] = {}
        self.serving = []
        for role, short, port, path in (
            ("writer", "rw", POSTGRES_PORT, "/primary"),
            ("reader", "ro", READER_PORT, f"/replica?lag={READER_MAX_LAG}"),
        ):
            group = aws.lb.TargetGroup(
                f"{stem}-{short}",
                port=POSTGRES_PORT,
                protocol="TCP",
                target_type="ip",
                vpc_id=args.vpc_id,
                deregistration_delay=0,
                connection_termination=True,
                # Patroni's REST API speaks TLS only (the NLB does not verify the certificate)
                health_check={
                    "protocol": "HTTPS",
                    "port": str(Ports().restapi),
                    "path": path,
                    "matcher": "200",
                    "interval": HEALTH_CHECK_INTERVAL,
                    "timeout": 3,
                    "healthy_threshold": HEALTH_CHECK_THRESHOLD,
                    "unhealthy_threshold": HEALTH_CHECK_THRESHOLD,
                },
                opts=pulumi.ResourceOptions(parent=self, aliases=[pulumi.Alias(name=f"{name}-{role}")]),
            )
            self._target_group_suffixes[role] = group.arn_suffix
            self.serving += [
                aws.lb.TargetGroupAttachment(
                    f"{name}-{role}-{index + 1}",
                    target_group_arn=group.arn,
                    target_id=eni.private_ip,
                    port=POSTGRES_PORT,
                    opts=child,
                )
                for index, eni in enumerate(interfaces)
            ]
            self.serving.append(
                aws.lb.Listener(
                    f"{name}-{role}-listener",
                    load_balancer_arn=nlb.arn,
                    port=port,
                    protocol="TCP",
                    default_actions=[{"type": "forward", "target_group_arn": group.arn}],
                    opts=child,
                )
            )
        self.writer_endpoint = nlb.dns_name
        self._nlb_suffix = nlb.arn_suffix
        self.register_outputs(
            {
                "writerEndpoint": nlb.dns_name,
                "secretArn": self.secret_arn,
                "backupBucket": self.backup_bucket.bucket,
                "drBackupBucket": self.dr_backup_bucket.bucket if self.dr_backup_bucket is not None else None,
            }
        )

    def _user_data(
        self, name: str, args: PatroniClusterArgs, values: list, index: int, bundle_key: str, arch: str
    ) -> str:
        addresses, vpc_cidr, secret_arn, bucket, key_arn, volume_id, tls_secret_arn = values
        spec = ec2_cluster_spec(
            name,
            addresses,
            vpc_cidr,
            args.settings,
            args.postgres_version,
            args.max_connections,
            args.database,
            args.region,
            bucket,
            key_arn,
        )
        node = spec.nodes[index]
        config = NodeConfig(
            cluster=spec,
            node=node,
            service_manager="systemd",
            patronictl_config=PATRONICTL_CONFIG,
            aws=AwsAccess(region=args.region, secret_arn=secret_arn, tls_secret_arn=tls_secret_arn),
            data_mount=DATA_MOUNT,
        )
        boot = BootSettings(
            region=args.region,
            bundle_bucket=bucket,
            bundle_key=bundle_key,
            data_volume_id=volume_id,
            postgres_version=args.postgres_version,
            architecture=arch,
            data_mount=DATA_MOUNT,
        )
        return render_user_data(spec, node, config.to_json(), boot)

    def _certificate_authority(
        self, name: str, child: pulumi.ResourceOptions
    ) -> tuple[tls.PrivateKey, tls.SelfSignedCert]:
        """One CA per cluster (pulumi-tls: the key is a secret in state and stays put across runs)."""
        key = tls.PrivateKey(f"{name}-ca-key", algorithm="ECDSA", ecdsa_curve="P256", opts=child)
        cert = tls.SelfSignedCert(
            f"{name}-ca",
            private_key_pem=key.private_key_pem,
            is_ca_certificate=True,
            subject={"common_name": f"{name} CA", "organization": "pgha"},
            validity_period_hours=CERT_VALIDITY_HOURS,
            allowed_uses=["cert_signing", "crl_signing"],
            opts=child,
        )
        return key, cert

    def _node_tls(
        self,
        node: str,
        eni: aws.ec2.NetworkInterface,
        ca_key: tls.PrivateKey,
        ca_cert: tls.SelfSignedCert,
        protect: pulumi.ResourceOptions,
        child: pulumi.ResourceOptions,
    ) -> tuple[aws.secretsmanager.Secret, aws.secretsmanager.SecretVersion]:
        """A node's key and certificate (server and client, for its fixed address), delivered through
        a CMK-encrypted Secrets Manager secret: never in user-data."""
        return self._tls_secret(
            node,
            node,
            ca_key,
            ca_cert,
            protect,
            child,
            ip_addresses=[eni.private_ip],
            uses=["digital_signature", "key_encipherment", "server_auth", "client_auth"],
        )

    def _tls_secret(
        self,
        name: str,
        common_name: str,
        ca_key: tls.PrivateKey,
        ca_cert: tls.SelfSignedCert,
        protect: pulumi.ResourceOptions,
        child: pulumi.ResourceOptions,
        uses: list[str],
        ip_addresses: list[pulumi.Input[str]] | None = None,
    ) -> tuple[aws.secretsmanager.Secret, aws.secretsmanager.SecretVersion]:
        """A key and a certificate for ``common_name`` signed by the cluster CA, with the CA, in a CMK-encrypted
        secret (JSON: ca, cert, key) named ``<name>-tls``; the key is a secret in state too."""
        key = tls.PrivateKey(f"{name}-tls-key", algorithm="ECDSA", ecdsa_curve="P256", opts=child)
        request = tls.CertRequest(
            f"{name}-csr",
            private_key_pem=key.private_key_pem,
            subject={"common_name": common_name, "organization": "pgha"},
            ip_addresses=ip_addresses,
            opts=child,
        )
        cert = tls.LocallySignedCert(
            f"{name}-cert",
            cert_request_pem=request.cert_request_pem,
            ca_private_key_pem=ca_key.private_key_pem,
            ca_cert_pem=ca_cert.cert_pem,
            validity_period_hours=CERT_VALIDITY_HOURS,
            allowed_uses=uses,
            opts=child,
        )
        secret = aws.secretsmanager.Secret(
            f"{name}-tls",
            description=f"pgha {name}: TLS key and certificate",
            kms_key_id=self.key.arn,
            recovery_window_in_days=7,
            opts=protect,
        )
        version = aws.secretsmanager.SecretVersion(
            f"{name}-tls-v",
            secret_id=secret.id,
            secret_string=pulumi.Output.secret(
                pulumi.Output.all(ca=ca_cert.cert_pem, cert=cert.cert_pem, key=key.private_key_pem).apply(json.dumps)
            ),
            opts=child,
        )
        return secret, version

    def _credentials(
        self, name: str, protect: pulumi.ResourceOptions, child: pulumi.ResourceOptions, replica: BackupReplica | None
    ) -> pulumi.Output[str]:
        """Random passwords, kept only in a CMK-encrypted Secrets Manager secret (and as secrets in state).

        With a DR region the secret is replicated there under the DR backups' key: a cluster restored there
        from the replicated backups has the passwords its roles were made with.

        Not rotated by Secrets Manager (FSBP SecretsManager.1 stays open for this secret, on purpose): each
        password lives in PostgreSQL and in every node's Patroni environment at once, and a rotation Lambda
        cannot restart Patroni on the nodes. Rotating is an operator step (docs/patroni.md): ALTER ROLE on
        the leader, a new secret version, then `systemctl restart patroni` node by node.
        """
        passwords = {
            key: random.RandomPassword(f"{name}-{key.replace('_', '-')}", length=32, special=False, opts=child).result
            for key in (*vars(SECRET_JSON_KEYS).values(), "app_password")
        }
        secret = aws.secretsmanager.Secret(
            f"{name}-credentials",
            description="pgha Patroni cluster credentials (superuser in username/password)",
            kms_key_id=self.key.arn,
            recovery_window_in_days=7,
            opts=protect,
            replicas=[{"region": replica.region, "kms_key_id": replica.key.arn}] if replica is not None else None,
        )
        self._credentials_version = aws.secretsmanager.SecretVersion(
            f"{name}-credentials-v",
            secret_id=secret.id,
            secret_string=pulumi.Output.secret(
                pulumi.Output.all(**passwords).apply(lambda p: json.dumps({"username": Users().superuser, **p}))
            ),
            opts=child,
        )
        return secret.arn

    def _backup_bucket(
        self, name: str, settings: PatroniSettings, protect: pulumi.ResourceOptions, child: pulumi.ResourceOptions
    ) -> aws.s3.Bucket:
        """Versioned, CMK-encrypted, private bucket for pgBackRest (WAL archive + base backups)."""
        bucket, self._backups_versioning = private_bucket(
            f"{name}-backups", self.key.arn, settings.backup_retention, self, bool(protect.protect)
        )
        self._access_logs(name, bucket, settings, protect, child)
        return bucket

    def _replicate_backups(self, name: str, args: PatroniClusterArgs, replica: BackupReplica) -> None:
        """Cross-region replication of the backup bucket to a bucket of the DR region (FSBP S3.7).

        Delete markers are replicated: pgBackRest's own expiry (a delete, hence a delete marker in a
        versioned bucket) then reaches the replica, whose lifecycle expires the hidden versions after
        ``backupRetention`` days like the source's, so the replica keeps the same window instead of
        growing forever. Deletes of a specific version (what an attacker with the node role would need
        to destroy data) are never replicated by S3, so the replica still holds them.
        """
        replica_name = f"{name}-dr"
        dr_region = replica.region
        # its access logs go to a log bucket of the DR region too (S3 logs only within a region)
        self._access_logs(
            replica_name,
            replica.bucket,
            args.settings,
            pulumi.ResourceOptions(parent=replica, protect=args.deletion_protection),
            pulumi.ResourceOptions(parent=replica),
        )
        role = service_role(f"{name}-backups-replication-role", "s3.amazonaws.com", self)
        source, destination = self.backup_bucket.arn, replica.bucket.arn

        def via_s3(region: str, bucket_arn: pulumi.Output[str]) -> pulumi.Output[dict]:
            # S3 asks KMS on the role's behalf; with S3 Bucket Keys the encryption context is the bucket ARN
            return bucket_arn.apply(
                lambda arn: {
                    "StringEquals": {"kms:ViaService": f"s3.{region}.amazonaws.com"},
                    "StringLike": {"kms:EncryptionContext:aws:s3:arn": [arn, f"{arn}/*"]},
                }
            )

        inline_policy(
            f"{name}-backups-replication-access",
            role,
            [
                {"Action": ["s3:GetReplicationConfiguration", "s3:ListBucket"], "Resource": source},
                {
                    "Action": [
                        "s3:GetObjectVersionForReplication",
                        "s3:GetObjectVersionAcl",
                        "s3:GetObjectVersionTagging",
                    ],
                    "Resource": source.apply(lambda arn: f"{arn}/*"),
                },
                {
                    "Action": ["s3:ReplicateObject", "s3:ReplicateDelete", "s3:ReplicateTags"],
                    "Resource": destination.apply(lambda arn: f"{arn}/*"),
                },
                {"Action": "kms:Decrypt", "Resource": self.key.arn, "Condition": via_s3(args.region, source)},
                {"Action": "kms:Encrypt", "Resource": replica.key.arn, "Condition": via_s3(dr_region, destination)},
            ],
            self,
        )
        aws.s3.BucketReplicationConfig(
            f"{name}-backups-replication",
            bucket=self.backup_bucket.id,
            role=role.arn,
            rules=[
                {
                    "id": "backups-to-dr-region",
                    "status": "Enabled",
                    "priority": 1,
                    "filter": {},
                    "delete_marker_replication": {"status": "Enabled"},
                    # objects written with SSE-KMS are skipped unless asked for, and every backup object is
                    "source_selection_criteria": {"sse_kms_encrypted_objects": {"status": "Enabled"}},
                    "destination": {
                        "bucket": destination,
                        "storage_class": "STANDARD",
                        "encryption_configuration": {"replica_kms_key_id": replica.key.arn},
                    },
                }
            ],
            # S3 refuses a replication configuration until both buckets are versioned
            opts=pulumi.ResourceOptions(
                parent=self, depends_on=[self._backups_versioning, replica.versioning, *role.ready]
            ),
        )

    def _access_logs(
        self,
        name: str,
        bucket: aws.s3.Bucket,
        settings: PatroniSettings,
        protect: pulumi.ResourceOptions,
        child: pulumi.ResourceOptions,
    ) -> None:
        """Server access logs of the backup bucket, into a private log bucket of their own.

        S3 delivers access logs only to a target with SSE-S3 (not SSE-KMS) default encryption.
        """
        logs = aws.s3.Bucket(f"{name}-backup-logs", force_destroy=False, opts=protect)
        aws.s3.BucketServerSideEncryptionConfiguration(
            f"{name}-backup-logs-sse",
            bucket=logs.id,
            rules=[{"apply_server_side_encryption_by_default": {"sse_algorithm": "AES256"}}],
            opts=child,
        )
        aws.s3.BucketPublicAccessBlock(
            f"{name}-backup-logs-private",
            bucket=logs.id,
            block_public_acls=True,
            block_public_policy=True,
            ignore_public_acls=True,
            restrict_public_buckets=True,
            opts=child,
        )
        aws.s3.BucketVersioning(
            f"{name}-backup-logs-versioning", bucket=logs.id, versioning_configuration={"status": "Enabled"}, opts=child
        )
        aws.s3.BucketOwnershipControls(
            f"{name}-backup-logs-owner", bucket=logs.id, rule={"object_ownership": "BucketOwnerEnforced"}, opts=child
        )
        aws.s3.BucketLifecycleConfiguration(
            f"{name}-backup-logs-lifecycle",
            bucket=logs.id,
            rules=[
                {
                    "id": "expire-logs",
                    "status": "Enabled",
                    "filter": {},
                    "expiration": {"days": max(90, settings.backup_retention)},
                }
            ],
            opts=child,
        )
        allow_logging = pulumi.Output.all(logs.arn, bucket.arn).apply(
            lambda arns: json.dumps(
                {
                    "Version": "2012-10-17",
                    "Statement": [
                        {
                            "Sid": "S3ServerAccessLogs",
                            "Effect": "Allow",
                            "Principal": {"Service": "logging.s3.amazonaws.com"},
                            "Action": "s3:PutObject",
                            "Resource": f"{arns[0]}/*",
                            "Condition": {"ArnLike": {"aws:SourceArn": arns[1]}},
                        },
                        {
                            "Sid": "DenyPlainHttp",
                            "Effect": "Deny",
                            "Principal": "*",
                            "Action": "s3:*",
                            "Resource": [arns[0], f"{arns[0]}/*"],
                            "Condition": {"Bool": {"aws:SecureTransport": "false"}},
                        },
                    ],
                }
            )
        )
        aws.s3.BucketPolicy(f"{name}-backup-logs-policy", bucket=logs.id, policy=allow_logging, opts=child)
        aws.s3.BucketLogging(
            f"{name}-backups-logging", bucket=bucket.id, target_bucket=logs.id, target_prefix="backups/", opts=child
        )

    def _security_groups(
        self, name: str, args: PatroniClusterArgs, child: pulumi.ResourceOptions
    ) -> tuple[aws.ec2.SecurityGroup, aws.ec2.SecurityGroup]:
        """Nodes: 5432 from clients, the NLB and each other; 8008 from the NLB and nodes; 2379/2380 among nodes."""
        ports = Ports()
        node_sg = aws.ec2.SecurityGroup(
            f"{name}-nodes-sg", description="pgha Patroni nodes", vpc_id=args.vpc_id, opts=child
        )
        nlb_sg = aws.ec2.SecurityGroup(
            f"{name}-nlb-sg", description="pgha Patroni NLB: PostgreSQL from clients", vpc_id=args.vpc_id, opts=child
        )

        for port in (ports.postgres, ports.restapi):
            allow_tcp(
                f"{name}-nodes-{port}-from-nlb",
                node_sg.id,
                port,
                "from the NLB",
                self,
                source_security_group_id=nlb_sg.id,
            )
            allow_tcp(
                f"{name}-nlb-{port}-to-nodes",
                nlb_sg.id,
                port,
                "to the nodes",
                self,
                source_security_group_id=node_sg.id,
                egress=True,
            )
        for port in (ports.postgres, ports.restapi, ports.etcd_client, ports.etcd_peer):
            for egress in (False, True):
                allow_tcp(
                    f"{name}-nodes-{port}-{'to' if egress else 'from'}-nodes",
                    node_sg.id,
                    port,
                    "between members",
                    self,
                    source_security_group_id=node_sg.id,
                    egress=egress,
                )
        for port, what in ((443, "HTTPS: AWS APIs, S3, package mirrors"), (80, "HTTP: Debian/PGDG apt mirrors")):
            allow_tcp(f"{name}-nodes-{port}-out", node_sg.id, port, what, self, cidr="0.0.0.0/0", egress=True)
        for front in (POSTGRES_PORT, READER_PORT):
            admit_clients(
                f"{name}-nlb-{front}", nlb_sg.id, front, args.allowed_cidrs, args.allowed_security_group_ids, self
            )
        return node_sg, nlb_sg

    def _instance_profile(
        self, node: str, tls_secret_arn: pulumi.Output[str], child: pulumi.ResourceOptions
    ) -> aws.iam.InstanceProfile:
        """One node's role: SSM instead of SSH; read the cluster secret and this node's own TLS secret (its private
        key: a node that can read a peer's key could impersonate it to etcd and Patroni); use the CMK; read
        the backup bucket, and write only pgBackRest's repository in it: the node bundle under ``bootstrap/``
        runs as root on every node launched later, so no node may replace it."""
        role = service_role(f"{node}-role", "ec2.amazonaws.com", self, ("AmazonSSMManagedInstanceCore",))
        bucket = self.backup_bucket.arn
        inline_policy(
            f"{node}-access",
            role,
            [
                {"Action": "secretsmanager:GetSecretValue", "Resource": [self.secret_arn, tls_secret_arn]},
                {"Action": ["kms:Decrypt", "kms:GenerateDataKey*", "kms:DescribeKey"], "Resource": self.key.arn},
                {"Action": ["s3:ListBucket", "s3:GetBucketLocation"], "Resource": bucket},
                {"Action": "s3:GetObject", "Resource": bucket.apply(lambda arn: f"{arn}/*")},
                {
                    "Action": ["s3:PutObject", "s3:DeleteObject"],
                    "Resource": bucket.apply(lambda arn: f"{arn}/{BackupRepo.path.strip('/')}/*"),
                },
            ],
            self,
        )
        # the node reads its secrets at boot: the instance (through its profile) waits for every grant
        return aws.iam.InstanceProfile(
            f"{node}-profile",
            role=role.name,
            opts=pulumi.ResourceOptions.merge(child, pulumi.ResourceOptions(depends_on=role.ready)),
        )

    def alarm_specs(self) -> list[AlarmSpec]:
        """No primary behind the writer listener, too few healthy replicas, a failing or overloaded node."""

        def target_group(role: str) -> dict[str, pulumi.Input[str]]:
            return {"TargetGroup": self._target_group_suffixes[role], "LoadBalancer": self._nlb_suffix}

        replicas = len(self.instances) - 1
        specs = [
            AlarmSpec(
                "writer-no-primary",
                "AWS/NetworkELB",
                "HealthyHostCount",
                target_group("writer"),
                "LessThanThreshold",
                1,
                "no node answers Patroni /primary behind the writer listener",
                "Minimum",
                "breaching",
            ),
            AlarmSpec(
                "reader-replicas",
                "AWS/NetworkELB",
                "HealthyHostCount",
                target_group("reader"),
                "LessThanThreshold",
                replicas,
                f"fewer than {replicas} replicas within {READER_MAX_LAG} bytes of the leader",
                "Minimum",
                "breaching",
            ),
        ]
        for index, instance in enumerate(self.instances, 1):
            specs += [
                AlarmSpec(
                    f"node-{index}-status",
                    "AWS/EC2",
                    "StatusCheckFailed",
                    {"InstanceId": instance.id},
                    "GreaterThanThreshold",
                    0,
                    "EC2 status check failing",
                    "Maximum",
                    "breaching",
                ),
                AlarmSpec(
                    f"node-{index}-cpu",
                    "AWS/EC2",
                    "CPUUtilization",
                    {"InstanceId": instance.id},
                    "GreaterThanThreshold",
                    80,
                    "CPU above 80%",
                    "Maximum",
                ),
            ]
        return specs

    def admit(self, name: str, source_security_group_id: pulumi.Input[str], description: str) -> pulumi.Resource:
        """Let members of another security group (the schema hook) reach the writer listener; return the rule
        (the schema hook's invocation waits for it)."""
        return allow_tcp(
            name, self._nlb_sg.id, POSTGRES_PORT, description, self, source_security_group_id=source_security_group_id
        )

    def admit_restapi(
        self, name: str, source_security_group_id: pulumi.Input[str], description: str
    ) -> pulumi.Resource:
        """Let members of another security group (the post-deploy hook) reach the nodes' Patroni REST API."""
        return allow_tcp(
            name,
            self._node_sg.id,
            Ports().restapi,
            description,
            self,
            source_security_group_id=source_security_group_id,
        )
