"""`pgha node bootstrap`: secrets from Secrets Manager (moto's server on loopback), configs rendered, modes right."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import fields, replace
from pathlib import Path

import boto3
import pytest
import yaml
from moto.server import ThreadedMotoServer

from components.patroni_cluster import ec2_node
from pgha.lab.cluster import Lab
from pgha.lab.tls import issue, new_ca
from pgha.local import as_service_user, free_port, running_as_root, service_user_ids
from pgha.node.config import AwsAccess, NodeConfig, parse

PASSWORDS = {
    "password": "su-Boot-1",
    "replication_password": "repl-Boot-2",
    "rewind_password": "rw-Boot-3",
    "restapi_password": "api-Boot-4",
}
AWS_ENV = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}


@pytest.fixture(scope="module")
def moto_url() -> Iterator[str]:
    port = free_port("127.0.0.1")
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture
def node_file(tmp_path: Path, moto_url: str) -> Path:
    """A lab-layout node file (the node's directories under one directory, as `pgha lab up` lays them out)."""
    return write_node_file(tmp_path, moto_url)


@pytest.fixture
def ec2_node_file(tmp_path: Path, moto_url: str) -> Path:
    """A node file with the EC2 layout (/etc/pgha, /var/lib/pgha, ...) moved under the test's directory."""
    return write_node_file(tmp_path, moto_url, ec2_layout=True)


@pytest.fixture
def ec2_node_file_for_service_user(tmp_path: Path, moto_url: str) -> Iterator[Path]:
    """The EC2 layout under a directory the service user can traverse (pytest's own is root's alone)."""
    root = Path(tempfile.mkdtemp(prefix="pgha-ec2-node-"))
    root.chmod(0o755)
    yield write_node_file(tmp_path, moto_url, ec2_layout=True, layout_root=root)
    shutil.rmtree(root)


def write_node_file(tmp_path: Path, moto_url: str, ec2_layout: bool = False, layout_root: Path | None = None) -> Path:
    client = boto3.client(
        "secretsmanager",
        endpoint_url=moto_url,
        region_name="us-east-1",
        **{"aws_access_key_id": "testing", "aws_secret_access_key": "testing"},
    )
    name = tmp_path.name
    arn = client.create_secret(Name=f"{name}/credentials", SecretString=json.dumps(PASSWORDS))["ARN"]
    ca = new_ca("test")
    node_cert = issue(ca, "node1", ("127.0.3.1",))
    tls_arn = client.create_secret(
        Name=f"{name}/node1/tls", SecretString=json.dumps({"ca": ca.cert, "cert": node_cert.cert, "key": node_cert.key})
    )["ARN"]
    cluster = Lab(root=tmp_path / "lab", addresses=("127.0.3.1", "127.0.3.2", "127.0.3.3")).cluster()
    if ec2_layout:
        on_ec2 = ec2_node("node1", "127.0.3.1", 17)
        node = replace(
            on_ec2,
            bin_dir=cluster.nodes[0].bin_dir,
            **{
                f.name: f"{layout_root or tmp_path}{getattr(on_ec2, f.name)}"
                for f in fields(on_ec2)
                if f.name.endswith(("_dir", "_file", "pgpass")) and f.name != "bin_dir"
            },
        )
        cluster = replace(cluster, nodes=[node, *cluster.nodes[1:]])
    config = NodeConfig(
        cluster=cluster,
        node=cluster.nodes[0],
        service_manager="external",
        patronictl_config=str(tmp_path / "root" / "patronictl.yaml"),
        aws=AwsAccess(region="us-east-1", secret_arn=arn, tls_secret_arn=tls_arn, endpoint_url=moto_url),
    )
    path = tmp_path / "node.json"
    path.write_text(config.to_json())
    return path


def bootstrap(path: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pgha", "node", "bootstrap", "--config", str(path), *extra],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
        env={**os.environ, **AWS_ENV},
    )


def test_bootstrap_writes_configs_keys_and_a_root_only_environment(node_file: Path) -> None:
    result = bootstrap(node_file)
    assert result.returncode == 0, result.stderr
    config = parse(node_file.read_text())
    node = config.node
    base = Path(node.config_dir)
    env_file = base / "patroni.env"
    assert oct(env_file.stat().st_mode & 0o777) == "0o600" and env_file.stat().st_uid == os.geteuid()
    assert f"PATRONI_SUPERUSER_PASSWORD={PASSWORDS['password']}" in env_file.read_text()
    assert oct(Path(node.ssl_key_file).stat().st_mode & 0o777) == "0o600"
    assert "BEGIN CERTIFICATE" in Path(node.ca_file).read_text()
    rendered = {
        name: (base / name).read_text() for name in ("patroni.yml", "etcd.yml", "pgbackrest.conf", "post-bootstrap.sh")
    }
    for text in [*rendered.values(), result.stdout, result.stderr, node_file.read_text()]:
        assert not any(password in text for password in PASSWORDS.values())
    assert yaml.safe_load(rendered["patroni.yml"])["etcd3"]["protocol"] == "https"
    assert "repo1-s3-uri-style=path" in rendered["pgbackrest.conf"]
    assert yaml.safe_load(rendered["etcd.yml"])["initial-cluster-state"] == "new"
    ctl = Path(config.patronictl_config)
    assert oct(ctl.stat().st_mode & 0o777) == "0o600"
    assert yaml.safe_load(ctl.read_text())["ctl"]["authentication"]["password"] == PASSWORDS["restapi_password"]


def test_a_node_whose_etcd_directory_holds_a_member_joins_as_existing(node_file: Path) -> None:
    assert bootstrap(node_file).returncode == 0
    node = parse(node_file.read_text()).node
    (Path(node.etcd_data_dir) / "member").mkdir()
    assert bootstrap(node_file).returncode == 0
    assert yaml.safe_load((Path(node.config_dir) / "etcd.yml").read_text())["initial-cluster-state"] == "existing"


@pytest.mark.skipif(not running_as_root(), reason="ownership is set only when the bootstrap runs as root")
def test_the_service_user_owns_its_files_but_cannot_replace_the_node_file_root_rereads(
    ec2_node_file_for_service_user: Path,
) -> None:
    # under a directory the service user can traverse: otherwise "Permission denied" would come from there
    ec2_node_file = ec2_node_file_for_service_user
    assert bootstrap(ec2_node_file).returncode == 0
    node = parse(ec2_node_file.read_text()).node
    config_dir = Path(node.config_dir)
    # cloud-init writes the node file into /etc/pgha; the bootstrap (as root) re-reads it before every start
    (config_dir / "node.json").write_text(ec2_node_file.read_text())
    assert (config_dir.stat().st_uid, oct(config_dir.stat().st_mode & 0o777)) == (0, "0o755")
    service_uid = service_user_ids()[0]
    assert {(config_dir / f).stat().st_uid for f in ("patroni.yml", "etcd.yml", "stanza-create.sh")} == {service_uid}
    assert Path(node.etcd_data_dir).stat().st_uid == service_uid
    replaced = subprocess.run(
        as_service_user(
            ["sh", "-c", f"echo '{{}}' > {config_dir}/evil.json && mv {config_dir}/evil.json {config_dir}/node.json"]
        ),
        capture_output=True,
        text=True,
        check=False,
    )
    assert replaced.returncode != 0 and "Permission denied" in replaced.stderr
    assert json.loads((config_dir / "node.json").read_text())["node"]["name"] == "node1"


@pytest.mark.skipif(not running_as_root(), reason="the service user differs from the test's only as root")
def test_patroni_as_the_service_user_can_write_beside_the_pgpass_of_an_ec2_node(
    ec2_node_file_for_service_user: Path, service_python: str
) -> None:
    node_file = ec2_node_file_for_service_user
    config = parse(node_file.read_text())
    # as pgha-mount-data leaves the fresh volume's root: root's, 0755
    mount = Path(config.node.etcd_data_dir).parent
    mount.mkdir(parents=True)
    mount.chmod(0o755)
    assert bootstrap(node_file).returncode == 0
    pgpass = yaml.safe_load((Path(config.node.config_dir) / "patroni.yml").read_text())["postgresql"]["pgpass"]
    # Patroni's own start-up check (Postgresql.config.check_directories), run as the user systemd runs it as
    check = (
        "import sys; from patroni.utils import validate_directory; "
        "validate_directory(sys.argv[1], \"'{}' is defined in postgresql.pgpass, {}\")"
    )
    result = subprocess.run(
        as_service_user([service_python, "-c", check, os.path.dirname(pgpass)]),
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr.strip()[-300:]
    assert (mount.stat().st_uid, oct(mount.stat().st_mode & 0o777)) == (0, "0o755"), "the volume's root stays root's"


def test_a_symbolic_link_planted_in_a_node_directory_is_refused_not_followed(
    ec2_node_file: Path, tmp_path: Path
) -> None:
    assert bootstrap(ec2_node_file).returncode == 0
    spool = Path(parse(ec2_node_file.read_text()).node.pgbackrest_dir) / "spool"
    victim = tmp_path / "victim"
    victim.mkdir(mode=0o755)
    victim.chmod(0o755)
    spool.rmdir()
    spool.symlink_to(victim)
    result = bootstrap(ec2_node_file)
    assert result.returncode == 1 and f"{spool} is not a directory (a symbolic link?)" in result.stderr
    assert (victim.stat().st_uid, oct(victim.stat().st_mode & 0o777)) == (os.geteuid(), "0o755")


def test_an_ec2_node_whose_data_volume_is_not_mounted_is_refused_and_nothing_written(
    ec2_node_file: Path, tmp_path: Path
) -> None:
    data = json.loads(ec2_node_file.read_text())
    mount = tmp_path / "var" / "lib" / "pgha"
    mount.mkdir(parents=True)  # as pgha-mount-data leaves it when the volume never appears: a plain directory
    data["data_mount"] = str(mount)
    ec2_node_file.write_text(json.dumps(data))
    result = bootstrap(ec2_node_file)
    assert result.returncode == 1
    assert f"{mount} is not a mount point: node1's data volume is not mounted" in result.stderr
    assert list(mount.iterdir()) == [] and not (tmp_path / "etc").exists(), "nothing written"
    assert "reading secrets" not in result.stdout, "refused before any secret is read"


def test_an_ec2_node_whose_data_mount_is_a_mount_point_boots(ec2_node_file: Path) -> None:
    data = json.loads(ec2_node_file.read_text())
    data["data_mount"] = "/"  # a mount point on any machine, and every test path is under it
    ec2_node_file.write_text(json.dumps(data))
    result = bootstrap(ec2_node_file)
    assert result.returncode == 0, result.stderr
    assert (Path(data["node"]["config_dir"]) / "patroni.yml").is_file()


def test_a_lab_node_file_asks_for_no_mount(tmp_path: Path) -> None:
    lab = Lab(root=tmp_path / "lab", addresses=("127.0.3.1", "127.0.3.2", "127.0.3.3"))
    cluster = lab.cluster()
    arns = {"pgha-lab/credentials": "arn:c", **{f"pgha-lab/{n.name}/tls": f"arn:{n.name}" for n in cluster.nodes}}
    config = lab.node_config(cluster, cluster.nodes[0], arns)
    assert config.data_mount == "" and parse(config.to_json()).data_mount == ""


def test_unreadable_secret_fails_naming_the_secret(node_file: Path) -> None:
    data = json.loads(node_file.read_text())
    data["aws"]["secret_arn"] = "arn:aws:secretsmanager:us-east-1:123456789012:secret:missing-AbCdEf"
    node_file.write_text(json.dumps(data))
    result = bootstrap(node_file)
    assert result.returncode == 1
    assert "cannot read secret arn:aws:secretsmanager:us-east-1:123456789012:secret:missing-AbCdEf" in result.stderr
    assert not (Path(data["node"]["config_dir"]) / "patroni.yml").exists(), "nothing written"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.pop("aws"), "missing 'aws'"),
        (lambda d: d.update(service_manager="upstart"), "service_manager = 'upstart'"),
        (lambda d: d["cluster"]["timing"].update(ttl=10), "ttl = 10: must be at least 20"),
        (lambda d: d["node"].update(name="node9"), "node 'node9' is not among the peers"),
        (lambda d: d.update(data_mount="var/lib/pgha"), "data_mount = 'var/lib/pgha': must be an absolute path"),
        (lambda d: d.update(data_mount="/elsewhere"), "is not under data_mount '/elsewhere'"),
        # the file's types are declared: a number is no address, a string no ttl (this once ended in a TypeError)
        (lambda d: d["node"].update(address=5), "node.address = 5: must be a valid string"),
        (lambda d: d["cluster"].update(timing={"ttl": "30"}), "cluster.timing.ttl = '30': must be a valid integer"),
        (lambda d: d["node"].update(datadir="/x"), "node.datadir is not a node file setting (known: name, address,"),
    ],
)
def test_bad_node_file_is_refused_with_one_line(node_file: Path, change, message: str) -> None:
    data = json.loads(node_file.read_text())
    change(data)
    node_file.write_text(json.dumps(data))
    result = bootstrap(node_file)
    assert result.returncode == 2 and message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.skipif(not running_as_root(), reason="files of another uid can be made only as root")
