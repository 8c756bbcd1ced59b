"""The post-deploy hook: a Lambda in the database's VPC that runs ``pgha migrate``.

``aws.lambda_.Invocation`` runs it once the database exists and again whenever the
migrations' content hash (or the writer endpoint) changes; a failing migration fails the
invocation and with it ``pulumi up``. On the Patroni engine it also brings Patroni's dynamic
config (ttl, synchronous mode, PostgreSQL parameters: kept in etcd once the cluster exists) to
what the stack declares, and runs again when that changes.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pulumi
import pulumi_aws as aws

from components.access import allow_tcp, may_read_secret, service_role
from components.egress import HttpsEgress, allow_https_egress
from components.logins import LoginSecret
from components.network import POSTGRES_PORT
from pgha.node.render import SECRET_JSON_KEYS, Ports, Users
from pgha.schema.migrations import MIGRATIONS_DIR, migrations_hash

PGHA_DIR = Path(__file__).resolve().parent.parent / "pgha"
#: The runner's modules: everything the handler imports, nothing that needs the CLI's packages.
RUNNER_MODULES = (
    "__init__.py",
    "connect.py",
    "secret_store.py",
    "schema/__init__.py",
    "schema/migrate.py",
    "schema/migrations.py",
    "schema/logins.py",
    "schema/lambda_handler.py",
    "node/__init__.py",
    "node/dynamic_config.py",
    "node/patroni_api.py",
    "node/rest.py",
    "wait.py",
)
#: Pure-Python distributions the runner needs (boto3 is part of the Lambda runtime).
RUNNER_DISTRIBUTIONS = ("pg8000", "sqlparse", "scramp")


@dataclass(frozen=True)
class PatroniTarget:
    """A Patroni cluster whose dynamic config the hook keeps at what the stack declares."""

    #: The members' REST APIs (``https://<address>:8008``) and the CA their certificates chain to.
    urls: pulumi.Input[list[str]]
    ca_cert_pem: pulumi.Input[str]
    #: ``bootstrap.dcs`` as the nodes render it (ttl, synchronous_mode, postgresql.parameters, ...).
    dynamic_config: pulumi.Input[dict]
    #: Opens the nodes' REST API to the hook's security group; returns the rule (the invocation waits for it).
    admit: Callable[[pulumi.Output[str]], pulumi.Resource]
    #: The superuser's client certificate (secret JSON: ca, cert, key), without which the nodes refuse the
    #: superuser from outside the members, and its version (the invocation waits for it).
    client_tls_secret_arn: pulumi.Input[str]
    client_tls_ready: pulumi.Resource


def config_hash(config: dict) -> str:
    """A short content hash of a dynamic config: a changed setting re-runs the hook."""
    return hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class SchemaHookArgs:
    """The database to migrate and the network the function runs in."""

    vpc_id: pulumi.Input[str]
    vpc_cidr: pulumi.Input[str]
    subnet_ids: pulumi.Input[list[str]]
    writer_host: pulumi.Input[str]
    master_secret_arn: pulumi.Input[str]
    kms_key_arn: pulumi.Input[str]
    #: How the subnets reach Secrets Manager (endpoint security groups and/or a NAT).
    https_egress: HttpsEgress = field(default_factory=HttpsEgress)
    #: Resources the invocation must wait for (the database instance; on Patroni also the NLB's listeners
    #: and target-group attachments it connects through).
    depends_on: tuple[pulumi.Resource, ...] = ()
    #: What gives the subnets their way out (NAT route, endpoints): the invocation waits for them too.
    egress_ready: tuple[pulumi.Resource, ...] = ()
    #: Application logins the hook creates with the passwords of their secrets.
    logins: Sequence[LoginSecret] = ()
    #: The logins' secret values: the invocation reads them, so it waits for them.
    logins_ready: tuple[aws.secretsmanager.SecretVersion, ...] = ()
    #: Opens the database to the hook's security group; returns the rule (the invocation waits for it).
    admit: Callable[[pulumi.Output[str]], pulumi.Resource] | None = None
    #: The Patroni engine's cluster: its dynamic config follows the stack (None for RDS).
    patroni: PatroniTarget | None = None
    database: str = "app"
    port: int = POSTGRES_PORT
    migrations_dir: Path = MIGRATIONS_DIR
    timeout_seconds: int = 900
    memory_mb: int = 512
    #: Reserved concurrency of the function; None reserves none (the default: Lambda refuses any reservation
    #: that leaves the account less than its minimum unreserved, which new accounts with a low quota hit).
    #: Runs are serialized by the migrations' advisory lock either way.
    reserved_concurrency: int | None = None
    log_retention_days: int = 30


def _distribution_closure(names: tuple[str, ...]) -> list[importlib.metadata.Distribution]:
    """The installed distributions and everything they require, excluding optional extras."""
    seen: dict[str, importlib.metadata.Distribution] = {}
    queue = list(names)
    while queue:
        name = re.split(r"[ ;<>=!~\[]", queue.pop(), maxsplit=1)[0].lower().replace("_", "-")
        if name in seen or name in ("boto3", "botocore"):
            continue
        dist = importlib.metadata.distribution(name)
        seen[name] = dist
        queue += [req for req in dist.requires or [] if "extra ==" not in req]
    return list(seen.values())


def lambda_bundle(migrations_dir: Path = MIGRATIONS_DIR) -> dict[str, pulumi.Asset | pulumi.Archive]:
    """The function's files: the runner, the migrations, and its pure-Python dependencies as installed.

    Built from this machine's installed packages, so deploying needs no network for them.
    """
    files: dict[str, pulumi.Asset | pulumi.Archive] = {
        f"pgha/{m}": pulumi.FileAsset(str(PGHA_DIR / m)) for m in RUNNER_MODULES
    }
    for sql in sorted(migrations_dir.glob("*.sql")):
        files[f"schema/migrations/{sql.name}"] = pulumi.FileAsset(str(sql))
    for dist in _distribution_closure(RUNNER_DISTRIBUTIONS):
        for entry in dist.files or []:
            path = Path(str(dist.locate_file(entry)))
            if entry.suffix != ".pyc" and ".." not in entry.parts and path.is_file():
                files[str(entry)] = pulumi.FileAsset(str(path))
    return files


class SchemaHook(pulumi.ComponentResource):
    """Lambda + role + security group + the invocation that applies the schema after each change."""

    migrations_hash: pulumi.Output[str]
    security_group_id: pulumi.Output[str]

    def __init__(self, name: str, args: SchemaHookArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("pgha:schema:SchemaHook", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        schema_hash = migrations_hash(args.migrations_dir)

        sg = aws.ec2.SecurityGroup(
            f"{name}-sg",
            description="pgha schema hook: out to PostgreSQL and to Secrets Manager only",
            vpc_id=args.vpc_id,
            opts=child,
        )
        # every rule the function needs, so that the invocation waits for all of them
        rules: list[pulumi.Resource] = [
            allow_tcp(
                f"{name}-to-{args.port}",
                sg.id,
                args.port,
                "PostgreSQL inside the VPC",
                self,
                cidr=args.vpc_cidr,
                egress=True,
            ),
            *allow_https_egress(f"{name}-https", sg.id, args.https_egress, self),
        ]
        if args.admit is not None:
            rules.append(args.admit(sg.id))
        if args.patroni is not None:
            rules += [
                allow_tcp(
                    f"{name}-to-{Ports().restapi}",
                    sg.id,
                    Ports().restapi,
                    "Patroni REST API inside the VPC",
                    self,
                    cidr=args.vpc_cidr,
                    egress=True,
                ),
                args.patroni.admit(sg.id),
            ]

        role = service_role(
            f"{name}-role",
            "lambda.amazonaws.com",
            self,
            ("service-role/AWSLambdaVPCAccessExecutionRole", "AWSXRayDaemonWriteAccess"),
        )
        may_read_secret(
            f"{name}-read-secrets",
            role,
            [
                args.master_secret_arn,
                *[login.secret_arn for login in args.logins],
                *([args.patroni.client_tls_secret_arn] if args.patroni is not None else []),
            ],
            args.kms_key_arn,
            self,
        )
        logs = aws.cloudwatch.LogGroup(
            f"{name}-logs",
            name=f"/aws/lambda/{name}",
            retention_in_days=args.log_retention_days,
            kms_key_id=args.kms_key_arn,
            opts=child,
        )
        function = aws.lambda_.Function(
            f"{name}-fn",
            name=name,
            description="pgha: apply schema/migrations (pgha migrate) and, on Patroni, its dynamic config",
            runtime="python3.12",
            architectures=["arm64"],
            handler="pgha.schema.lambda_handler.handler",
            code=pulumi.AssetArchive(lambda_bundle(args.migrations_dir)),
            role=role.arn,
            timeout=args.timeout_seconds,
            memory_size=args.memory_mb,
            vpc_config={"subnet_ids": args.subnet_ids, "security_group_ids": [sg.id]},
            logging_config={"log_format": "Text", "log_group": logs.name},
            reserved_concurrent_executions=args.reserved_concurrency,
            tracing_config={"mode": "Active"},
            # CreateFunction with a VPC config checks the role may create network interfaces
            opts=pulumi.ResourceOptions(parent=self, depends_on=[logs, *role.ready]),
        )
        logins = [
            login.secret_arn.apply(lambda arn, group=login.login.member_of: {"secretArn": arn, "memberOf": group})
            for login in args.logins
        ]
        patroni = args.patroni
        patroni_event = (
            pulumi.Output.all(
                patroni.urls, patroni.ca_cert_pem, patroni.dynamic_config, patroni.client_tls_secret_arn
            ).apply(
                lambda v: {
                    "clientTlsSecretArn": v[3],
                    "patroni": {
                        "urls": v[0],
                        "caCert": v[1],
                        "dynamicConfig": v[2],
                        "user": Users().restapi,
                        "passwordKey": SECRET_JSON_KEYS.restapi,
                    },
                }
            )
            if patroni is not None
            else {}
        )
        invocation = aws.lambda_.Invocation(
            f"{name}-apply",
            function_name=function.name,
            input=pulumi.Output.all(args.writer_host, args.master_secret_arn, patroni_event, *logins).apply(
                lambda values: json.dumps(
                    {
                        "host": values[0],
                        "port": args.port,
                        "database": args.database,
                        "secretArn": values[1],
                        "sslmode": "require",
                        "migrationsHash": schema_hash,
                        "logins": list(values[3:]),
                        **values[2],
                    }
                )
            ),
            # the secret values' version ids: a new password re-runs the hook, which sets it in the database
            triggers={
                "migrationsHash": schema_hash,
                "writerEndpoint": args.writer_host,
                **(
                    {"patroniConfig": pulumi.Output.from_input(patroni.dynamic_config).apply(config_hash)}
                    if patroni is not None
                    else {}
                ),
                **{
                    f"login-{login.login.username}": version.version_id
                    for login, version in zip(args.logins, args.logins_ready, strict=False)
                },
            },
            # every grant too: the handler reads its secrets at once (and retries a denial only for a while)
            opts=pulumi.ResourceOptions(
                parent=self,
                depends_on=[
                    *args.depends_on,
                    *args.egress_ready,
                    *args.logins_ready,
                    *rules,
                    function,
                    *role.ready,
                    *([patroni.client_tls_ready] if patroni is not None else []),
                ],
            ),
        )
        self.migrations_hash = invocation.result.apply(lambda _result: schema_hash)
        self.security_group_id = sg.id
        self.register_outputs({"migrationsHash": self.migrations_hash})
