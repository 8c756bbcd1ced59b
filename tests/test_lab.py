"""The real local HA lab: 3 x (etcd + Patroni + PostgreSQL) on 127.0.1.1-3, failover under write load."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable

import pytest

from pgha.connect import ConnectionSettings, connect
from pgha.drill.probe import WriteProbe, missing_acknowledged
from pgha.lab.cluster import Lab, LabError
from pgha.local import port_in_use

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
    return ConnectionSettings(hosts=((address, 5432),), database=base.database, user=base.user,
                              password=base.password, sslmode="require")


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
        wait_for(f"the row on {member.name}", lambda c=conn: c.run(
            "SELECT count(*) FROM pg_tables WHERE tablename = 'lab_check'")[0][0] == 1
            and c.run("SELECT count(*) FROM lab_check")[0][0] == 1, timeout=30)
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
    wait_for("the old leader to stream again", lambda: all(
        m.state in ("running", "streaming") for m in lab.members()) and len(lab.members()) == 3)


def test_kill_leader_under_write_load_fails_over_without_loss_and_rejoins(lab: Lab) -> None:
    wait_for("a synchronous standby", lambda: "sync_standby" in roles(lab).values())
    old_leader = lab.leader()
    old_timeline = old_leader.timeline
    probe = WriteProbe(lab.settings())
    probe.prepare()
    probe.start()
    time.sleep(2)
    lab.kill_node(old_leader.name)

    wait_for("a new leader after kill -9",
             lambda: lab.leader().name != old_leader.name and lab.leader().state == "running", timeout=90)
    acknowledged_at_failover = len(probe.report.acknowledged)
    wait_for("writes to resume through the writer DSN",
             lambda: len(probe.report.acknowledged) > acknowledged_at_failover + 20, timeout=60)
    report = probe.stop()
    assert report.failures > 0, "the probe should have seen the leader disappear"
    assert missing_acknowledged(lab.settings(), report.acknowledged) == []
    # Patroni reports the new timeline once the promoted node has checkpointed
    wait_for("the new leader's timeline to advance", lambda: lab.leader().timeline > old_timeline, timeout=60)

    lab.up()  # restarts the killed node's Patroni, which rewinds and rejoins
    wait_for(f"{old_leader.name} to rejoin as a replica", lambda: roles(lab).get(old_leader.name) in (
        "replica", "sync_standby") and all(m.state in ("running", "streaming") for m in lab.members()), timeout=90)
    rejoined = node_settings(lab, old_leader.host)
    conn = connect(rejoined)
    assert conn.run("SELECT pg_is_in_recovery()")[0][0] is True
    conn.close()


def test_cli_status_and_switchover_drive_the_same_lab(lab: Lab) -> None:
    env = {**os.environ, "PGHA_LAB_DIR": str(lab.root)}
    status = subprocess.run([sys.executable, "-m", "pgha", "lab", "status", "--json"], env=env, capture_output=True,
                            text=True, timeout=60, check=False)
    assert status.returncode == 0, status.stderr
    members = json.loads(status.stdout)["members"]
    assert {m["name"] for m in members} == {"node1", "node2", "node3"}
    assert lab.secrets().superuser not in status.stdout
    wait_for("a healthy cluster", lambda: all(m.state in ("running", "streaming") for m in lab.members())
             and "sync_standby" in roles(lab).values())
    old = lab.leader().name
    switched = subprocess.run([sys.executable, "-m", "pgha", "lab", "switchover"], env=env, capture_output=True,
                              text=True, timeout=120, check=False)
    assert switched.returncode == 0, switched.stderr
    assert f"switchover: {old} -> " in switched.stdout and lab.leader().name != old


def test_down_leaves_no_process_behind(lab: Lab) -> None:
    lab.down()
    assert lab.lab_processes() == []
    assert not any(port_in_use(a, p) for a in lab.addresses for p in (5432, 8008, 2379, 2380))
    assert lab.members() == []
