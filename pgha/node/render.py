"""Render a node's Patroni and etcd configuration from the templates in ``patroni/``.

One pure function for every place a node is configured: the local lab renders three nodes on
loopback addresses, the EC2 path renders the same templates into each instance's user-data.
Passwords never enter a rendered file; :func:`patroni_environment` turns them into the
environment variables Patroni reads them from.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import jinja2
import yaml

TEMPLATES_DIR = Path(__file__).resolve().parents[2] / "patroni"


class TimingError(ValueError):
    """Patroni timing that Patroni would silently adjust; the message says which rule is broken."""


@dataclass(frozen=True)
class PatroniTiming:
    """Patroni's leader lock timing, in seconds.

    Patroni requires ttl >= 20, loop_wait >= 1, retry_timeout >= 3 and
    loop_wait + 2 * retry_timeout <= ttl, and quietly changes values that break them; we refuse
    them instead. Failover takes up to ttl (the lock must expire) plus one loop, so ttl is also
    capped at MAX_TTL: Patroni accepts any ttl, but a larger one leaves a dead leader unreplaced
    for over an hour, and one beyond etcd's lease limit ("etcdserver: too large lease TTL") leaves
    the cluster with no leader at all. loop_wait and retry_timeout are bounded by ttl through the
    rule above.
    """

    #: The longest leader key TTL we accept (s): beyond it a dead leader is not replaced for an hour.
    MAX_TTL = 3600

    ttl: int = 30
    loop_wait: int = 10
    retry_timeout: int = 10

    def problems(self, names: tuple[str, str, str] = ("ttl", "loopWait", "retryTimeout")) -> list[str]:
        """Every rule these values break (empty when valid), naming the values as ``names`` spells them
        (the stack config keys by default; the CLI passes its option names)."""
        ttl, loop_wait, retry_timeout = names
        found = []
        if self.ttl < 20:
            found.append(f"{ttl} = {self.ttl}: must be at least 20")
        if self.ttl > self.MAX_TTL:
            found.append(
                f"{ttl} = {self.ttl}: must be at most {self.MAX_TTL} "
                "(a dead leader would not be replaced for longer than an hour)"
            )
        if self.loop_wait < 1:
            found.append(f"{loop_wait} = {self.loop_wait}: must be at least 1")
        if self.retry_timeout < 3:
            found.append(f"{retry_timeout} = {self.retry_timeout}: must be at least 3")
        if self.loop_wait + 2 * self.retry_timeout > self.ttl:
            found.append(
                f"{loop_wait} + 2 * {retry_timeout} = {self.loop_wait + 2 * self.retry_timeout} exceeds "
                f"{ttl} = {self.ttl}: Patroni would shorten them silently"
            )
        return found

    def with_changes(
        self, ttl: int | None = None, loop_wait: int | None = None, retry_timeout: int | None = None
    ) -> PatroniTiming:
        """These values with the ones given replaced; None keeps the current one (``pgha lab up --ttl 30``
        changes the ttl and keeps the lab's loop_wait and retry_timeout). Not validated: see :meth:`problems`."""
        given = {"ttl": ttl, "loop_wait": loop_wait, "retry_timeout": retry_timeout}
        return replace(self, **{key: value for key, value in given.items() if value is not None})

    def validate(self) -> PatroniTiming:
        """Return self, or raise TimingError naming every broken rule."""
        if self.problems():
            raise TimingError("; ".join(self.problems()))
        return self


@dataclass(frozen=True)
class Ports:
    """The production ports; lab nodes use them too, each on its own loopback address."""

    postgres: int = 5432
    restapi: int = 8008
    etcd_client: int = 2379
    etcd_peer: int = 2380


@dataclass(frozen=True)
class Users:
    """Role names Patroni manages (their passwords come from the environment)."""

    superuser: str = "postgres"
    replication: str = "replicator"
    rewind: str = "rewinder"
    restapi: str = "patroni"


@dataclass(frozen=True)
class NodeSpec:
    """One member: where it listens and where its files live."""

    name: str
    address: str
    data_dir: str
    bin_dir: str
    etcd_data_dir: str
    socket_dir: str
    pgpass: str
    #: The node's certificate and key (server and client: PostgreSQL, Patroni's REST API, etcd) and the
    #: cluster CA that signed every member's certificate.
    ssl_cert_file: str
    ssl_key_file: str
    ca_file: str
    #: Where the bootstrap writes pgbackrest.conf, post-bootstrap and the root-only environment file.
    config_dir: str
    #: pgBackRest's lock, log and spool directories live under this one.
    pgbackrest_dir: str

    @property
    def pgbackrest_conf(self) -> str:
        """The node's pgBackRest configuration file."""
        return f"{self.config_dir}/pgbackrest.conf"


@dataclass(frozen=True)
class ClusterSpec:
    """What all members share. Defaults follow the seed's settings where they are sound."""

    name: str
    nodes: Sequence[NodeSpec]
    #: Networks of the members (replication, rewind, superuser) and of clients.
    member_cidrs: Sequence[str]
    client_cidrs: Sequence[str]
    timing: PatroniTiming = PatroniTiming()
    ports: Ports = Ports()
    users: Users = Users()
    synchronous_mode: bool = True
    synchronous_mode_strict: bool = False
    maximum_lag_on_failover: int = 1048576
    max_connections: int = 200
    slow_query_ms: int = 1000
    database: str = "app"
    preload_libraries: Sequence[str] = ("pg_stat_statements",)
    #: pgBackRest's S3 repository: WAL archive and base backups (EC2: KMS-encrypted bucket; lab: moto).
    backup: BackupRepo = field(default_factory=lambda: BackupRepo(bucket="", region="us-east-1"))


@dataclass(frozen=True)
class BackupRepo:
    """Where pgBackRest keeps WAL and backups: an S3 bucket, on AWS or on an S3-compatible endpoint."""

    bucket: str
    region: str
    #: S3 host and port; AWS's regional endpoint unless overridden (the lab's moto server).
    endpoint: str = ""
    port: int = 443
    #: CA that signs the endpoint's certificate (empty: the system's trust store).
    ca_file: str = ""
    #: "host" (AWS) or "path" (moto and other S3-compatible servers).
    uri_style: str = "host"
    #: "auto": the instance role's credentials; "shared": PGBACKREST_REPO1_S3_KEY[_SECRET] from the environment.
    key_type: str = "auto"
    kms_key_arn: str = ""
    path: str = "/pgbackrest"
    retention_full_days: int = 14

    @property
    def s3_endpoint(self) -> str:
        """The S3 host pgBackRest connects to."""
        return self.endpoint or f"s3.{self.region}.amazonaws.com"


def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES_DIR),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,  # YAML, not HTML
    )