def test_data_a_replaced_instance_finds_under_another_uid_becomes_the_service_users(ec2_node_file: Path) -> None:
    """The new instance's postgres may have another uid than the one that wrote the reused volume."""
    node = parse(ec2_node_file.read_text()).node
    old_uid = 4242
    pg_version = Path(node.data_dir) / "PG_VERSION"
    wal = Path(node.data_dir) / "pg_wal" / "000000010000000000000001"
    member = Path(node.etcd_data_dir) / "member" / "snap" / "db"
    for path in (pg_version, wal, member):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("data")
    elsewhere = ec2_node_file.parent / "not-data"
    elsewhere.write_text("root's")
    (Path(node.data_dir) / "link").symlink_to(elsewhere)
    for folder in (Path(node.data_dir), Path(node.etcd_data_dir)):
        for path in (folder, *folder.rglob("*")):
            os.lchown(path, old_uid, old_uid)
    result = bootstrap(ec2_node_file)
    assert result.returncode == 0, result.stderr
    assert "belonged to another uid" in result.stdout
    uid = service_user_ids()[0]
    for path in (Path(node.data_dir), pg_version, wal, Path(node.etcd_data_dir), member, Path(node.data_dir) / "link"):
        assert path.lstat().st_uid == uid, path
    assert elsewhere.stat().st_uid == 0, "a symbolic link is changed, never followed"
