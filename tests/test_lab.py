"""The real local HA lab: 3 x (etcd + Patroni + PostgreSQL) on 127.0.1.1-3, failover under write load."""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import asdict

import boto3
import psutil
import pytest
from moto import mock_aws

from pgha.connect import ConnectionSettings, connect
from pgha.drill.probe import WriteProbe, missing_acknowledged
from pgha.lab.cluster import CLUSTER_NAME, DATABASE, LAB_TIMING, PROJECT_DIR, Lab, LabError
from pgha.local import (
    as_service_user,
    free_port,
    give_to_service_user,
    port_in_use,
    postgres_bindir,
    running_as_root,
    service_user_ids,
)
from pgha.node.dynamic_config import DynamicConfigError, config_patch
from pgha.node.render import SECRET_JSON_KEYS, dynamic_config
from pgha.schema.lambda_handler import handler, patroni_dynamic_config

pytestmark = pytest.mark.lab


def wait_for(what: str, condition: Callable[[], bool], timeout: float = 90.0) -> None:
    """Poll ``condition`` (a moment with no leader counts as not yet) until true or ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if condition():
                return
        except LabError:
            pass
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.5)


def node_settings(lab: Lab, address: str) -> ConnectionSettings:
    base = lab.settings()
    return ConnectionSettings(
        hosts=((address, 5432),), database=base.database, user=base.user, password=base.password, sslmode="require"
    )


def roles(lab: Lab) -> dict[str, str]:
    return {m.name: m.role for m in lab.members()}


def test_cluster_forms_with_leader_sync_standby_and_replica(lab: Lab) -> None:
    assert sorted(roles(lab).values()) == ["leader", "replica", "sync_standby"]
    assert all(m.state in ("running", "streaming") for m in lab.members())
    conn = connect(lab.settings())
    assert conn.run("SELECT count(*) FROM pgha_schema_migrations")[0][0] >= 10, "schema applied"
    conn.close()


def test_row_written_through_the_writer_reaches_every_replica(lab: Lab) -> None:
    writer = connect(lab.settings(), writable=True)
    writer.run("CREATE TABLE IF NOT EXISTS lab_check (note text)")
    writer.run("INSERT INTO lab_check VALUES ('hello from the writer')")
    writer.close()
    for member in lab.members():
        if member.role == "leader":
            continue
        conn = connect(node_settings(lab, member.host))
        assert conn.run("SELECT pg_is_in_recovery()")[0][0] is True
        wait_for(
            f"the row on {member.name}",
            lambda c=conn: (
                c.run("SELECT count(*) FROM pg_tables WHERE tablename = 'lab_check'")[0][0] == 1
                and c.run("SELECT count(*) FROM lab_check")[0][0] == 1
            ),
            timeout=30,
        )
        conn.close()


def test_switchover_under_write_load_loses_nothing(lab: Lab) -> None:
    old_leader = lab.leader().name
    probe = WriteProbe(lab.settings())
    probe.prepare()
    probe.start()
    time.sleep(2)
    lab.switchover()
    wait_for("a new leader", lambda: lab.leader().name != old_leader)
    acknowledged_before_end = len(probe.report.acknowledged)
    wait_for("writes to resume", lambda: len(probe.report.acknowledged) > acknowledged_before_end + 20)
    report = probe.stop()
    assert lab.leader().name != old_leader
    assert missing_acknowledged(lab.settings(), report.acknowledged) == []
    wait_for(
        "the old leader to stream again",
        lambda: all(m.state in ("running", "streaming") for m in lab.members()) and len(lab.members()) == 3,
    )


def test_kill_leader_under_write_load_fails_over_without_loss_and_rejoins(lab: Lab) -> None:
    wait_for("a synchronous standby", lambda: "sync_standby" in roles(lab).values())
    old_leader = lab.leader()
    old_timeline = old_leader.timeline
    probe = WriteProbe(lab.settings())
    probe.prepare()
    probe.start()
    time.sleep(2)
    lab.kill_node(old_leader.name)

    wait_for(
        "a new leader after kill -9",
        lambda: lab.leader().name != old_leader.name and lab.leader().state == "running",
        timeout=90,
    )
    acknowledged_at_failover = len(probe.report.acknowledged)
    wait_for(
        "writes to resume through the writer DSN",
        lambda: len(probe.report.acknowledged) > acknowledged_at_failover + 20,
        timeout=60,
    )
    report = probe.stop()
    assert report.failures > 0, "the probe should have seen the leader disappear"
    assert missing_acknowledged(lab.settings(), report.acknowledged) == []
    # Patroni reports the new timeline once the promoted node has checkpointed
    wait_for("the new leader's timeline to advance", lambda: lab.leader().timeline > old_timeline, timeout=60)

    lab.up()  # restarts the killed node's Patroni, which rewinds and rejoins
    wait_for(
        f"{old_leader.name} to rejoin as a replica",
        lambda: (
            roles(lab).get(old_leader.name) in ("replica", "sync_standby")
            and all(m.state in ("running", "streaming") for m in lab.members())
        ),
        timeout=90,
    )
    rejoined = node_settings(lab, old_leader.host)
    conn = connect(rejoined)
    assert conn.run("SELECT pg_is_in_recovery()")[0][0] is True
    conn.close()


def test_cli_status_and_switchover_drive_the_same_lab(lab: Lab) -> None:
    env = {**os.environ, "PGHA_LAB_DIR": str(lab.root)}
    status = subprocess.run(
        [sys.executable, "-m", "pgha", "lab", "status", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert status.returncode == 0, status.stderr
    members = json.loads(status.stdout)["members"]
    assert {m["name"] for m in members} == {"node1", "node2", "node3"}
    assert lab.secrets().superuser not in status.stdout
    wait_for(
        "a healthy cluster",
        lambda: (
            all(m.state in ("running", "streaming") for m in lab.members()) and "sync_standby" in roles(lab).values()
        ),
    )
    old = lab.leader().name
    switched = subprocess.run(
        [sys.executable, "-m", "pgha", "lab", "switchover"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert switched.returncode == 0, switched.stderr
    assert f"switchover: {old} -> " in switched.stdout and lab.leader().name != old


def pgha_cli(lab: Lab, *args: str) -> subprocess.CompletedProcess[str]:
    """``python -m pgha ARGS`` on this lab, from the project directory, on a wide terminal (unwrapped rows)."""
    env = {**os.environ, "PGHA_LAB_DIR": str(lab.root), "PGHA_LAB_ADDRESSES": ",".join(lab.addresses), "COLUMNS": "250"}
    return subprocess.run(
        [sys.executable, "-m", "pgha", *args],
        cwd=PROJECT_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


def healthy(lab: Lab) -> bool:
    return sorted(roles(lab).values()) == ["leader", "replica", "sync_standby"] and all(
        m.state in ("running", "streaming") for m in lab.members()
    )


def test_cli_switchover_refused_by_patroni_says_why(lab: Lab) -> None:
    """Patroni's reason was lost: `error: HTTP Error 412: Precondition Failed`."""
    wait_for("a healthy cluster", lambda: healthy(lab))
    leader = lab.leader().name
    replica = next(name for name, role in roles(lab).items() if role == "replica")
    refused = pgha_cli(lab, "lab", "switchover", "--candidate", replica)
    assert refused.returncode == 1
    assert (
        f"error: Patroni refused the switchover to {replica} (HTTP 412): "
        "candidate name does not match with sync_standby"
    ) in refused.stderr
    same = pgha_cli(lab, "lab", "switchover", "--candidate", leader)
    assert same.returncode == 1 and "Switchover target and source are the same" in same.stderr
    unknown = pgha_cli(lab, "lab", "switchover", "--candidate", "node9")
    assert unknown.returncode == 1
    assert "error: unknown candidate 'node9': the lab's nodes are node1, node2, node3" in unknown.stderr
    assert lab.leader().name == leader