def render_patroni(cluster: ClusterSpec, node: NodeSpec) -> str:
    """The node's ``patroni.yml``. Raises TimingError for timing Patroni would adjust."""
    cluster.timing.validate()
    return _environment().get_template("patroni.yml.j2").render(cluster=cluster, node=node)


def dynamic_config(cluster: ClusterSpec) -> dict[str, Any]:
    """The cluster-wide settings the template declares under ``bootstrap.dcs`` (ttl, synchronous_mode,
    PostgreSQL parameters, ...): what :mod:`pgha.node.dynamic_config` keeps a running cluster at."""
    return yaml.safe_load(render_patroni(cluster, cluster.nodes[0]))["bootstrap"]["dcs"]


def etcd_peer_url(cluster: ClusterSpec, node: NodeSpec) -> str:
    """The URL a member's etcd peers reach it on."""
    return f"https://{node.address}:{cluster.ports.etcd_peer}"


def render_etcd(
    cluster: ClusterSpec, node: NodeSpec, state: str = "new", initial_cluster: Sequence[tuple[str, str]] | None = None
) -> str:
    """The node's etcd configuration file. ``state`` and ``initial_cluster`` (name, peer URL) come from
    :mod:`pgha.node.etcd_join`; without ``initial_cluster`` the members are the cluster's nodes."""
    if state not in ("new", "existing"):
        raise ValueError(f"etcd initial cluster state {state!r}: must be new or existing")
    members = initial_cluster or [(n.name, etcd_peer_url(cluster, n)) for n in cluster.nodes]
    return (
        _environment()
        .get_template("etcd.yml.j2")
        .render(
            cluster=cluster, node=node, state=state, initial_cluster=",".join(f"{name}={url}" for name, url in members)
        )
    )


def render_pgbackrest(cluster: ClusterSpec, node: NodeSpec) -> str:
    """The node's pgbackrest.conf: the S3 repository and this node's data directory (no key in it)."""
    return _environment().get_template("pgbackrest.conf.j2").render(cluster=cluster, node=node, repo=cluster.backup)


def render_post_bootstrap(cluster: ClusterSpec, node: NodeSpec) -> str:
    """The script Patroni runs once on the node that initialises the cluster: database, stanza."""
    return _environment().get_template("post-bootstrap.sh.j2").render(cluster=cluster, node=node)


#: How many times stanza-create.sh tries while pgBackRest's asynchronous archiver holds the archive lock.
STANZA_CREATE_ATTEMPTS = 30


def render_stanza_create(cluster: ClusterSpec, node: NodeSpec, attempts: int = STANZA_CREATE_ATTEMPTS) -> str:
    """The script that creates (or checks) the backup stanza, waiting out the archiver's lock: the one way
    post-bootstrap, the backup units and the lab create it."""
    return _environment().get_template("stanza-create.sh.j2").render(cluster=cluster, node=node, attempts=attempts)


@dataclass(frozen=True)
class ClusterSecrets:
    """The passwords a cluster needs; kept out of every rendered file."""

    superuser: str
    replication: str
    rewind: str
    restapi: str


