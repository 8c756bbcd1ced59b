"""The local HA lab: three etcd + Patroni + PostgreSQL nodes on 127.0.1.1-3, from the production templates.

Each node gets its own loopback address and the production ports, exactly like an EC2 node, and
boots the way an EC2 node does: ``pgha node bootstrap`` reads its secrets from Secrets Manager and
renders its configs; Secrets Manager and S3 (pgBackRest's repository) are served by moto's server
mode on loopback, over TLS with the lab's own CA. State lives under one directory (``.lab/`` by
default); every process is started here, recorded by pid, and stopped by pid. As root, every
process runs as the ``postgres`` user.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psutil

from pgha.lab.status import LabDsns, LabStatus
from pgha.local import (
    SERVICE_USER,
    PrerequisiteError,
    free_port,
    has_extension,
    port_in_use,
    postgres_bindir,
    running_as_root,
    service_user_can_run,
    service_user_ids,
    service_user_python,
)
from pgha.node.bootstrap import ENV_FILE, read_env_file
from pgha.node.config import AwsAccess, NodeConfig
from pgha.node.dynamic_config import apply_dynamic_config, changed_keys
from pgha.node.health import health_problems
from pgha.node.patroni_api import Member, PatroniApi
from pgha.node.render import (
    SECRET_JSON_KEYS,
    BackupRepo,
    ClusterSecrets,
    ClusterSpec,
    NodeSpec,
    PatroniTiming,
    Ports,
    Users,
    dynamic_config,
)
from pgha.node.rest import NoMemberAnswered, call_json, first_answer
from pgha.wait import WaitTimeout, wait_until

if TYPE_CHECKING:
    from pgha.connect import ConnectionSettings

PROJECT_DIR = Path(__file__).resolve().parents[2]
#: Where the lab lives when the project directory is out of the service user's reach (e.g. under /root).
FALLBACK_LAB_DIR = Path("/var/tmp/pgha-lab")
CLUSTER_NAME = "pgha-lab"
NODE_ADDRESSES = ("127.0.1.1", "127.0.1.2", "127.0.1.3")
#: Short timing so failover is quick on one machine; still within Patroni's rules.
LAB_TIMING = PatroniTiming(ttl=20, loop_wait=2, retry_timeout=5)
DATABASE = "app"
#: moto's fixed test credentials (moto accepts any): not secrets.
AWS_REGION = "us-east-1"
_AWS_ENV = {"AWS_ACCESS_KEY_ID": "pgha-lab", "AWS_SECRET_ACCESS_KEY": "pgha-lab-moto", "AWS_DEFAULT_REGION": AWS_REGION}
BACKUP_BUCKET = "pgha-lab-backups"


_BASE_ENV = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}


def lab_addresses() -> tuple[str, ...]:
    """$PGHA_LAB_ADDRESSES (three comma-separated 127.x.y.z addresses), else 127.0.1.1-3.

    A second lab (a benchmark beside the one ``make up`` keeps, a test run) needs addresses of its own:
    every node uses the production ports.
    """
    raw = os.environ.get("PGHA_LAB_ADDRESSES")
    if not raw:
        return NODE_ADDRESSES
    addresses = tuple(a.strip() for a in raw.split(","))
    if (
        len(addresses) != 3
        or len(set(addresses)) != 3
        or not all(a.startswith("127.") and a.count(".") == 3 and a not in ("127.0.0.1",) for a in addresses)
    ):
        raise PrerequisiteError(
            f"PGHA_LAB_ADDRESSES = {raw!r}: expected three distinct loopback addresses other than 127.0.0.1, "
            "e.g. 127.0.2.1,127.0.2.2,127.0.2.3"
        )
    return addresses


def default_lab_dir() -> Path:
    """$PGHA_LAB_DIR, else ``.lab/`` in the project unless the service user cannot reach it (then /var/tmp)."""
    if os.environ.get("PGHA_LAB_DIR"):
        return Path(os.environ["PGHA_LAB_DIR"])
    if service_user_can_run(["test", "-x", str(PROJECT_DIR)]):
        return PROJECT_DIR / ".lab"
    return FALLBACK_LAB_DIR


def _as_service_user() -> dict[str, Any]:
    """subprocess arguments that run the child as the postgres user when we are root."""
    if not running_as_root():
        return {}
    uid, gid = service_user_ids()
    return {"user": uid, "group": gid, "extra_groups": []}


@contextlib.contextmanager
def removed_on_exit(lab: Lab, keep: bool = False) -> Iterator[Lab]:
    """Run a throwaway lab's work, then stop and remove the lab (unless ``keep``): on success, on an error and
    on SIGTERM (a CI timeout, ``kill``), which raises SystemExit meanwhile. Killed without this, a benchmark
    left its lab on the addresses the next run needs ("ports in use"). SIGTERM is ignored while the lab is
    being removed, so a second one cannot cut the removal short."""
    previous = signal.signal(signal.SIGTERM, lambda _signum, _frame: sys.exit(128 + signal.SIGTERM))
    try:
        yield lab
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        try:
            if not keep:
                lab.down(purge=True)
        finally:
            signal.signal(signal.SIGTERM, previous)


class LabError(RuntimeError):
    """The lab could not do what was asked; the message says why and what to do."""


def _only_child(proc: subprocess.Popen[bytes] | subprocess.Popen[str], log: Path, timeout: float = 10.0) -> int:
    """The pid of the one process tini (``proc``) starts, once it has forked it."""

    def tini_running() -> None:
        if proc.poll() is not None:
            raise LabError(f"tini exited with {proc.returncode} before starting its command; see {log}")

    try:
        return wait_until(
            "tini's command",
            lambda: psutil.Process(proc.pid).children(),
            timeout,
            0.01,
            ignore=(psutil.Error,),
            check=tini_running,
        )[0].pid
    except WaitTimeout:
        raise LabError(f"tini started nothing within {timeout:.0f} s; see {log}") from None


class Lab:
    """A 3-node lab rooted at ``root``."""

    def __init__(
        self, root: Path | None = None, report: Callable[[str], None] = print, addresses: tuple[str, ...] | None = None
    ):
        self.root = root or default_lab_dir()
        self._timing: PatroniTiming | None = None
        self.addresses = addresses or lab_addresses()
        self.report = report
        self.ports = Ports()
        self.users = Users()
        self._seen: dict[str, str] = {}

    # --- layout -------------------------------------------------------------------------

    def node_dir(self, name: str) -> Path:
        """The directory holding one node's configs, data, logs and pid files."""
        return self.root / name

    def nodes(self, bindir: Path | None = None) -> list[NodeSpec]:
        """The three members, with their files under the lab directory."""
        bin_dir = str(bindir or postgres_bindir())
        specs = []
        for index, address in enumerate(self.addresses, 1):
            base = self.node_dir(f"node{index}")
            specs.append(
                NodeSpec(
                    name=f"node{index}",
                    address=address,
                    data_dir=str(base / "pgdata"),
                    bin_dir=bin_dir,
                    etcd_data_dir=str(base / "etcd"),
                    socket_dir=str(base / "run"),
                    pgpass=str(base / "pgpass"),
                    ssl_cert_file=str(base / "tls" / "node.crt"),
                    ssl_key_file=str(base / "tls" / "node.key"),
                    ca_file=str(base / "tls" / "ca.crt"),
                    config_dir=str(base),
                    pgbackrest_dir=str(base / "pgbackrest"),
                )
            )
        return specs

    def cluster(self, bindir: Path | None = None) -> ClusterSpec:
        """The lab cluster: same template inputs as EC2 but loopback addresses and local paths."""
        preload = ["pg_stat_statements"]
        if has_extension(bindir or postgres_bindir(), "pg_cron"):
            preload.append("pg_cron")
        return ClusterSpec(
            name=CLUSTER_NAME,
            nodes=self.nodes(bindir),
            # loopback connections leave from 127.0.0.1 whatever address they go to
            member_cidrs=["127.0.0.0/8"],
            client_cidrs=["127.0.0.0/8"],
            timing=self.timing,
            preload_libraries=tuple(preload),
            database=DATABASE,
            # WAL and backups go to an S3 bucket on the lab's moto server, as on EC2 to the real one
            backup=BackupRepo(
                bucket=BACKUP_BUCKET,
                region=AWS_REGION,
                endpoint="127.0.0.1",
                port=self._moto_port() or 443,
                ca_file=str(self.aws_dir / "ca.crt"),
                uri_style="path",
                key_type="shared",
                path=f"/{CLUSTER_NAME}",
                retention_full_days=2,
            ),
        )

    # --- timing (ttl, loop_wait, retry_timeout) ----------------------------------------------

    @property
    def timing_file(self) -> Path:
        """Where the lab remembers its Patroni timing, so restarts and drills use the one it was started with."""
        return self.root / "timing.json"

    @property
    def timing(self) -> PatroniTiming:
        """The lab's Patroni timing: the one remembered in the lab directory, else LAB_TIMING."""
        if self._timing is None:
            try:
                self._timing = PatroniTiming(**json.loads(self.timing_file.read_text())).validate()
            except (OSError, ValueError, TypeError):
                self._timing = LAB_TIMING
        return self._timing

    def _remember_timing(self, timing: PatroniTiming) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.timing_file.write_text(json.dumps(asdict(timing)) + "\n")
        self._timing = timing

    def patroni(self, hosts: Sequence[str] | None = None, auth: bool = False) -> PatroniApi:
        """The members' Patroni REST APIs (``hosts``, by default every member's) over the lab's TLS; with
        ``auth``, the REST API password for unsafe calls (switchover, PATCH /config)."""
        return PatroniApi(
            [f"https://{host}:{self.ports.restapi}" for host in hosts or self.addresses],
            context=self.tls_context(),
            auth=(self.users.restapi, self.secrets().restapi) if auth else None,
        )

    def rest(self, path: str, address: str | None = None) -> Any:
        """GET ``path`` from Patroni's REST API on ``address``, else on the first member that answers."""
        try:
            return self.patroni([address] if address else None).get(path)
        except NoMemberAnswered:
            raise LabError(f"no member answers GET {path}: is the lab running? (`pgha lab up`)") from None

    def dynamic_config(self) -> dict[str, Any]:
        """Patroni's dynamic configuration as stored in etcd (GET /config)."""
        return self.rest("/config")

    def set_timing(self, timing: PatroniTiming, settle: bool = True) -> bool:
        """Make ``timing`` the lab's; on a running lab apply it through Patroni's dynamic config (PATCH /config).

        ttl, loop_wait and retry_timeout are dynamic settings kept in etcd: every member picks them up on
        its next HA loop, no restart needed. With ``settle``, wait two loops (old and new loop_wait) so the
        leader has renewed its key under the new ttl before returning. Returns True when the running
        cluster's dynamic config was changed. Raises TimingError for timing Patroni would adjust.
        """
        timing.validate()
        old = self.timing
        changed = bool(self.members()) and bool(self.reconcile_dynamic_config(asdict(timing)))
        if changed and settle:
            time.sleep(old.loop_wait + timing.loop_wait + 1)
        self._remember_timing(timing)
        return changed

    def reconcile_dynamic_config(self, wanted: dict[str, Any] | None = None) -> dict[str, Any]:
        """Bring the running cluster's dynamic config (in etcd) to ``wanted``, by default to everything the
        template declares under ``bootstrap.dcs`` (which Patroni reads only when it creates a cluster).
        Returns what was changed."""
        return apply_dynamic_config(
            [f"https://{address}:{self.ports.restapi}" for address in self.addresses],
            dynamic_config(self.cluster()) if wanted is None else wanted,
            auth=(self.users.restapi, self.secrets().restapi),
            context=self.tls_context(),
        )

    # --- secrets --------------------------------------------------------------------------

    @property
    def secrets_file(self) -> Path:
        """Where the lab's generated passwords live (readable by root only)."""
        return self.root / "secrets.json"

    def secrets(self) -> ClusterSecrets:
        """The lab's passwords; LabError when this lab directory has none (no lab was ever started here).

        Read only: only :meth:`up` generates them. A mistyped $PGHA_LAB_DIR made ``lab password`` create a
        fresh secrets.json and print a password no lab uses.
        """
        try:
            return ClusterSecrets(**json.loads(self.secrets_file.read_text()))
        except FileNotFoundError:
            raise LabError(f"no lab in {self.root}: run make up / pgha lab up first") from None

    def _generate_secrets(self) -> None:
        """Generate the lab's passwords (root-only file) unless it has them: once, on the first `lab up`."""
        if self.secrets_file.exists():
            return
        self.root.mkdir(parents=True, exist_ok=True)
        generated = {key: secrets.token_urlsafe(24) for key in ("superuser", "replication", "rewind", "restapi")}
        self.secrets_file.touch(mode=0o600)
        self.secrets_file.write_text(json.dumps(generated))

    # --- processes ------------------------------------------------------------------------

    def _pid(self, node: str, process: str) -> int | None:
        path = self.node_dir(node) / f"{process}.pid"
        if not path.exists():
            return None
        pid = int(path.read_text())
        try:
            proc = psutil.Process(pid)
            alive = proc.status() != psutil.STATUS_ZOMBIE and str(self.root) in " ".join(proc.cmdline())
        except psutil.Error:
            alive = False
        return pid if alive else None

    def _start(
        self,
        node: str,
        process: str,
        command: list[str],
        env: dict[str, str] | None = None,
        service_user: bool = True,
        reaper: bool = False,
    ) -> None:
        """Start ``command`` detached and record its pid in ``<process>.pid``.

        ``reaper`` runs it under tini as a child subreaper, for Patroni: it starts the postmaster the way
        pg_ctl does and leaves it to init, and a postmaster that exits is a zombie until its new parent
        reaps it. systemd (PID 1 on EC2) does that at once; this VM's PID 1 only every ~1.8 s, and Patroni
        waits on the zombie (a graceful demote, a crashed postmaster), which made the lab slower than a node.
        The pid recorded is the command's own, so signals (kill, freeze, down) reach it as without tini.
        """
        directory = self.node_dir(node)
        if reaper:
            command = [shutil.which("tini") or "tini", "-s", "--", *command]
        log = open(directory / f"{process}.log", "ab")  # noqa: SIM115 - handed to the child
        proc = subprocess.Popen(
            command,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=directory,
            env={**_BASE_ENV, "HOME": str(directory), **(env or {})},
            start_new_session=True,
            **(_as_service_user() if service_user else {}),
        )
        log.close()
        (directory / f"{process}.pid").write_text(
            str(_only_child(proc, directory / f"{process}.log") if reaper else proc.pid)
        )

    # --- TLS and AWS (moto) -------------------------------------------------------------------

    @property
    def aws_dir(self) -> Path:
        """The moto server's directory: its certificate, port and pid (the CA certificate is public)."""
        return self.root / "aws"

    @property
    def admin_dir(self) -> Path:
        """Root-only: the lab's own client certificate for etcd and Patroni's REST API."""
        return self.root / "admin"

    @property
    def tls_file(self) -> Path:
        """Root-only: the lab CA and every certificate and key (seeded into moto on each start)."""
        return self.root / "tls.json"

    def tls_material(self) -> dict[str, dict[str, str]]:
        """The lab's CA and certificates (name -> cert, key), made on first use and then kept."""
        from pgha.lab.tls import Issued, issue, new_ca

        if self.tls_file.exists():
            stored = json.loads(self.tls_file.read_text())
            if stored.get("addresses") == list(self.addresses):
                return stored["issued"]
        ca = new_ca(CLUSTER_NAME)
        issued = {
            "ca": ca,
            "client": issue(ca, "pgha-lab-admin"),
            "moto": issue(ca, "moto", ("127.0.0.1",), ("localhost",)),
        }
        for index, address in enumerate(self.addresses, 1):
            # loopback connections leave from 127.0.0.1 whatever address they go to, and etcd checks a
            # peer's certificate against the address it connects from
            issued[f"node{index}"] = issue(ca, f"node{index}", (address, "127.0.0.1"))
        material = {
            name: {"cert": item.cert, "key": item.key} for name, item in issued.items() if isinstance(item, Issued)
        }
        self.root.mkdir(parents=True, exist_ok=True)
        self.tls_file.touch(mode=0o600)
        self.tls_file.write_text(json.dumps({"addresses": list(self.addresses), "issued": material}))
        return material

    def _write_tls_files(self) -> None:
        """The moto server's certificate (service user) and the lab's client certificate (root only)."""
        material = self.tls_material()
        uid_gid = service_user_ids() if running_as_root() else None
        for directory, mode in ((self.aws_dir, 0o755), (self.admin_dir, 0o700)):
            directory.mkdir(parents=True, exist_ok=True)
            directory.chmod(mode)
        files = {
            self.aws_dir / "ca.crt": (material["ca"]["cert"], 0o644, False),
            self.aws_dir / "moto.crt": (material["moto"]["cert"], 0o644, True),
            self.aws_dir / "moto.key": (material["moto"]["key"], 0o600, True),
            self.admin_dir / "ca.crt": (material["ca"]["cert"], 0o644, False),
            self.admin_dir / "client.crt": (material["client"]["cert"], 0o644, False),
            self.admin_dir / "client.key": (material["client"]["key"], 0o600, False),
        }
        for path, (text, mode, service_owned) in files.items():
            path.touch(mode=mode)
            path.chmod(mode)
            path.write_text(text)
            if service_owned and uid_gid:
                os.chown(path, *uid_gid)

    def tls_context(self) -> ssl.SSLContext:
        """Verifies members against the lab CA and presents the lab's client certificate (etcd requires one)."""
        context = ssl.create_default_context(cafile=str(self.admin_dir / "ca.crt"))
        context.load_cert_chain(str(self.admin_dir / "client.crt"), str(self.admin_dir / "client.key"))
        return context

    def _moto_port(self) -> int | None:
        path = self.aws_dir / "port"
        return int(path.read_text()) if path.exists() else None

    @property
    def aws_endpoint(self) -> str:
        """The moto server's URL (Secrets Manager and S3)."""
        return f"https://127.0.0.1:{self._moto_port()}"

    def aws_environment(self) -> dict[str, str]:
        """What a boto3 client or a bootstrap needs to talk to the lab's moto server."""
        return {**_AWS_ENV, "AWS_ENDPOINT_URL": self.aws_endpoint, "AWS_CA_BUNDLE": str(self.aws_dir / "ca.crt")}

    def _start_moto(self, timeout: float) -> None:
        """Start moto's server (Secrets Manager + S3 over TLS) on a free 127.0.0.1 port, recorded by pid."""
        port = free_port("127.0.0.1")
        (self.aws_dir / "port").write_text(str(port))
        self.report(f"starting moto (Secrets Manager, S3) on 127.0.0.1:{port}")
        # as the invoking user (it reads this project's code); it stands in for AWS, not for a node
        self._start(
            "aws",
            "moto",
            [
                sys.executable,
                "-m",
                "pgha.lab.aws_server",
                "127.0.0.1",
                str(port),
                str(self.aws_dir / "moto.crt"),
                str(self.aws_dir / "moto.key"),
            ],
            {"PYTHONPATH": str(PROJECT_DIR)},
            service_user=False,
        )
        self._wait("moto", self._moto_ready, timeout, ())
        if not self._pid("aws", "moto"):
            raise LabError(f"moto exited; see {self.aws_dir}/moto.log")

    def _moto_ready(self) -> bool:
        context = ssl.create_default_context(cafile=str(self.aws_dir / "ca.crt"))
        try:
            urllib.request.urlopen(f"{self.aws_endpoint}/moto-api/", timeout=2, context=context).close()
        except (OSError, ValueError):
            return self._pid("aws", "moto") is None  # stop waiting; the caller reports the exit
        return True

    def _boto3(self, service: str) -> Any:
        import boto3

        return boto3.client(
            service,
            region_name=AWS_REGION,
            endpoint_url=self.aws_endpoint,
            verify=str(self.aws_dir / "ca.crt"),
            aws_access_key_id=_AWS_ENV["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=_AWS_ENV["AWS_SECRET_ACCESS_KEY"],
        )

    def _seed_aws(self) -> dict[str, str]:
        """Put the lab's secrets and bucket into moto (in-memory: done on every start); return name -> ARN."""
        client = self._boto3("secretsmanager")
        material = self.tls_material()
        values = {
            f"{CLUSTER_NAME}/credentials": json.dumps(
                {
                    "username": self.users.superuser,
                    **{getattr(SECRET_JSON_KEYS, field): value for field, value in asdict(self.secrets()).items()},
                }
            )
        }
        for index in range(1, len(self.addresses) + 1):
            values[f"{CLUSTER_NAME}/node{index}/tls"] = json.dumps(
                {
                    "ca": material["ca"]["cert"],
                    "cert": material[f"node{index}"]["cert"],
                    "key": material[f"node{index}"]["key"],
                }
            )
        arns = {}
        for name, value in values.items():
            try:
                arns[name] = client.create_secret(Name=name, SecretString=value)["ARN"]
            except client.exceptions.ResourceExistsException:
                arns[name] = client.put_secret_value(SecretId=name, SecretString=value)["ARN"]
        s3 = self._boto3("s3")
        with contextlib.suppress(s3.exceptions.BucketAlreadyOwnedByYou):
            s3.create_bucket(Bucket=BACKUP_BUCKET)
        return arns

    # --- bootstrap --------------------------------------------------------------------------

    def node_config(self, cluster: ClusterSpec, node: NodeSpec, arns: dict[str, str]) -> NodeConfig:
        """The node file the lab hands to `pgha node bootstrap`, as cloud-init does on EC2."""
        return NodeConfig(
            cluster=cluster,
            node=node,
            service_manager="external",
            service_user=SERVICE_USER,
            aws=AwsAccess(
                region=AWS_REGION,
                secret_arn=arns[f"{CLUSTER_NAME}/credentials"],
                tls_secret_arn=arns[f"{CLUSTER_NAME}/{node.name}/tls"],
                endpoint_url=self.aws_endpoint,
                ca_bundle=str(self.aws_dir / "ca.crt"),
            ),
        )

    def _bootstrap(self, cluster: ClusterSpec, arns: dict[str, str]) -> None:
        """Run the EC2 node bootstrap (`python -m pgha node bootstrap --config FILE`) for every node."""
        for node in cluster.nodes:
            directory = self.node_dir(node.name)
            directory.mkdir(parents=True, exist_ok=True)
            path = directory / "node.json"
            path.write_text(self.node_config(cluster, node, arns).to_json())
            result = subprocess.run(
                [sys.executable, "-m", "pgha", "node", "bootstrap", "--config", str(path)],
                cwd=PROJECT_DIR,
                capture_output=True,
                text=True,
                check=False,
                timeout=120,
                env={**os.environ, **self.aws_environment()},
            )
            if result.returncode != 0:
                raise LabError(f"bootstrap of {node.name} failed: {(result.stderr or result.stdout).strip()}")
            self.report(f"bootstrapped {node.name} (secrets from Secrets Manager on moto, configs from patroni/)")
            for line in result.stdout.splitlines():
                if "etcd membership" in line:  # a node that lost its etcd data joined again
                    self.report(line)

    def _node_environment(self, node: str) -> dict[str, str]:
        """The environment the bootstrap wrote for a node's services (passwords; root-only file)."""
        return read_env_file(self.node_dir(node) / ENV_FILE)

    def patroni_python(self) -> str:
        """A Python with Patroni the service user can run: this venv, else one in ``runtime-venv`` of the lab."""
        return service_user_python(self.root / "runtime-venv", self.report)

    # --- checks ---------------------------------------------------------------------------

    def check_prerequisites(self) -> Path:
        """Fail early, naming what to install or free. Returns the PostgreSQL bin dir."""
        bindir = postgres_bindir()
        if not shutil.which("etcd"):
            raise PrerequisiteError("etcd not found: install it, e.g. `apt-get install etcd-server`")
        if not shutil.which("pgbackrest"):
            raise PrerequisiteError("pgbackrest not found (WAL archive and backups): apt-get install pgbackrest")
        if not shutil.which("tini"):
            raise PrerequisiteError(
                "tini not found (reaps the postmaster Patroni leaves to init): apt-get install tini"
            )
        try:
            import cryptography  # noqa: F401 - the lab CA
            import flask  # noqa: F401 - moto's server mode
            import moto  # noqa: F401 - Secrets Manager and S3 on loopback
            import patroni  # noqa: F401
            import psycopg  # noqa: F401
        except ImportError as err:
            raise PrerequisiteError(
                f"{err.name} is not installed: run `make up` (pip install -r requirements-lab.txt)"
            ) from None
        if not service_user_can_run(["test", "-x", str(self.root.parent)]):
            raise PrerequisiteError(f"the {SERVICE_USER} user cannot reach {self.root.parent}: choose another lab dir")
        busy = [
            f"{address}:{port}"
            for address in self.addresses
            for port in (self.ports.postgres, self.ports.restapi, self.ports.etcd_client, self.ports.etcd_peer)
            if port_in_use(address, port)
        ]
        if busy:
            raise PrerequisiteError(
                "ports in use: " + ", ".join(busy) + " - stop what listens there (a PostgreSQL bound to 0.0.0.0?) "
                "or run `pgha lab down`"
            )
        return bindir

    # --- lifecycle --------------------------------------------------------------------------

    def running(self) -> dict[str, dict[str, int | None]]:
        """node -> process -> pid (None when not running)."""
        return {
            f"node{i}": {process: self._pid(f"node{i}", process) for process in ("etcd", "patroni")}
            for i in range(1, len(self.addresses) + 1)
        }

    def up(self, timeout: float = 120.0, timing: PatroniTiming | None = None) -> LabStatus:
        """Start whatever is not running, wait for a healthy cluster, apply the schema; return status.

        ``timing`` (validated first: nothing starts on timing Patroni would adjust) becomes the lab's and is
        remembered in the lab directory; without it the remembered timing (else LAB_TIMING) is used. On a
        lab that already runs, a new timing, like every other ``bootstrap.dcs`` setting of the template, is applied
        through Patroni's dynamic config (:meth:`reconcile_dynamic_config`).
        """
        if timing is not None:
            timing.validate()
        self._refuse_while_drilling()
        state = self.running()
        moto = self._pid("aws", "moto")
        if timing is not None:
            self._remember_timing(timing)
        if moto and all(pid for node in state.values() for pid in node.values()):
            # every process runs, but that is no cluster: wait for one as a fresh start does (a leaderless
            # lab used to be reported "already running" with an empty table, exit 0)
            self.report("lab already running")
            self._wait_for_cluster(timeout)
            self._reconcile()
            return self.status()
        started_any = any(pid for node in state.values() for pid in node.values())
        bindir = postgres_bindir() if started_any else self.check_prerequisites()
        self.root.mkdir(parents=True, exist_ok=True)
        self.root.chmod(0o755)
        self._write_tls_files()
        self._generate_secrets()
        python = self.patroni_python()
        if not moto:
            self._start_moto(timeout)
        arns = self._seed_aws()
        cluster = self.cluster(bindir)
        self._bootstrap(cluster, arns)
        for node in cluster.nodes:
            if not state[node.name]["etcd"]:
                self.report(f"starting etcd on {node.address}")
                self._start(
                    node.name,
                    "etcd",
                    [shutil.which("etcd") or "etcd", "--config-file", str(self.node_dir(node.name) / "etcd.yml")],
                )
        self._wait("etcd cluster healthy", self._etcd_healthy, timeout, ("etcd",))
        self._validate(cluster, python)
        for node in cluster.nodes:
            if not state[node.name]["patroni"]:
                self.report(f"starting Patroni + PostgreSQL on {node.address}")
                self._start(
                    node.name,
                    "patroni",
                    [python, "-m", "patroni", str(self.node_dir(node.name) / "patroni.yml")],
                    self._node_environment(node.name),
                    reaper=True,
                )
        self._wait_for_cluster(timeout)
        # post_bootstrap creates the stanza on a new cluster; a restarted moto starts with an empty bucket
        self._stanza_create(self.leader().name)
        self._apply_schema()
        self._reconcile()
        return self.status()

    def _reconcile(self) -> None:
        """Apply what the template declares (timing included) to the running cluster's dynamic config."""
        changed = self.reconcile_dynamic_config()
        if changed:
            self.report("applied to Patroni's dynamic config (PATCH /config): " + ", ".join(changed_keys(changed)))

    def _validate(self, cluster: ClusterSpec, python: str) -> None:
        """Check every rendered patroni.yml with ``patroni --validate-config`` (needs etcd up)."""
        for node in cluster.nodes:
            path = self.node_dir(node.name) / "patroni.yml"
            result = subprocess.run(
                [python, "-m", "patroni", "--validate-config", "--ignore-listen-port", str(path)],
                capture_output=True,
                text=True,
                check=False,
                env={**_BASE_ENV, **self._node_environment(node.name)},
                **_as_service_user(),
            )
            if result.returncode != 0:
                raise LabError(f"{path} fails Patroni's validator: {result.stdout}{result.stderr}".strip())

    def _wait_for_cluster(self, timeout: float) -> None:
        """Wait for a healthy cluster (a running leader, a synchronous standby and a streaming replica);
        LabError naming what there is instead when none forms within ``timeout``."""
        self._wait(
            "a leader, a synchronous standby and a replica",
            self._cluster_formed,
            timeout,
            ("etcd", "patroni"),
            self._cluster_state,
        )

    def _cluster_state(self) -> str:
        """What Patroni reports now, for an error: each member's role and state, or that none answers."""
        members = self.members()
        if not members:
            return "no member answers Patroni's REST API"
        return "members: " + ", ".join(f"{m.name} {m.role}, {m.state}" for m in members)

    def _wait(
        self,
        what: str,
        ready: Callable[[], bool],
        timeout: float,
        processes: tuple[str, ...],
        state: Callable[[], str] | None = None,
    ) -> None:
        """:func:`pgha.wait.wait_until`, stopping early when one of ``processes`` exited; LabError pointing at
        the logs on a timeout."""
        self.report(f"waiting for {what}...")
        try:
            wait_until(what, ready, timeout, check=lambda: self._check_alive(processes), state=state)
        except WaitTimeout as err:
            raise LabError(f"{err}; logs are in {self.root}/node*/") from None

    def _check_alive(self, processes: tuple[str, ...]) -> None:
        dead = [
            f"{node}/{proc}"
            for node, procs in self.running().items()
            for proc, pid in procs.items()
            if proc in processes and not pid
        ]
        if dead:
            logs = ", ".join(f"{self.root}/{d}.log" for d in dead)
            raise LabError(f"{', '.join(dead)} exited; see {logs}")

    def _etcd_healthy(self) -> bool:
        try:
            context = self.tls_context()
            return all(
                str(call_json(f"https://{a}:{self.ports.etcd_client}/health", context=context).get("health")) == "true"
                for a in self.addresses
            )
        except (OSError, ValueError, AttributeError):
            return False

    def members(self) -> list[Member]:
        """The members as Patroni reports them (empty when no node answers, or no lab is here yet)."""
        try:
            return self.patroni().members()
        except (OSError, NoMemberAnswered):
            return []

    def _cluster_formed(self) -> bool:
        """The cluster is healthy by the one rule (:func:`pgha.node.health.health_problems`), and every
        node's own Patroni says so. etcd keeps a killed member's last report until its key expires, so
        without asking the node a restarted one counted as streaming before its new Patroni reported."""
        members = self.members()
        for member in members:  # progress: say each member's role and state as they change
            now = f"{member.role}, {member.state}"
            if self._seen.get(member.name) != now:
                self.report(f"  {member.name}: {now}")
                self._seen[member.name] = now
        if health_problems(members, len(self.addresses)):
            return False
        try:
            return all(
                self.rest("/patroni", member.host).get("state") in ("running", "streaming") for member in members
            )
        except (LabError, AttributeError):
            return False

    def leader(self) -> Member:
        """The current leader; LabError when there is none."""
        for member in self.members():
            if member.role == "leader":
                return member
        raise LabError("no leader right now")

    def _apply_schema(self) -> None:
        from pgha.connect import connect
        from pgha.schema.migrate import migrate

        admin = connect(self.settings("postgres"), writable=True)
        if not admin.run("SELECT 1 FROM pg_database WHERE datname = :d", d=DATABASE):
            admin.run(f'CREATE DATABASE "{DATABASE}"')
        admin.close()
        conn = connect(self.settings(DATABASE), writable=True)
        try:
            result = migrate(conn, report=self.report)
        finally:
            conn.close()
        self.report(f"schema: {len(result.applied)} applied, {len(result.already_applied)} already applied")

    # --- connection strings ---------------------------------------------------------------

    def settings(self, database: str = DATABASE) -> ConnectionSettings:
        """ConnectionSettings for the superuser over all three nodes (the writable one is used)."""
        from pgha.connect import ConnectionSettings

        return ConnectionSettings(
            hosts=tuple((a, self.ports.postgres) for a in self.addresses),
            database=database,
            user=self.users.superuser,
            password=self.secrets().superuser,
            sslmode="require",
            application_name="pgha-lab",
        )

    def dsns(self) -> LabDsns:
        """Writer, reader and per-node DSNs (no password: it is in PGPASSWORD, see `pgha lab password`)."""
        hosts = ",".join(f"{a}:{self.ports.postgres}" for a in self.addresses)
        base = f"postgresql://{self.users.superuser}@{hosts}/{DATABASE}?sslmode=require"
        return LabDsns(
            writer=f"{base}&target_session_attrs=read-write",
            reader=f"{base}&target_session_attrs=prefer-standby",
            nodes={
                f"node{i}": f"postgresql://{self.users.superuser}@{a}:{self.ports.postgres}/{DATABASE}?sslmode=require"
                for i, a in enumerate(self.addresses, 1)
            },
        )

    def status(self) -> LabStatus:
        """Members and DSNs, as `pgha lab status --json` prints them."""
        members = self.members()
        status = LabStatus(
            lab_dir=str(self.root),
            members=[asdict(m) for m in members],
            dsns=self.dsns(),
            processes=self.running(),
            timing=asdict(self.timing),
        )
        if members:
            status["health_problems"] = health_problems(members, len(self.addresses))
            with contextlib.suppress(LabError, OSError, ValueError):
                config = self.dynamic_config()
                status["timing_in_dcs"] = {key: config.get(key) for key in asdict(self.timing)}
        return status

    # --- control --------------------------------------------------------------------------

    def switchover(self, candidate: str | None = None, timeout: float = 60.0) -> str:
        """Planned switchover through Patroni's REST API; returns the new leader once it leads.

        LabError for a candidate that is not one of the lab's nodes (asked before Patroni), and when Patroni
        refuses, with its reason (the response body, e.g. "candidate name does not match with sync_standby"
        for a plain replica under synchronous mode), not only "HTTP Error 412: Precondition Failed".
        """
        if candidate is not None:
            self._known_node(candidate, "candidate")
        leader = self.leader()
        api = self.patroni(auth=True)
        try:
            api.switchover(f"https://{leader.host}:{self.ports.restapi}", leader.name, candidate)
        except urllib.error.HTTPError as err:
            reason = err.read().decode(errors="replace").strip() or err.reason
            raise LabError(
                f"Patroni refused the switchover{f' to {candidate}' if candidate else ''} (HTTP {err.code}): {reason}"
            ) from None
        self._wait(
            f"a leader other than {leader.name}",
            lambda: self._leads_instead_of(leader.name),
            timeout,
            ("etcd", "patroni"),
        )
        return self.leader().name

    def _leads_instead_of(self, old: str) -> bool:
        try:
            return self.leader().name != old
        except LabError:  # no leader for a moment during the handover
            return False

    def node_names(self) -> list[str]:
        """The lab's node names (node1, node2, node3)."""
        return [f"node{i}" for i in range(1, len(self.addresses) + 1)]

    def _known_node(self, node: str, what: str = "node") -> None:
        """LabError naming the lab's nodes unless ``node`` is one of them."""
        if node not in self.node_names():
            raise LabError(f"unknown {what} {node!r}: the lab's nodes are {', '.join(self.node_names())}")

    def kill_node(self, node: str) -> None:
        """kill -9 a node's Patroni and its PostgreSQL postmaster (an unplanned crash).

        LabError for a name that is not one of the lab's nodes, and for a node with neither a Patroni nor a
        postmaster running (killed already, or no lab): it used to report "killed" having killed nothing.
        """
        self._known_node(node)
        patroni_pid = self._pid(node, "patroni")
        if not patroni_pid and not self.postmaster_pid(node):
            raise LabError(f"{node} is not running")
        if patroni_pid:
            with contextlib.suppress(ProcessLookupError):
                os.kill(patroni_pid, signal.SIGKILL)
        self.kill_postgres(node)

    def kill_postgres(self, node: str) -> int | None:
        """kill -9 the node's PostgreSQL postmaster only, Patroni runs on: what the kernel's OOM killer or a
        segfault does to PostgreSQL, as opposed to losing the node. Its backends exit when they notice the
        postmaster is gone; Patroni notices on its next HA loop and starts PostgreSQL again (a leader still
        holding its key: in place). Returns the pid killed (None when no postmaster of this node runs)."""
        pid = self.postmaster_pid(node)
        if pid:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        return pid

    def down(self, purge: bool = False, timeout: float = 60.0) -> list[int]:
        """Stop everything the lab started (Patroni first, then etcd), by pid; with ``purge`` delete its data.

        Returns the pids that had to be killed because they did not stop in time.
        """
        for process in ("patroni", "etcd", "moto"):
            pids = (
                [pid for procs in self.running().values() if (pid := procs[process])]
                if process != "moto"
                else [pid for pid in [self._pid("aws", "moto")] if pid]
            )
            for pid in pids:
                self.report(f"stopping {process} (pid {pid})")
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGTERM)
            _gone, alive = psutil.wait_procs([psutil.Process(p) for p in pids if psutil.pid_exists(p)], timeout=timeout)
            for proc in alive:
                proc.kill()
        killed = self._sweep()
        for pidfile in [*self.root.glob("node*/*.pid"), *self.root.glob("aws/*.pid")]:
            pidfile.unlink()
        if purge and self.root.exists():
            shutil.rmtree(self.root)
            self.report(f"removed {self.root}")
        return killed

    def _sweep(self) -> list[int]:
        """Kill any process still running from the lab directory (e.g. an orphaned postmaster)."""
        leftovers = []
        for pid in self.lab_processes():
            try:
                proc = psutil.Process(pid)
                proc.kill()
                leftovers.append(proc)
            except psutil.Error:
                pass
        psutil.wait_procs(leftovers, timeout=10)
        return [p.pid for p in leftovers]

    # --- operations: patronictl, backups ------------------------------------------------------

    def ctl(self, args: list[str]) -> int:
        """Run ``patronictl -c node1/patroni.yml ARGS`` with the REST API password in its environment.

        The rendered patroni.yml carries the CA and client certificate (``ctl:``) but no password:
        that lives in the root-only environment file the bootstrap wrote, as Patroni reads it.
        """
        node = next((n for n in ("node1", "node2", "node3") if (self.node_dir(n) / ENV_FILE).exists()), None)
        if node is None:
            raise LabError(f"no bootstrapped node under {self.root}: run `pgha lab up` first")
        patronictl = Path(sys.executable).parent / "patronictl"
        command = [str(patronictl)] if patronictl.exists() else [sys.executable, "-m", "patroni.ctl"]
        return subprocess.run(
            [*command, "-c", str(self.node_dir(node) / "patroni.yml"), *args],
            check=False,
            env={**os.environ, **self._node_environment(node)},
        ).returncode

    def _pgbackrest(self, node: str, *args: str) -> str:
        """Run pgBackRest with a node's configuration as the service user; its stdout, or LabError."""
        return self._backup_tool(
            node,
            ["pgbackrest", f"--config={self.node_dir(node) / 'pgbackrest.conf'}", f"--stanza={CLUSTER_NAME}", *args],
            f"pgbackrest {' '.join(args)}",
        )

    def _stanza_create(self, node: str) -> None:
        """Create (or check) the backup stanza with the node's own stanza-create.sh, as EC2's units do."""
        self._backup_tool(node, [str(self.node_dir(node) / "stanza-create.sh")], "stanza-create.sh")

    def _backup_tool(self, node: str, command: list[str], what: str) -> str:
        """Run a pgBackRest command line as the service user with the node's repository keys."""
        env = {
            **_BASE_ENV,
            "HOME": str(self.node_dir(node)),
            **{k: v for k, v in self._node_environment(node).items() if k.startswith("PGBACKREST_")},
        }
        result = subprocess.run(
            command,
            capture_output=True,
            text=True,
            check=False,
            env=env,
            timeout=600,
            cwd=self.node_dir(node),
            **_as_service_user(),
        )
        if result.returncode != 0:
            raise LabError(f"{what} failed: {(result.stderr or result.stdout).strip()}")
        return result.stdout

    def backup(self, kind: str = "full") -> str:
        """Take a pgBackRest backup on the leader into the lab's S3 bucket; return its label."""
        leader = self.leader().name
        self._stanza_create(leader)
        self._pgbackrest(leader, f"--type={kind}", "backup")
        info = json.loads(self._pgbackrest(leader, "--output=json", "info"))
        return info[0]["backup"][-1]["label"]

    def lab_processes(self) -> list[int]:
        """Pids of every process running from the lab directory."""
        found = []
        for proc in psutil.process_iter(["pid", "cmdline", "cwd"]):
            try:
                text = " ".join(proc.info["cmdline"] or []) + " " + (proc.info["cwd"] or "")
            except psutil.Error:
                continue
            if str(self.root) in text and proc.pid != os.getpid():
                found.append(proc.pid)
        return found

    # --- drills: the drill lock and faults (freeze, etcd loss) ------------------------------

    @property
    def drill_lock_file(self) -> Path:
        """The file a running drill holds (its pid and start time) so `lab up` leaves the lab alone."""
        return self.root / "drill.lock"

    def drill_holder(self) -> int | None:
        """Pid of a live process other than this one that holds the drill lock, else None."""
        try:
            pid_text, created_text = self.drill_lock_file.read_text().split()[:2]
            pid, created = int(pid_text), float(created_text)
        except (OSError, ValueError):
            return None
        if pid == os.getpid():
            return None
        try:
            alive = abs(psutil.Process(pid).create_time() - created) < 1.0
        except psutil.Error:
            alive = False
        return pid if alive else None

    @contextlib.contextmanager
    def drill_lock(self) -> Iterator[None]:
        """Hold the drill lock for the duration; LabError when another live drill holds it."""
        holder = self.drill_holder()
        if holder:
            raise LabError(f"another drill (pid {holder}) is using the lab ({self.drill_lock_file}): wait for it")
        self.root.mkdir(parents=True, exist_ok=True)
        me = psutil.Process()
        self.drill_lock_file.write_text(f"{me.pid} {me.create_time()}\n")
        try:
            yield
        finally:
            with contextlib.suppress(OSError, ValueError):
                if int(self.drill_lock_file.read_text().split()[0]) == me.pid:
                    self.drill_lock_file.unlink()

    def _refuse_while_drilling(self) -> None:
        """`lab up` restarts nothing a drill is using: refuse while a live drill holds the lock."""
        holder = self.drill_holder()
        if holder:
            raise LabError(
                f"a drill (pid {holder}) is using the lab and restores it when it ends: `lab up` changes nothing "
                f"while it runs; wait for it (or stop it: kill {holder}) and run `lab up` again"
            )

    def postmaster_pid(self, node: str) -> int | None:
        """The pid of the node's running postmaster, else None.

        From its postmaster.pid, but only when that process is alive and runs on this node's data
        directory: a stale pid file may name a pid reused since, e.g. by another lab's PostgreSQL.
        """
        data_dir = self.node_dir(node) / "pgdata"
        try:
            proc = psutil.Process(int((data_dir / "postmaster.pid").read_text().splitlines()[0]))
            ours = proc.status() != psutil.STATUS_ZOMBIE and str(data_dir) in proc.cmdline()
        except (OSError, ValueError, IndexError, psutil.Error):
            return None
        return proc.pid if ours else None

    def _postgres_pids(self, node: str) -> list[int]:
        """The node's postmaster and every PostgreSQL process under it."""
        pid = self.postmaster_pid(node)
        try:
            return [pid] + [child.pid for child in psutil.Process(pid).children(recursive=True)] if pid else []
        except psutil.Error:
            return []

    def freeze_node(self, node: str) -> list[int]:
        """SIGSTOP a node's Patroni and all its PostgreSQL processes (a hung VM); returns the pids stopped."""
        patroni = self._pid(node, "patroni")
        pids = ([patroni] if patroni else []) + self._postgres_pids(node)
        (self.node_dir(node) / "frozen.pids").write_text(" ".join(map(str, pids)))
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGSTOP)
        return pids

    def thaw_node(self, node: str) -> list[int]:
        """SIGCONT what :meth:`freeze_node` stopped: PostgreSQL first, then Patroni (the worst order)."""
        path = self.node_dir(node) / "frozen.pids"
        if not path.exists():
            return []
        pids = [int(p) for p in path.read_text().split()]
        for pid in pids[1:] + pids[:1]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)
        path.unlink()
        return pids

    def frozen_nodes(self) -> list[str]:
        """Nodes left frozen by :meth:`freeze_node` (e.g. by a drill that was killed)."""
        return sorted(p.parent.name for p in self.root.glob("node*/frozen.pids"))

    def kill_etcd(self, node: str) -> int | None:
        """kill -9 one node's etcd member; returns its pid (None when it was not running)."""
        pid = self._pid(node, "etcd")
        if pid:
            os.kill(pid, signal.SIGKILL)
            with contextlib.suppress(psutil.Error):
                psutil.Process(pid).wait(10)
        return pid

    def restart_etcd(self, node: str, timeout: float = 60.0) -> None:
        """Start a killed etcd member again from its data and wait until the etcd cluster is healthy."""
        if not self._pid(node, "etcd"):
            self._start(
                node, "etcd", [shutil.which("etcd") or "etcd", "--config-file", str(self.node_dir(node) / "etcd.yml")]
            )
        self._wait("etcd cluster healthy", self._etcd_healthy, timeout, ())

    def etcd_healthy(self) -> bool:
        """True when every etcd member answers healthy."""
        return self._etcd_healthy()

    def etcd_members(self) -> list[dict[str, Any]]:
        """The etcd cluster's members (ID, name, peerURLs, clientURLs) as the first member that answers lists them."""
        context = self.tls_context()
        try:
            answer = first_answer(
                [f"https://{address}:{self.ports.etcd_client}" for address in self.addresses],
                lambda base: call_json(f"{base}/v3/cluster/member/list", method="POST", body={}, context=context),
            )
        except NoMemberAnswered:
            raise LabError("no etcd member answers") from None
        return list(answer.get("members", []))

    def restore_point_in_time(self, target_time: datetime, data_dir: Path) -> None:
        """Leave in data_dir a copy of the cluster as of target_time, ready to start: on start PostgreSQL
        replays to target_time and promotes.

        ``pgbackrest restore --type=time --target-action=promote`` from the lab's S3 repository (the
        newest backup that ends before ``target_time``, then WAL from the archive). The copy does not
        archive (``archive_mode=off``), so it never writes into the cluster's repository. Its
        postgresql.conf is the source node's: start it with your own ``-p``, ``-c listen_addresses``
        and ``-c unix_socket_directories`` as the service user. ``data_dir`` must be absent or empty.
        """
        if target_time.tzinfo is None:
            raise LabError(f"target_time {target_time.isoformat()} has no time zone: give one (e.g. UTC)")
        if target_time > datetime.now(UTC):
            raise LabError(f"target time {target_time.isoformat()} is in the future")
        if data_dir.exists() and any(data_dir.iterdir()):
            raise LabError(f"{data_dir} is not empty: pgBackRest restores only into an empty directory")
        node = next((m.name for m in self.members() if m.role == "leader"), "node1")
        info = json.loads(self._pgbackrest(node, "--output=json", "info"))
        if not any(b["timestamp"]["stop"] < target_time.timestamp() for b in info[0].get("backup", [])):
            raise LabError(
                f"no base backup of the lab ended before {target_time.isoformat()}: take one first (pgha lab backup)"
            )
        data_dir.mkdir(parents=True, exist_ok=True)
        data_dir.chmod(0o700)
        if running_as_root():
            os.chown(data_dir, *service_user_ids())
        # the WAL up to now must be in the repository, or recovery ends before the target: `check` switches
        # to a new WAL file and waits until the finished one is archived
        self._pgbackrest(node, "check")
        # the copy fetches WAL with moto's (non-secret) test keys, which the lab's nodes get from their env
        keys = " ".join(f"{k}={v}" for k, v in self._node_environment(node).items() if k.startswith("PGBACKREST_"))
        restore_command = (
            f"env {keys} pgbackrest --config={self.node_dir(node) / 'pgbackrest.conf'} "
            f'--stanza={CLUSTER_NAME} --pg1-path={data_dir} archive-get %f "%p"'
        )
        self._pgbackrest(
            node,
            f"--pg1-path={data_dir}",
            "--type=time",
            f"--recovery-option=restore_command={restore_command}",
            f"--target={target_time.isoformat(sep=' ')}",
            "--target-action=promote",
            "--archive-mode=off",
            "restore",
        )
