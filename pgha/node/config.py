"""A node's boot description: the JSON file ``pgha node bootstrap --config FILE`` reads.

The same file format for an EC2 instance (cloud-init writes it; the Pulumi program renders it) and
for each lab node (the lab writes it). It holds addresses, paths and where secrets live, never a
secret. :func:`load` checks every field and names the first problem in one line.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from pgha.node.render import BackupRepo, ClusterSpec, NodeSpec, PatroniTiming, Ports, Users


class NodeConfigError(ValueError):
    """The node file is missing, not JSON, or a field is absent or of the wrong kind."""


@dataclass(frozen=True)
class AwsAccess:
    """Where the node's secrets live and which endpoint serves the AWS APIs."""

    region: str
    #: The cluster's credentials (JSON: password, replication_password, rewind_password, restapi_password).
    secret_arn: str
    #: This node's TLS material (JSON: ca, cert, key), delivered like the passwords, never in user-data.
    tls_secret_arn: str
    #: Secrets Manager endpoint override (the lab's moto server); empty: AWS_ENDPOINT_URL or AWS itself.
    endpoint_url: str = ""
    #: CA bundle for that endpoint (the lab's CA); empty: the system trust store.
    ca_bundle: str = ""


@dataclass(frozen=True)
class NodeConfig:
    """Everything one node needs to configure itself at boot (no secret)."""

    cluster: ClusterSpec
    node: NodeSpec
    aws: AwsAccess
    #: "systemd": enable and start the units (EC2); "external": write files only, a supervisor starts them (lab).
    service_manager: str = "systemd"
    #: The OS user that runs etcd, Patroni and PostgreSQL.
    service_user: str = "postgres"
    #: Where to write a root-only patronictl configuration (EC2); empty: none.
    patronictl_config: str = ""
    #: A mount point the node's data must be on (EC2: its EBS volume at /var/lib/pgha): the bootstrap refuses
    #: to run while it is not mounted, rather than put PostgreSQL and etcd on the root disk. Empty: no check (lab).
    data_mount: str = ""

    def data_paths(self) -> dict[str, str]:
        """The node's paths that hold data (PostgreSQL, etcd, pgBackRest, pgpass), by field name."""
        node = self.node
        return {"data_dir": node.data_dir, "etcd_data_dir": node.etcd_data_dir,
                "pgbackrest_dir": node.pgbackrest_dir, "pgpass": node.pgpass}

    def to_json(self) -> str:
        """The node file's text."""
        cluster = asdict(self.cluster)
        cluster.pop("nodes")
        return json.dumps({
            "cluster": {**cluster, "preload_libraries": list(self.cluster.preload_libraries),
                        "member_cidrs": list(self.cluster.member_cidrs),
                        "client_cidrs": list(self.cluster.client_cidrs)},
            "peers": [{"name": n.name, "address": n.address} for n in self.cluster.nodes],
            "node": asdict(self.node),
            "aws": asdict(self.aws),
            "service_manager": self.service_manager,
            "service_user": self.service_user,
            "patronictl_config": self.patronictl_config,
            "data_mount": self.data_mount,
        }, indent=2) + "\n"


def _section(data: dict[str, Any], key: str, kind: type, where: str) -> Any:
    if key not in data:
        raise NodeConfigError(f"{where}: missing {key!r}")
    value = data[key]
    if not isinstance(value, kind):
        raise NodeConfigError(f"{where}.{key} = {value!r}: must be a {kind.__name__}")
    return value


def _build(cls: type, data: dict[str, Any], where: str) -> Any:
    try:
        return cls(**data)
    except TypeError as err:
        raise NodeConfigError(f"{where}: {err}") from None


def parse(text: str, source: str = "node config") -> NodeConfig:
    """A NodeConfig from the file's text; NodeConfigError names the first bad field."""
    try:
        data = json.loads(text)
    except ValueError as err:
        raise NodeConfigError(f"{source}: not JSON ({err})") from None
    if not isinstance(data, dict):
        raise NodeConfigError(f"{source}: must be a JSON object")
    cluster = dict(_section(data, "cluster", dict, source))
    peers = _section(data, "peers", list, source)
    node_data = _section(data, "node", dict, source)
    aws = _build(AwsAccess, _section(data, "aws", dict, source), f"{source}: aws")
    node = _build(NodeSpec, node_data, f"{source}: node")
    if not peers or not all(isinstance(p, dict) and {"name", "address"} <= set(p) for p in peers):
        raise NodeConfigError(f"{source}: peers must list objects with name and address")
    if node.name not in {p["name"] for p in peers}:
        raise NodeConfigError(f"{source}: node {node.name!r} is not among the peers")
    # every member uses the same layout; only names and addresses differ
    members = [node if p["name"] == node.name else NodeSpec(**{**node_data, **p}) for p in peers]
    for key, cls in (("timing", PatroniTiming), ("ports", Ports), ("users", Users), ("backup", BackupRepo)):
        if key in cluster:
            cluster[key] = _build(cls, _section(cluster, key, dict, f"{source}: cluster"), f"{source}: cluster.{key}")
    for key in ("member_cidrs", "client_cidrs", "preload_libraries"):
        if key in cluster:
            cluster[key] = tuple(_section(cluster, key, list, f"{source}: cluster"))
    spec = _build(ClusterSpec, {**cluster, "nodes": tuple(members)}, f"{source}: cluster")
    manager = data.get("service_manager", "systemd")
    if manager not in ("systemd", "external"):
        raise NodeConfigError(f"{source}: service_manager = {manager!r}: must be systemd or external")
    problems = spec.timing.problems()
    if problems:
        raise NodeConfigError(f"{source}: cluster.timing: {'; '.join(problems)}")
    config = NodeConfig(cluster=spec, node=node, aws=aws, service_manager=manager,
                        service_user=data.get("service_user", "postgres"),
                        patronictl_config=data.get("patronictl_config", ""),
                        data_mount=data.get("data_mount", ""))
    _check_data_mount(config, source)
    return config


def _check_data_mount(config: NodeConfig, source: str) -> None:
    """A data mount must be an absolute path holding every data path (else its check would prove nothing)."""
    mount = config.data_mount
    if not mount:
        return
    if not isinstance(mount, str) or not Path(mount).is_absolute():
        raise NodeConfigError(f"{source}: data_mount = {mount!r}: must be an absolute path")
    for key, path in config.data_paths().items():
        if not Path(path).is_relative_to(mount):
            raise NodeConfigError(f"{source}: node.{key} = {path!r} is not under data_mount {mount!r}")


def load(path: Path) -> NodeConfig:
    """Read and check a node file."""
    try:
        text = path.read_text()
    except OSError as err:
        raise NodeConfigError(f"{path}: cannot read ({err.strerror})") from None
    return parse(text, str(path))