def test_cli_kill_refuses_what_it_cannot_kill_and_status_marks_the_killed_member(lab: Lab) -> None:
    """`lab kill node9` and a second `lab kill` of the same node reported "killed"; and for as long as etcd kept
    the killed member's key, `lab status` showed it as running. Also: the PGPASSWORD hint works as printed."""
    wait_for("a healthy cluster", lambda: healthy(lab))
    unknown = pgha_cli(lab, "lab", "kill", "node9")
    assert unknown.returncode == 1
    assert "error: unknown node 'node9': the lab's nodes are node1, node2, node3" in unknown.stderr
    replica = next(name for name, role in roles(lab).items() if role == "replica")
    try:
        assert pgha_cli(lab, "lab", "kill", replica).returncode == 0
        status = pgha_cli(lab, "lab", "status")
        # etcd keeps the member's key (its last report: streaming) until the ttl runs out, 20 s in the lab
        row = next(line for line in status.stdout.splitlines() if f" {replica} " in line)
        assert "Patroni not running" in row and "streaming" not in row, status.stdout
        assert f"{replica}: its Patroni is not running" in status.stdout
        again = pgha_cli(lab, "lab", "kill", replica)
        assert again.returncode == 1 and f"error: {replica} is not running" in again.stderr
        hint = next(line for line in status.stdout.splitlines() if line.startswith("password:"))
        command = hint.split("$(", 1)[1].rsplit(")", 1)[0]
        password = subprocess.run(
            ["bash", "-c", command],
            cwd=PROJECT_DIR,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            env={**os.environ, "PGHA_LAB_DIR": str(lab.root)},
        )
        assert password.stdout.strip() == lab.secrets().superuser, (command, password.stderr)
    finally:
        lab.up()
    assert healthy(lab)


