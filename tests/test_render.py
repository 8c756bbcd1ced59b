"""Rendering Patroni and etcd configuration from patroni/: one function, timing rules, no secrets."""

from __future__ import annotations

import re
import socket
import tempfile
from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from pgha.lab import cluster as lab_module
from pgha.lab.cluster import Lab
from pgha.local import PrerequisiteError, running_as_root
from pgha.node.render import (
    ClusterSecrets,
    ClusterSpec,
    PatroniTiming,
    TimingError,
    Users,
    patroni_environment,
    render_etcd,
    render_patroni,
)

SECRETS = ClusterSecrets(
    superuser="su-Secret-1", replication="repl-Secret-2", rewind="rw-Secret-3", restapi="api-Secret-4"
)


@pytest.fixture
def cluster(tmp_path: Path) -> ClusterSpec:
    return Lab(root=tmp_path).cluster()


@pytest.mark.parametrize(
    ("timing", "message"),
    [
        (PatroniTiming(ttl=30, loop_wait=10, retry_timeout=30), "exceeds ttl = 30"),  # the seed's values
        (PatroniTiming(ttl=15, loop_wait=2, retry_timeout=5), "ttl = 15: must be at least 20"),
        (PatroniTiming(ttl=20, loop_wait=0, retry_timeout=5), "loopWait = 0"),
        (PatroniTiming(ttl=20, loop_wait=2, retry_timeout=2), "retryTimeout = 2"),
        # etcd refuses a lease this long ("too large lease TTL"): Patroni would run with no leader
        (PatroniTiming(ttl=10_000_000_000, loop_wait=2, retry_timeout=5), "ttl = 10000000000: must be at most 3600"),
        (PatroniTiming(ttl=3601, loop_wait=10, retry_timeout=10), "ttl = 3601: must be at most 3600"),
        (PatroniTiming(ttl=3600, loop_wait=3600, retry_timeout=10), "loopWait \\+ 2 \\* retryTimeout = 3620 exceeds"),
    ],
)
def test_timing_patroni_would_adjust_is_refused(timing: PatroniTiming, message: str, cluster: ClusterSpec) -> None:
    with pytest.raises(TimingError, match=message):
        timing.validate()

    with pytest.raises(TimingError):
        render_patroni(replace(cluster, timing=timing), cluster.nodes[0])


def test_valid_timing_passes() -> None:
    assert PatroniTiming(ttl=20, loop_wait=2, retry_timeout=5).validate().problems() == []
    assert PatroniTiming().problems() == []
    assert PatroniTiming(ttl=3600, loop_wait=10, retry_timeout=10).problems() == []


def test_patroni_config_carries_the_ha_settings(cluster: ClusterSpec) -> None:
    node = cluster.nodes[1]
    config = yaml.safe_load(render_patroni(cluster, node))
    dcs = config["bootstrap"]["dcs"]
    assert dcs["synchronous_mode"] is True and dcs["synchronous_mode_strict"] is False
    assert dcs["failsafe_mode"] is True and dcs["maximum_lag_on_failover"] == 1048576
    assert dcs["postgresql"]["use_pg_rewind"] is True
    assert "data-checksums" in config["bootstrap"]["initdb"]
    assert "pg_stat_statements" in dcs["postgresql"]["parameters"]["shared_preload_libraries"]
    assert dcs["postgresql"]["parameters"]["log_min_duration_statement"] == 1000
    assert config["restapi"]["listen"] == f"{node.address}:8008"
    assert config["postgresql"]["listen"] == f"{node.address}:5432"
    assert config["postgresql"]["parameters"]["unix_socket_directories"] == node.socket_dir
    assert config["etcd3"]["hosts"] == [f"{n.address}:2379" for n in cluster.nodes]
    hba = config["postgresql"]["pg_hba"]
    assert all("0.0.0.0/0" not in line for line in hba)
    assert any(line.startswith("hostssl replication replicator") for line in hba)
    assert all(line.endswith(" reject") for line in hba if line.startswith("host ")), "network connections use TLS"
    assert config["postgresql"]["parameters"]["ssl"] == "on"
    # the superuser: peer over the socket, or from members; refused from anywhere else before clients are admitted
    assert hba[0] == "local all postgres peer"
    first_client = next(i for i, line in enumerate(hba) if line.startswith("hostssl all all "))
    assert hba.index("host all postgres all reject") < first_client
    assert config["etcd3"]["protocol"] == "https" and config["etcd3"]["cert"] == node.ssl_cert_file
    assert config["restapi"]["certfile"] == node.ssl_cert_file and config["ctl"]["cacert"] == node.ca_file


