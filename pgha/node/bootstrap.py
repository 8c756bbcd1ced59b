"""``pgha node bootstrap``: turn a node file into a configured node, on EC2 and in the lab alike.

Fetch the cluster's passwords and this node's TLS material from Secrets Manager (boto3, so
``AWS_ENDPOINT_URL`` or the file's endpoint points it at the lab's moto server), render etcd,
Patroni and pgBackRest configuration from ``patroni/``, prepare the directories, and hand over
to the service manager (systemd on EC2; in the lab the Lab starts the processes itself).
Passwords land only in a root-only environment file (and, on EC2, a root-only patronictl file).
"""

from __future__ import annotations

import os
import ssl
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

from pgha.node.config import AwsAccess, NodeConfig
from pgha.node.etcd_join import EtcdJoinError, EtcdStart, plan_start
from pgha.node.render import (
    ENABLED_UNITS,
    SECRET_JSON_KEYS,
    ClusterSecrets,
    patroni_environment,
    render_etcd,
    render_patroni,
    render_pgbackrest,
    render_post_bootstrap,
    render_stanza_create,
)
from pgha.secret_store import SecretError, read_secret_json, secrets_client

if TYPE_CHECKING:
    from botocore.client import BaseClient

ENV_FILE = "patroni.env"


class BootstrapError(RuntimeError):
    """The node could not be configured (secret unreadable, bad secret content, service failure)."""


@dataclass(frozen=True)
class NodeTls:
    """The PEM texts a node needs: the cluster CA, its certificate and its private key."""

    ca: str
    cert: str
    key: str


def _secrets_client(aws: AwsAccess) -> BaseClient:
    from botocore.config import Config

    return secrets_client(
        aws.region,
        endpoint_url=aws.endpoint_url or None,
        verify=aws.ca_bundle or None,
        # a node often boots while its NAT or endpoint is still settling: retry before failing
        config=Config(retries={"mode": "standard", "max_attempts": 10}, connect_timeout=5, read_timeout=10),
    )


def fetch_json_secret(aws: AwsAccess, arn: str) -> dict[str, str]:
    """One Secrets Manager secret's JSON object (:func:`pgha.secret_store.read_secret_json`, with the node's
    endpoint, CA bundle and boot-time retries); BootstrapError (naming the ARN, never a value) otherwise."""
    try:
        return read_secret_json(arn, _secrets_client(aws))
    except SecretError as err:
        raise BootstrapError(str(err)) from None


def _pick(secret: dict[str, str], keys: list[str], arn: str) -> list[str]:
    missing = [k for k in keys if not secret.get(k)]
    if missing:
        raise BootstrapError(f"secret {arn} lacks {', '.join(missing)}")
    return [secret[k] for k in keys]


def fetch_credentials(aws: AwsAccess) -> tuple[ClusterSecrets, NodeTls]:
    """The cluster's passwords and this node's TLS material."""
    names = vars(SECRET_JSON_KEYS)
    passwords = _pick(fetch_json_secret(aws, aws.secret_arn), list(names.values()), aws.secret_arn)
    tls = _pick(fetch_json_secret(aws, aws.tls_secret_arn), ["ca", "cert", "key"], aws.tls_secret_arn)
    return ClusterSecrets(**dict(zip(names, passwords, strict=True))), NodeTls(*tls)