def test_lab_up_on_a_running_lab_with_no_leader_waits_for_one_and_fails_clearly(lab: Lab) -> None:
    """Every process runs but no member answers (all frozen): `lab up` said "lab already running", printed an
    empty table and exited 0. It waits for a healthy cluster as a fresh start does, and says what it found."""
    wait_for("a healthy cluster", lambda: healthy(lab))
    nodes = list(lab.running())
    try:
        for node in nodes:
            lab.freeze_node(node)
        with pytest.raises(
            LabError,
            match=r"timed out after 5 s waiting for a leader, a synchronous standby and "
            r"a replica \(no member answers Patroni's REST API\)",
        ):
            lab.up(timeout=5)
    finally:
        for node in nodes:
            lab.thaw_node(node)
    status = lab.up()  # waits until the thawed cluster is healthy again
    assert sorted(m["role"] for m in status["members"]) == ["leader", "replica", "sync_standby"]
    assert all(m["state"] in ("running", "streaming") for m in status["members"])


def test_timing_chosen_on_a_running_lab_reaches_patronis_dynamic_config(lab: Lab) -> None:
    env = {**os.environ, "PGHA_LAB_DIR": str(lab.root)}
    assert {k: lab.dynamic_config()[k] for k in ("ttl", "loop_wait", "retry_timeout")} == asdict(LAB_TIMING)
    try:
        up = subprocess.run(
            [sys.executable, "-m", "pgha", "lab", "up", "--ttl", "26", "--loop-wait", "3"],
            env=env,
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )
        assert up.returncode == 0, up.stderr
        wanted = {"ttl": 26, "loop_wait": 3, "retry_timeout": LAB_TIMING.retry_timeout}
        # GET /config: what every member's HA loop reads from etcd
        assert {k: lab.dynamic_config()[k] for k in wanted} == wanted
        # remembered in the lab directory: a new Lab object (as a drill or a restart makes) uses it
        assert asdict(Lab(root=lab.root, report=lambda _line: None).timing) == wanted
        status = subprocess.run(
            [sys.executable, "-m", "pgha", "lab", "status", "--json"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        shown = json.loads(status.stdout)
        assert shown["timing"] == wanted and shown["timing_in_dcs"] == wanted
    finally:
        lab.set_timing(LAB_TIMING)
    assert {k: lab.dynamic_config()[k] for k in ("ttl", "loop_wait", "retry_timeout")} == asdict(LAB_TIMING)


def test_lab_up_puts_back_every_setting_the_template_declares_and_keeps_the_others(lab: Lab) -> None:
    env = {**os.environ, "PGHA_LAB_DIR": str(lab.root)}
    declared = dynamic_config(lab.cluster())
    # an operator's edits: two declared settings changed, one the template does not declare added
    lab.reconcile_dynamic_config(
        {
            "maximum_lag_on_failover": 1234567,
            "check_timeline": True,
            "postgresql": {"parameters": {"wal_keep_size": "256MB"}},
        }
    )
    wait_for("the edits in etcd", lambda: lab.dynamic_config()["maximum_lag_on_failover"] == 1234567)
    try:
        up = subprocess.run(
            [sys.executable, "-m", "pgha", "lab", "up"],
            env=env,
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )
        assert up.returncode == 0, up.stderr
        assert (
            "applied to Patroni's dynamic config (PATCH /config): maximum_lag_on_failover, "
            "postgresql.parameters.wal_keep_size"
        ) in up.stdout
        wait_for("the declared values back in etcd", lambda: config_patch(lab.dynamic_config(), declared) == {})
        assert lab.dynamic_config()["check_timeline"] is True, "a setting the template does not declare is kept"
    finally:
        lab.reconcile_dynamic_config({"check_timeline": None})  # Patroni deletes a key PATCHed to null


@mock_aws
def test_post_deploy_hook_brings_patronis_settings_to_the_stacks_through_the_rest_api(
    lab: Lab, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The Lambda handler as `pulumi up` invokes it on the Patroni engine, against the lab's real members:
    migrations (already applied by `lab up`), then the dynamic config through a member that answers."""
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    secrets = lab.secrets()
    client = boto3.client("secretsmanager", region_name="eu-west-1")
    stored = {"username": lab.users.superuser, "password": secrets.superuser, SECRET_JSON_KEYS.restapi: secrets.restapi}
    arn = client.create_secret(Name="pgha-lab-credentials", SecretString=json.dumps(stored))["ARN"]
    wanted = {**dynamic_config(lab.cluster()), "maximum_lag_on_failover": 2097152}
    target = {
        "urls": ["https://127.0.0.1:1", *(f"https://{a}:{lab.ports.restapi}" for a in lab.addresses)],
        "caCert": (lab.admin_dir / "ca.crt").read_text(),
        "dynamicConfig": wanted,
        "user": lab.users.restapi,
        "passwordKey": SECRET_JSON_KEYS.restapi,
    }
    event = {
        "host": lab.leader().host,
        "port": lab.ports.postgres,
        "database": DATABASE,
        "secretArn": arn,
        "sslmode": "require",
        "patroni": target,
    }
    try:
        result = handler(event)
        assert result["applied"] == [] and result["alreadyApplied"], "lab up applied the schema"
        assert result["patroniConfigChanged"] == ["maximum_lag_on_failover"]
        wait_for("the stack's value in etcd", lambda: lab.dynamic_config()["maximum_lag_on_failover"] == 2097152)
        # a wrong REST API password changes nothing and says which member refused it
        wrong = client.create_secret(
            Name="pgha-lab-wrong", SecretString=json.dumps({**stored, SECRET_JSON_KEYS.restapi: "not-it"})
        )["ARN"]
        with pytest.raises(DynamicConfigError, match=rf"https://{lab.addresses[0]}:8008: HTTP 401"):
            patroni_dynamic_config({**target, "dynamicConfig": {**wanted, "maximum_lag_on_failover": 1}}, wrong)
        assert lab.dynamic_config()["maximum_lag_on_failover"] == 2097152
        assert secrets.restapi not in capsys.readouterr().out
    finally:
        lab.reconcile_dynamic_config()
    wait_for(
        "the template's value back",
        lambda: (
            lab.dynamic_config()["maximum_lag_on_failover"] == dynamic_config(lab.cluster())["maximum_lag_on_failover"]
        ),
    )


def test_lab_nodes_booted_through_the_node_bootstrap_with_tls_everywhere(lab: Lab) -> None:
    for index in (1, 2, 3):
        node = lab.node_dir(f"node{index}")
        assert json.loads((node / "node.json").read_text())["aws"]["endpoint_url"].startswith("https://127.0.0.1:")
        assert oct((node / "patroni.env").stat().st_mode & 0o777) == "0o600"
    assert lab._pid("aws", "moto"), "moto outlives `lab up`, recorded by pid"
    # etcd refuses a client without a certificate from the lab CA
    import ssl
    import urllib.request

    anonymous = ssl.create_default_context(cafile=str(lab.admin_dir / "ca.crt"))
    with pytest.raises(OSError):
        urllib.request.urlopen(f"https://{lab.addresses[0]}:2379/health", timeout=5, context=anonymous)
    # PostgreSQL's certificate verifies against the lab CA
    verified = ConnectionSettings(
        hosts=((lab.addresses[0], 5432),),
        database="postgres",
        user="postgres",
        password=lab.secrets().superuser,
        sslmode="verify-full",
        sslrootcert=str(lab.admin_dir / "ca.crt"),
    )
    connect(verified).close()
    # patronictl works as is through `pgha lab ctl`
    env = {**os.environ, "PGHA_LAB_DIR": str(lab.root)}
    ctl = subprocess.run(
        [sys.executable, "-m", "pgha", "lab", "ctl", "list"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert ctl.returncode == 0, ctl.stderr
    assert all(f"node{i}" in ctl.stdout for i in (1, 2, 3)) and lab.secrets().restapi not in ctl.stdout


def test_backup_to_s3_on_moto_and_point_in_time_restore(lab: Lab) -> None:
    writer = connect(lab.settings(), writable=True)
    writer.run("CREATE TABLE IF NOT EXISTS pitr_check (id int, note text)")
    writer.run("INSERT INTO pitr_check VALUES (1, 'before the backup')")
    label = lab.backup("full")
    assert label.endswith("F")
    writer.run("INSERT INTO pitr_check VALUES (2, 'after the backup, before the target')")
    time.sleep(1.5)
    target = writer.run("SELECT clock_timestamp()")[0][0]
    time.sleep(1.5)
    writer.run("INSERT INTO pitr_check VALUES (3, 'after the target')")
    writer.run("SELECT pg_switch_wal()")
    writer.close()
    wait_for("WAL archived to the S3 repository", lambda: _archived_past(lab, target), timeout=60)

    restored = lab.root / "pitr-restore"
    lab.restore_point_in_time(target, restored)
    port = free_port("127.0.0.1")
    socket_dir = lab.root / "pitr-run"
    socket_dir.mkdir(exist_ok=True)
    give_to_service_user(socket_dir)
    bindir = postgres_bindir()
    server = subprocess.Popen(
        as_service_user(
            [
                str(bindir / "postgres"),
                "-D",
                str(restored),
                "-p",
                str(port),
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                f"unix_socket_directories={socket_dir}",
                "-c",
                "hba_file=" + str(restored / "pg_hba.conf"),
            ]
        ),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        settings = ConnectionSettings(
            hosts=(("127.0.0.1", port),),
            database="app",
            user="postgres",
            password=lab.secrets().superuser,
            sslmode="require",
        )

        def promoted() -> bool:
            try:
                conn = connect(settings)
            except Exception:
                return False
            try:
                return conn.run("SELECT pg_is_in_recovery()")[0][0] is False
            finally:
                conn.close()

        wait_for("the restored copy to replay and promote", promoted, timeout=120)
        conn = connect(settings)
        assert [row[0] for row in conn.run("SELECT id FROM pitr_check ORDER BY id")] == [1, 2]
        conn.close()
    finally:
        server.terminate()
        server.wait(timeout=60)


def test_backup_waits_while_the_asynchronous_archiver_holds_the_stanza_lock(lab: Lab) -> None:
    """stanza-create needs the archive lock that pgBackRest's async archiver takes whenever it pushes WAL
    (`make up` after a moto restart collided with it): the lab's backup waits the lock out."""
    leader = lab.leader().name
    pgbackrest_dir = lab.node_dir(leader) / "pgbackrest"
    lock = pgbackrest_dir / "lock" / f"{CLUSTER_NAME}-archive.lock"
    log = pgbackrest_dir / "log" / f"{CLUSTER_NAME}-stanza-create.log"
    refusals_before = log.read_text().count("[050]") if log.exists() else 0
    descriptor = os.open(lock, os.O_RDWR | os.O_CREAT, 0o640)
    if running_as_root():
        os.chown(lock, *service_user_ids())
    fcntl.flock(descriptor, fcntl.LOCK_EX)  # as pgBackRest's own lock does
    releaser = threading.Timer(3.0, lambda: fcntl.flock(descriptor, fcntl.LOCK_UN))
    releaser.start()
    try:
        label = lab.backup("incr")
    finally:
        releaser.join()
        os.close(descriptor)
    assert label.endswith(("I", "F"))
    assert log.read_text().count("[050]") > refusals_before


def _archived_past(lab: Lab, target: object) -> bool:
    """The leader's archiver has pushed the segment written after the target."""
    conn = connect(lab.settings(), writable=True)
    try:
        last = conn.run("SELECT last_archived_time FROM pg_stat_archiver")[0][0]
        return last is not None and last > target
    finally:
        conn.close()


def test_a_node_that_lost_its_etcd_data_is_removed_and_added_again(lab: Lab) -> None:
    """A lost data volume (EC2) or a wiped directory: etcd refuses an empty member into the running cluster
    ("member ... has already been bootstrapped") and the node would stay out of the DCS for good; the node
    bootstrap replaces the member before etcd starts, and the node rejoins with a new member ID."""
    node = lab.nodes()[2]
    before = {m["name"]: m["ID"] for m in lab.etcd_members()}
    lab.kill_etcd(node.name)
    shutil.rmtree(node.etcd_data_dir)
    lab.up()
    after = {m["name"]: m["ID"] for m in lab.etcd_members()}
    assert set(after) == set(before) == {n.name for n in lab.nodes()}
    assert after[node.name] != before[node.name], "removed and added, not restarted empty"
    assert all(after[name] == before[name] for name in before if name != node.name)
    assert lab.etcd_healthy()
    assert sorted(roles(lab).values()) == ["leader", "replica", "sync_standby"]


def test_the_postmaster_patroni_leaves_to_init_is_the_child_of_the_nodes_subreaper(lab: Lab) -> None:
    """Patroni starts PostgreSQL the way pg_ctl does and leaves the postmaster to init, which must reap it
    when it exits: systemd does at once on EC2, this VM's PID 1 only every ~1.8 s (Patroni's graceful demote
    and its crash handling waited on the zombie). Each lab Patroni runs under tini, a child subreaper."""
    for node in ("node1", "node2", "node3"):
        reaper = psutil.Process(lab.running()[node]["patroni"]).parent()
        assert os.path.basename(reaper.cmdline()[0]) == "tini", reaper.cmdline()
        assert psutil.Process(lab.postmaster_pid(node)).ppid() == reaper.pid, f"{node}: postmaster left to PID 1"
    # under tini Patroni still sees a crashed postmaster go and starts PostgreSQL again
    replica = next(m.name for m in lab.members() if m.role == "replica")
    killed = lab.kill_postgres(replica)
    assert killed is not None
    wait_for(f"{replica}'s killed postmaster reaped", lambda: not psutil.pid_exists(killed), timeout=30)
    wait_for(
        f"{replica} streaming again",
        lambda: any(
            m.name == replica and m.state == "streaming" and lab.postmaster_pid(replica) not in (None, killed)
            for m in lab.members()
        ),
    )


def test_down_leaves_no_process_behind(lab: Lab) -> None:
    lab.down()
    assert lab.lab_processes() == []
    assert not any(port_in_use(a, p) for a in lab.addresses for p in (5432, 8008, 2379, 2380))
    assert lab._pid("aws", "moto") is None
    assert lab.members() == []
