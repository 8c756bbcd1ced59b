"""A node's boot description: the JSON file ``pgha node bootstrap --config FILE`` reads.

The same file format for an EC2 instance (cloud-init writes it; the Pulumi program renders it) and
for each lab node (the lab writes it). It holds addresses, paths and where secrets live, never a
secret. Its format is declared (a strict pydantic model of the dataclasses below): :func:`load` checks
every field's type, refuses unknown keys, and names every problem on one line.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Annotated, Any, Literal, get_args, get_type_hints

from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model
from pydantic_core import ErrorDetails

from pgha.node.render import ClusterSpec, NodeSpec


class NodeConfigError(ValueError):
    """The node file is missing, not JSON, or a field is absent, unknown or of the wrong kind."""


#: The node file holds JSON values as they are: no string for a number, no number for a string.
_STRICT = ConfigDict(strict=True, extra="forbid")


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
    service_manager: Literal["systemd", "external"] = "systemd"
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
        return {
            "data_dir": node.data_dir,
            "etcd_data_dir": node.etcd_data_dir,
            "pgbackrest_dir": node.pgbackrest_dir,
            "pgpass": node.pgpass,
        }

    def to_json(self) -> str:
        """The node file's text."""
        cluster = asdict(self.cluster)
        cluster.pop("nodes")
        return (
            json.dumps(
                {
                    "cluster": {
                        **cluster,
                        "preload_libraries": list(self.cluster.preload_libraries),
                        "member_cidrs": list(self.cluster.member_cidrs),
                        "client_cidrs": list(self.cluster.client_cidrs),
                    },
                    "peers": [{"name": n.name, "address": n.address} for n in self.cluster.nodes],
                    "node": asdict(self.node),
                    "aws": asdict(self.aws),
                    "service_manager": self.service_manager,
                    "service_user": self.service_user,
                    "patronictl_config": self.patronictl_config,
                    "data_mount": self.data_mount,
                },
                indent=2,
            )
            + "\n"
        )


class _Peer(BaseModel):
    """A member as the node file lists it; the others' paths are this node's (every member has one layout)."""

    model_config = _STRICT
    name: str
    address: str


def _file_model(name: str, cls: type, *, drop: tuple[str, ...] = (), **kinds: Any) -> type[BaseModel]:
    """A strict model of dataclass ``cls``'s fields as the node file spells them: its types and defaults,
    without the ``drop``ped fields, with ``kinds`` replacing (or adding) the type of a field (type or
    (type, default))."""
    hints = get_type_hints(cls)
    fields: dict[str, Any] = {}
    for field in dataclasses.fields(cls):
        if field.name in drop:
            continue
        if field.default is not dataclasses.MISSING:
            default: Any = field.default
        elif field.default_factory is not dataclasses.MISSING:
            default = Field(default_factory=field.default_factory)
        else:
            default = ...
        fields[field.name] = (hints[field.name], default)
    for key, kind in kinds.items():
        fields[key] = kind if isinstance(kind, tuple) else (kind, fields.get(key, (None, ...))[1])
    return create_model(name, __config__=_STRICT, **fields)


#: The ``cluster`` object: a ClusterSpec whose members come from ``peers`` and ``node``.
_ClusterFile = _file_model("ClusterFile", ClusterSpec, drop=("nodes",))
#: The whole file: NodeConfig's fields, with the cluster as above and the members' names and addresses.
_NodeFile = _file_model(
    "NodeFile", NodeConfig, cluster=_ClusterFile, peers=(Annotated[list[_Peer], Field(min_length=1)], ...)
)


def _fields_of(kind: Any) -> dict[str, Any]:
    """The field names and types of a model or dataclass in the node file (empty for anything else)."""
    if isinstance(kind, type) and issubclass(kind, BaseModel):
        return {name: field.annotation for name, field in kind.model_fields.items()}
    return get_type_hints(kind) if dataclasses.is_dataclass(kind) else {}


def _known_keys(loc: tuple[int | str, ...]) -> list[str]:
    """The keys the object holding ``loc`` may have."""
    kind: Any = _NodeFile
    for part in loc[:-1]:  # a list's items (peers) are the type it holds
        kind = get_args(kind)[0] if isinstance(part, int) else _fields_of(kind).get(part)
    return list(_fields_of(kind))


def _problem(error: ErrorDetails) -> str:
    """One pydantic error as a node file problem: the key, the value and what is allowed."""
    loc, kind = error["loc"], error["type"]
    where = ".".join(map(str, loc))
    if kind == "json_invalid":
        return f"not JSON ({error.get('ctx', {}).get('error')})"
    if not loc:
        return "must be a JSON object"
    if kind == "missing":
        return f"missing {where!r}"
    if kind in ("extra_forbidden", "unexpected_keyword_argument"):
        return f"{where} is not a node file setting (known: {', '.join(_known_keys(loc))})"
    return f"{where} = {error['input']!r}: {error['msg'].replace('Input should be', 'must be')}"


def parse(text: str, source: str = "node config") -> NodeConfig:
    """A NodeConfig from the file's text.

    The file is checked against its declared model (types, unknown keys, missing keys), then against the
    rules between its fields; NodeConfigError names every problem found, on one line.
    """
    try:
        data: Any = _NodeFile.model_validate_json(text)  # a model built at import time: its fields are not static
    except ValidationError as err:
        raise NodeConfigError(f"{source}: " + "; ".join(_problem(e) for e in err.errors())) from None
    node: NodeSpec = data.node
    if node.name not in {p.name for p in data.peers}:
        raise NodeConfigError(f"{source}: node {node.name!r} is not among the peers")
    # every member uses the same layout; only names and addresses differ
    members = tuple(node if p.name == node.name else replace(node, name=p.name, address=p.address) for p in data.peers)
    cluster: dict[str, Any] = {
        key: tuple(value) if isinstance(value, list) else value for key, value in dict(data.cluster).items()
    }
    spec = ClusterSpec(**cluster, nodes=members)
    problems = spec.timing.problems()
    if problems:
        raise NodeConfigError(f"{source}: cluster.timing: {'; '.join(problems)}")
    config = NodeConfig(
        cluster=spec,
        node=node,
        aws=data.aws,
        service_manager=data.service_manager,
        service_user=data.service_user,
        patronictl_config=data.patronictl_config,
        data_mount=data.data_mount,
    )
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