class _Writer:
    """Writes files and directories with an owner and mode (owner changes only when running as root).

    The bootstrap runs as root at every Patroni start (EC2's ``ExecStartPre=+``) inside directories the service
    user owns, so it never follows a symbolic link there: a link planted by that user would otherwise hand
    it whatever root chmods or chowns next.
    """

    def __init__(self, service_user: str):
        self.ids: tuple[int, int] | None = None
        if os.geteuid() == 0:
            import pwd

            entry = pwd.getpwnam(service_user)
            self.ids = (entry.pw_uid, entry.pw_gid)

    def directory(self, path: Path, mode: int = 0o700, owned: bool = True) -> None:
        """Create if missing; set the mode and the owner (the service user's, or root's when not ``owned``)."""
        path.mkdir(parents=True, exist_ok=True)
        try:
            descriptor = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
        except OSError as err:
            raise BootstrapError(f"{path} is not a directory (a symbolic link?): {err.strerror}") from None
        try:
            os.fchmod(descriptor, mode)
            if self.ids:
                os.fchown(descriptor, *(self.ids if owned else (0, 0)))
        finally:
            os.close(descriptor)

    def adopt(self, path: Path) -> bool:
        """Give an existing data tree that another uid owns to the service user; True when it did.

        An EC2 node reuses its data volume when its instance is replaced, and the new instance's
        ``postgres`` may have another uid than the one that wrote the files (Debian assigns system uids
        in package install order): PostgreSQL and etcd would then refuse their own data. Symbolic links
        are changed, never followed; a tree the service user already owns is left as it is.
        """
        if not self.ids or not path.is_dir() or path.is_symlink() or path.lstat().st_uid == self.ids[0]:
            return False
        for folder, directories, files in os.walk(path, followlinks=False):
            for name in (*directories, *files):
                os.lchown(os.path.join(folder, name), *self.ids)
        os.lchown(path, *self.ids)
        return True

    def file(self, path: Path, text: str, mode: int = 0o600, owned: bool = True) -> None:
        """Create with the final mode and owner before writing, so a secret is never readable by others."""
        temporary = path.with_name(f".{path.name}.tmp")
        temporary.unlink(missing_ok=True)
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
        with os.fdopen(descriptor, "w") as handle:
            if owned and self.ids:
                os.fchown(descriptor, *self.ids)
            handle.write(text)
        temporary.replace(path)


def etcd_start(config: NodeConfig) -> EtcdStart:
    """How the node's etcd member starts: from its data, forming the cluster, or joining the running one
    (:mod:`pgha.node.etcd_join`, which may change the cluster's membership). Needs the node's TLS files."""
    node = config.node
    context = ssl.create_default_context(cafile=node.ca_file)
    context.load_cert_chain(node.ssl_cert_file, node.ssl_key_file)
    try:
        return plan_start(config.cluster, node, (Path(node.etcd_data_dir) / "member").is_dir(), context)
    except EtcdJoinError as err:
        raise BootstrapError(str(err)) from None


def patronictl_yaml(config: NodeConfig, restapi_password: str) -> str:
    """A root-only patronictl configuration: where etcd is, the CA and the REST API credentials."""
    cluster, node = config.cluster, config.node
    return yaml.safe_dump(
        {
            "scope": cluster.name,
            "namespace": "/pgha/",
            "etcd3": {
                "hosts": [f"{n.address}:{cluster.ports.etcd_client}" for n in cluster.nodes],
                "protocol": "https",
                "cacert": node.ca_file,
                "cert": node.ssl_cert_file,
                "key": node.ssl_key_file,
            },
            "ctl": {
                "cacert": node.ca_file,
                "certfile": node.ssl_cert_file,
                "keyfile": node.ssl_key_file,
                "authentication": {"username": cluster.users.restapi, "password": restapi_password},
            },
        },
        sort_keys=False,
    )