def test_rendered_files_hold_no_password(cluster: ClusterSpec) -> None:
    rendered = "".join(render_patroni(cluster, n) + render_etcd(cluster, n) for n in cluster.nodes)
    for secret in vars(SECRETS).values():
        assert secret not in rendered

    def keys(value: object) -> set[str]:
        if isinstance(value, dict):
            return set(value) | {k for v in value.values() for k in keys(v)}
        return set()

    assert "password" not in keys(yaml.safe_load(render_patroni(cluster, cluster.nodes[0])))


def test_environment_carries_every_credential() -> None:
    env = patroni_environment(Users(), SECRETS)
    assert env["PATRONI_SUPERUSER_PASSWORD"] == SECRETS.superuser
    assert env["PATRONI_REPLICATION_USERNAME"] == "replicator"
    assert env["PATRONI_RESTAPI_PASSWORD"] == SECRETS.restapi
    assert len(env) == 8


def test_etcd_config_lists_the_whole_initial_cluster(cluster: ClusterSpec) -> None:
    config = yaml.safe_load(render_etcd(cluster, cluster.nodes[0]))
    assert config["initial-cluster"] == ",".join(f"{n.name}=https://{n.address}:2380" for n in cluster.nodes)
    assert config["enable-grpc-gateway"] is True
    assert config["listen-client-urls"] == f"https://{cluster.nodes[0].address}:2379"
    for side in ("client", "peer"):
        assert config[f"{side}-transport-security"]["client-cert-auth"] is True
    assert config["initial-cluster-state"] == "new"
    assert yaml.safe_load(render_etcd(cluster, cluster.nodes[0], "existing"))["initial-cluster-state"] == "existing"


def test_missing_etcd_is_named_before_anything_starts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(lab_module.shutil, "which", lambda _name: None)
    with pytest.raises(PrerequisiteError, match="apt-get install etcd-server"):
        Lab(root=tmp_path).check_prerequisites()
    assert not (tmp_path / "node1").exists()


def test_busy_port_is_named() -> None:
    root = Path(tempfile.mkdtemp(prefix="pgha-lab-ports-"))  # in /tmp, which the postgres user can reach
    lab = Lab(root=root)
    try:
        with socket.socket() as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((lab.addresses[1], 8008))
            sock.listen()
            with pytest.raises(PrerequisiteError, match=re.escape(f"{lab.addresses[1]}:8008")):
                lab.check_prerequisites()
    finally:
        root.rmdir()


def test_unreachable_lab_directory_is_named(tmp_path: Path) -> None:
    if not running_as_root():
        pytest.skip("only root runs the lab as another user")
    tmp_path.chmod(0o700)
    with pytest.raises(PrerequisiteError, match="postgres user cannot reach"):
        Lab(root=tmp_path / "lab").check_prerequisites()


def test_lab_addresses_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PGHA_LAB_ADDRESSES", "127.0.2.1, 127.0.2.2,127.0.2.3")
    assert Lab(root=Path("/nonexistent")).addresses == ("127.0.2.1", "127.0.2.2", "127.0.2.3")


@pytest.mark.parametrize(
    "value",
    [
        "127.0.2.1,127.0.2.2",
        "10.0.0.1,10.0.0.2,10.0.0.3",
        "127.0.0.1,127.0.2.2,127.0.2.3",
        "127.0.2.1,127.0.2.1,127.0.2.3",
    ],
)
def test_lab_addresses_other_than_three_distinct_loopback_ones_are_refused(
    value: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PGHA_LAB_ADDRESSES", value)
    with pytest.raises(PrerequisiteError, match="PGHA_LAB_ADDRESSES"):
        Lab(root=Path("/nonexistent"))


def test_point_in_time_restore_refuses_a_naive_time_or_a_used_directory(tmp_path: Path) -> None:
    import datetime

    from pgha.lab.cluster import LabError

    lab = Lab(root=tmp_path / "lab")
    with pytest.raises(LabError, match="has no time zone"):
        lab.restore_point_in_time(datetime.datetime(2026, 1, 1, 12, 0), tmp_path / "copy")
    used = tmp_path / "used"
    used.mkdir()
    (used / "PG_VERSION").write_text("15\n")
    with pytest.raises(LabError, match="is not empty"):
        lab.restore_point_in_time(datetime.datetime.now(datetime.UTC), used)
    assert not (tmp_path / "copy").exists()