def patroni_environment(users: Users, secrets: ClusterSecrets) -> dict[str, str]:
    """The PATRONI_* variables that give Patroni its credentials at start."""
    return {
        "PATRONI_SUPERUSER_USERNAME": users.superuser,
        "PATRONI_SUPERUSER_PASSWORD": secrets.superuser,
        "PATRONI_REPLICATION_USERNAME": users.replication,
        "PATRONI_REPLICATION_PASSWORD": secrets.replication,
        "PATRONI_REWIND_USERNAME": users.rewind,
        "PATRONI_REWIND_PASSWORD": secrets.rewind,
        "PATRONI_RESTAPI_USERNAME": users.restapi,
        "PATRONI_RESTAPI_PASSWORD": secrets.restapi,
    }


#: Where each credential sits in the cluster's Secrets Manager secret (JSON keys, not values).
SECRET_JSON_KEYS = ClusterSecrets(
    superuser="password", replication="replication_password", rewind="rewind_password", restapi="restapi_password"
)


#: systemd units an EC2 node runs, rendered from patroni/systemd/<unit>.j2.
UNITS = (
    "pgha-etcd.service",
    "patroni.service",
    "pgha-backup-full.service",
    "pgha-backup-full.timer",
    "pgha-backup-diff.service",
    "pgha-backup-diff.timer",
)
#: The units a node enables: every unit but the services its timers start.
ENABLED_UNITS = tuple(u for u in UNITS if not (u.endswith(".service") and u.replace(".service", ".timer") in UNITS))
#: Session Manager's agent (the Debian AMI has none), from AWS's regional bucket, pinned to a release.
#: 3.3.4851.0: the release AWS's own AMIs moved to in August 2026 (github.com/aws/amazon-ssm-agent tag 3.3.4851.0).
SSM_AGENT_VERSION = "3.3.4851.0"


def apt_pins() -> list[str]:
    """The pinned Debian packages (name=version) from patroni/node-packages.txt."""
    lines = (TEMPLATES_DIR / "node-packages.txt").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]


def node_requirement_pins() -> dict[str, str]:
    """Python distribution -> version a node installs, read from the hashed patroni/node-requirements.txt.

    Plain text: the deploy-time program needs no Patroni installed to know what the nodes run.
    """
    pins = {}
    for line in (TEMPLATES_DIR / "node-requirements.txt").read_text().splitlines():
        if "==" in line and not line.startswith((" ", "#")):
            name, _, rest = line.partition("==")
            pins[name.strip().lower()] = rest.split()[0].rstrip("\\").strip()
    return pins


@dataclass(frozen=True)
class BootSettings:
    """What an EC2 node's user-data needs besides its node file (no secrets)."""

    region: str
    #: Where `pulumi up` put the bootstrap code (pgha + patroni/ templates) for the nodes to fetch.
    bundle_bucket: str
    bundle_key: str
    data_volume_id: str
    postgres_version: int
    architecture: str = "arm64"
    #: Where pgha-mount-data mounts the data volume; the node file's ``data_mount`` and the units check it.
    data_mount: str = "/var/lib/pgha"

    @property
    def pgdg_packages(self) -> list[str]:
        """The packages taken from PGDG only: the server and pg_cron for the major version, and pgBackRest,
        whose Debian 12 release (2.45) cannot read the control file of PostgreSQL 16 or later."""
        return [f"postgresql-{self.postgres_version}", f"postgresql-{self.postgres_version}-cron", "pgbackrest"]

    @property
    def packages(self) -> list[str]:
        """apt packages to install: the pinned Debian ones and the PGDG ones."""
        return [*apt_pins(), *self.pgdg_packages]

    @property
    def ssm_install(self) -> str:
        """Shell that installs and starts the pinned SSM agent for this region and architecture."""
        arch = "arm64" if self.architecture == "arm64" else "amd64"
        url = (
            f"https://s3.{self.region}.amazonaws.com/amazon-ssm-{self.region}/{SSM_AGENT_VERSION}/"
            f"debian_{arch}/amazon-ssm-agent.deb"
        )
        return (
            f"curl -fsSL --retry 10 --retry-all-errors -o /var/tmp/amazon-ssm-agent.deb {url} && "
            "dpkg -i /var/tmp/amazon-ssm-agent.deb && systemctl enable --now amazon-ssm-agent"
        )


def render_units(cluster: ClusterSpec, node: NodeSpec, data_mount: str = "") -> dict[str, str]:
    """The node's systemd units, by file name. With ``data_mount``, etcd and Patroni refuse to start (and retry)
    while it is not a mount point: ``RequiresMountsFor=`` alone is met by the root file system when no mount
    unit exists for the volume (pgha-mount-data failed before writing its fstab entry)."""
    environment = _environment()
    return {
        unit: environment.get_template(f"systemd/{unit}.j2").render(cluster=cluster, node=node, data_mount=data_mount)
        for unit in UNITS
    }


def render_user_data(cluster: ClusterSpec, node: NodeSpec, node_json: str, boot: BootSettings) -> str:
    """The node's cloud-init user-data: pinned packages, the node file, the units, the bootstrap. No secret."""
    return (
        _environment()
        .get_template("cloud-init.yml.j2")
        .render(
            cluster=cluster,
            node=node,
            boot=boot,
            node_json=node_json,
            units=render_units(cluster, node, boot.data_mount),
        )
    )