def write_node_files(
    config: NodeConfig, secrets: ClusterSecrets, tls: NodeTls, report: Callable[[str], None] = print
) -> list[Path]:
    """Render and write every file the node's services read; return the paths written."""
    cluster, node = config.cluster, config.node
    writer = _Writer(config.service_user)
    config_dir = Path(node.config_dir)
    # root's: it holds the node file root re-reads before every start; its files stay the service user's
    # (in the lab, where it is also the data directory's parent, the next line gives it to the service user)
    writer.directory(config_dir, 0o755, owned=False)
    for path in (Path(node.ca_file).parent, Path(node.ssl_key_file).parent):
        writer.directory(path, 0o700)
    # data a replaced instance finds on its volume, written under another uid: the service user's now
    for tree in (Path(node.data_dir), Path(node.etcd_data_dir), Path(node.pgbackrest_dir)):
        if writer.adopt(tree):
            report(f"{node.name}: {tree} belonged to another uid (a replaced instance?): now {config.service_user}'s")
    # data directories: Patroni's initdb wants data_dir absent or empty, under a directory it owns
    writer.directory(Path(node.data_dir).parent, 0o700)
    # Patroni writes its pgpass file with a temporary beside it and refuses to start (check_directories)
    # unless the service user can write in that directory
    writer.directory(Path(node.pgpass).parent, 0o700)
    writer.directory(Path(node.etcd_data_dir), 0o700)
    writer.directory(Path(node.socket_dir), 0o755)
    for sub in ("", "spool", "lock", "log"):
        writer.directory(Path(node.pgbackrest_dir) / sub, 0o700)

    files = {
        Path(node.ca_file): (tls.ca, 0o644),
        Path(node.ssl_cert_file): (tls.cert, 0o644),
        Path(node.ssl_key_file): (tls.key, 0o600),
    }
    for path, (text, mode) in files.items():  # first: joining a running etcd cluster needs them
        writer.file(path, text, mode)
    start = etcd_start(config)
    if start.changed:
        report(f"{node.name}: etcd membership: {start.changed}")
    files = {
        config_dir / "etcd.yml": (render_etcd(cluster, node, start.state, start.initial_cluster), 0o600),
        config_dir / "patroni.yml": (render_patroni(cluster, node), 0o600),
        Path(node.pgbackrest_conf): (render_pgbackrest(cluster, node), 0o600),
        config_dir / "post-bootstrap.sh": (render_post_bootstrap(cluster, node), 0o700),
        config_dir / "stanza-create.sh": (render_stanza_create(cluster, node), 0o700),
    }
    for path, (text, mode) in files.items():
        writer.file(path, text, mode)
    written = [Path(node.ca_file), Path(node.ssl_cert_file), Path(node.ssl_key_file), *files]

    environment = patroni_environment(cluster.users, secrets)
    if cluster.backup.key_type == "shared":  # an S3-compatible endpoint with static keys (the lab's moto)
        environment["PGBACKREST_REPO1_S3_KEY"] = os.environ.get("AWS_ACCESS_KEY_ID", "")
        environment["PGBACKREST_REPO1_S3_KEY_SECRET"] = os.environ.get("AWS_SECRET_ACCESS_KEY", "")
    env_file = config_dir / ENV_FILE
    # root only: systemd's EnvironmentFile= (EC2) and the lab's supervisor read it as root
    writer.file(env_file, "".join(f"{k}={v}\n" for k, v in environment.items()), 0o600, owned=False)
    written.append(env_file)
    if config.patronictl_config:
        ctl = Path(config.patronictl_config)
        ctl.parent.mkdir(parents=True, exist_ok=True)
        writer.file(ctl, patronictl_yaml(config, secrets.restapi), 0o600, owned=False)
        written.append(ctl)
    return written


def read_env_file(path: Path) -> dict[str, str]:
    """The KEY=VALUE lines of an environment file the bootstrap wrote."""
    pairs = (line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)
    return {key: value for key, value in pairs}


def hand_over(config: NodeConfig, run: Callable[..., object] = subprocess.run) -> None:
    """Enable and start the node's units (systemd); nothing for an external supervisor (the lab)."""
    if config.service_manager != "systemd":
        return
    try:
        run(["systemctl", "daemon-reload"], check=True)
        run(["systemctl", "enable", "--now", *ENABLED_UNITS], check=True)
    except (OSError, subprocess.CalledProcessError) as err:
        raise BootstrapError(f"systemd could not start the node's units: {err}") from None


def check_data_mount(config: NodeConfig) -> None:
    """BootstrapError unless the node's data volume is mounted where its node file says it must be.

    On EC2 a volume that never attached (a late or failed attachment, an instance type without NVMe) leaves
    /var/lib/pgha a plain directory on the small root disk: bootstrapping there would re-add the node's etcd
    member and have Patroni clone the whole database onto it. Nothing to check without ``data_mount`` (the lab).
    """
    mount = config.data_mount
    if mount and not os.path.ismount(mount):
        raise BootstrapError(
            f"{mount} is not a mount point: {config.node.name}'s data volume is not mounted, and its data "
            "must not go to the root disk; nothing written (see pgha-mount-data in /var/log/cloud-init-output.log)"
        )


def bootstrap(config: NodeConfig, start: bool = True, report: Callable[[str], None] = print) -> list[Path]:
    """Configure one node from its file and (``start``) hand it to its service manager.

    Refuses first, before reading a secret or writing a file, when the node's data volume is not mounted."""
    check_data_mount(config)
    report(f"{config.node.name}: reading secrets ({config.aws.secret_arn}, {config.aws.tls_secret_arn})")
    secrets, tls = fetch_credentials(config.aws)
    written = write_node_files(config, secrets, tls, report)
    report(f"{config.node.name}: wrote {len(written)} files under {config.node.config_dir}")
    if start:
        hand_over(config)
        if config.service_manager == "systemd":
            report(f"{config.node.name}: started {', '.join(ENABLED_UNITS)}")
    return written
