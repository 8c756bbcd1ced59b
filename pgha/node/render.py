"""Render a node's Patroni and etcd configuration from the templates in ``patroni/``.

One pure function for every place a node is configured: the local lab renders three nodes on
loopback addresses, the EC2 path renders the same templates into each instance's user-data.
Passwords never enter a rendered file; :func:`patroni_environment` turns them into the
environment variables Patroni reads them from.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import jinja2

TEMPLATES_DIR = Path(__file__).resolve().parents[2] / "patroni"


class TimingError(ValueError):
    """Patroni timing that Patroni would silently adjust; the message says which rule is broken."""


@dataclass(frozen=True)
class PatroniTiming:
    """Patroni's leader lock timing, in seconds.

    Patroni requires ttl >= 20, loop_wait >= 1, retry_timeout >= 3 and
    loop_wait + 2 * retry_timeout <= ttl, and quietly changes values that break them; we refuse
    them instead. Failover takes up to ttl (the lock must expire) plus one loop.
    """

    ttl: int = 30
    loop_wait: int = 10
    retry_timeout: int = 10

    def problems(self) -> list[str]:
        """Every rule these values break (empty when valid)."""
        found = []
        if self.ttl < 20:
            found.append(f"ttl = {self.ttl}: must be at least 20")
        if self.loop_wait < 1:
            found.append(f"loopWait = {self.loop_wait}: must be at least 1")
        if self.retry_timeout < 3:
            found.append(f"retryTimeout = {self.retry_timeout}: must be at least 3")
        if self.loop_wait + 2 * self.retry_timeout > self.ttl:
            found.append(
                f"loopWait + 2 * retryTimeout = {self.loop_wait + 2 * self.retry_timeout} exceeds ttl = {self.ttl}: "
                "Patroni would shorten them silently"
            )
        return found

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
    ssl_cert_file: str
    ssl_key_file: str


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
    #: How WAL leaves the node: pgBackRest to S3 on EC2, a copy into a local directory in the lab.
    archive_command: str = "/bin/true"


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


def render_etcd(cluster: ClusterSpec, node: NodeSpec) -> str:
    """The node's etcd configuration file."""
    return _environment().get_template("etcd.yml.j2").render(cluster=cluster, node=node)


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


#: The node's Python requirements, pinned with ``==``: the versions the lab runs and the tests use.
NODE_REQUIREMENTS = Path(__file__).resolve().parents[2] / "requirements-lab.txt"


def node_pin(distribution: str, requirements: Path = NODE_REQUIREMENTS) -> str:
    """The ``==`` version ``requirements`` pins for ``distribution`` (extras ignored).

    Read as text, not from the installed packages, so the deploy-time program needs only
    requirements.txt (Pulumi builds its venv from that file alone).
    """
    wanted = re.sub(r"[-_.]+", "-", distribution).lower()
    for line in requirements.read_text().splitlines():
        match = re.fullmatch(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?\s*==\s*([^\s;#]+).*", line)
        if match and re.sub(r"[-_.]+", "-", match[1]).lower() == wanted:
            return match[3]
    raise LookupError(f"{requirements.name} pins no version of {distribution} (expected a line {distribution}==X.Y.Z)")


@dataclass(frozen=True)
class BootSettings:
    """What an EC2 node needs at boot besides its Patroni and etcd configuration (no secrets)."""

    region: str
    secret_arn: str
    backup_bucket: str
    kms_key_arn: str
    data_volume_id: str
    postgres_version: int
    backup_retention_days: int = 14
    #: Nodes run the Patroni this project is tested with (the lab's pinned versions).
    patroni_version: str = field(default_factory=lambda: node_pin("patroni"))
    psycopg_version: str = field(default_factory=lambda: node_pin("psycopg"))


def render_user_data(cluster: ClusterSpec, node: NodeSpec, boot: BootSettings) -> str:
    """The node's cloud-init user-data: packages, the rendered configs, services. No secret in it."""
    return _environment().get_template("cloud-init.yml.j2").render(
        cluster=cluster, node=node, boot=boot,
        patroni_yml=render_patroni(cluster, node), etcd_yml=render_etcd(cluster, node),
        # PATRONI_* variable -> the secret's JSON key (passwords) or the literal user name
        environment_keys=patroni_environment(cluster.users, SECRET_JSON_KEYS),
    )
