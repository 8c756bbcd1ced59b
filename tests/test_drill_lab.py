"""Every lab drill, for real, on one 3-node Patroni + etcd lab (rounds=1), plus the drill lock and the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from pgha.connect import connect
from pgha.drill.engine import DrillResult, Targets, run_drill
from pgha.drill.lab import BASELINE_S, LabDrill
from pgha.drill.report import write_report
from pgha.lab.cluster import Lab, LabError
from pgha.node.health import health_problems as healthy

pytestmark = pytest.mark.lab


def run(lab: Lab, scenario: str, **options: str) -> DrillResult:
    drill = LabDrill(lab, scenario, **options)
    drill.prepare()
    with lab.drill_lock():
        return run_drill(drill, 1, Targets(), say=lambda _line: None)


def checks(result: DrillResult) -> dict[str, bool]:
    return {c.name: c.ok for c in result.rounds[0].checks}


def assert_passed_and_restored(lab: Lab, result: DrillResult) -> None:
    passed, reasons = result.verdict()
    assert passed, reasons
    assert result.unrestored == []
    assert healthy(lab.members()) == [], "the drill leaves three members, one leader, streaming replicas"
    assert not lab.drill_lock_file.exists()


def test_switchover_loses_nothing_and_the_old_leader_follows(lab: Lab, tmp_path: Path) -> None:
    old = lab.leader().name
    result = run(lab, "switchover")
    assert_passed_and_restored(lab, result)
    rnd = result.rounds[0]
    assert rnd.facts["leader_after"] != old and lab.leader().name != old
    assert rnd.lost == [] and rnd.rpo_s == 0.0 and rnd.rto_s is not None
    assert {"fault injected", "new leader", "writes stopped", "writes back", "old node rejoined"} <= {
        e.name for e in rnd.events
    }
    paths = write_report(result, tmp_path)
    data = json.loads(paths["json"].read_text())
    assert data["rounds"][0]["lost_commits"] == [] and data["verdict"]["passed"] is True
    assert paths["png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_kill_leader_elects_a_new_leader_and_the_old_one_rejoins_rewound(lab: Lab) -> None:
    old = lab.leader().name
    result = run(lab, "kill-leader")
    assert_passed_and_restored(lab, result)
    rnd = result.rounds[0]
    assert rnd.facts["leader_after"] != old
    assert checks(result)[f"{old} rejoined as a streaming replica"]
    assert rnd.facts["old_leader_rewound"] is True, "a killed leader comes back through pg_rewind"
    assert rnd.lost == []
    # the kill waited a random part of a loop_wait after the baseline, so rounds hit any phase of Patroni's loop
    delay = rnd.facts["fault_phase_delay_s"]
    assert 0 <= delay <= lab.timing.loop_wait
    killed_at = next(e.at for e in rnd.events if e.name == "fault injected")
    assert killed_at - rnd.commits[0].at >= BASELINE_S + delay - 0.5


def test_kill_leader_with_reclone_brings_the_old_leader_back_without_pg_rewind(lab: Lab) -> None:
    old = lab.leader().name
    result = run(lab, "kill-leader", rejoin="reclone")
    assert_passed_and_restored(lab, result)
    rnd = result.rounds[0]
    assert rnd.facts["leader_after"] != old
    assert checks(result)[f"{old} rejoined as a streaming replica"]
    assert rnd.facts["old_leader_rewound"] is False, "its data directory was deleted: re-cloned, not rewound"
    assert "old data directory deleted" in {e.name for e in rnd.events}
    assert rnd.lost == []


def test_crash_leader_restarts_postgres_or_fails_over_and_loses_nothing(lab: Lab) -> None:
    old = lab.leader()
    result = run(lab, "crash-leader")
    assert_passed_and_restored(lab, result)
    rnd = result.rounds[0]
    facts = rnd.facts
    assert rnd.lost == [] and rnd.rpo_s == 0.0 and rnd.rto_s is not None
    assert isinstance(facts["restarted_in_place"], bool)
    assert facts["restarted_in_place"] == (facts["leader_after"] == old.name)
    assert facts["postmaster_pid_before"] != facts["postmaster_pid_after"]
    assert facts["postmaster_pid_after"] == lab.postmaster_pid(old.name), "the old node runs PostgreSQL again"
    assert isinstance(facts["patroni_noticed_s"], float) and facts["patroni_noticed_s"] >= 0
    events = {e.name for e in rnd.events}
    assert "fault injected" in events and "Patroni noticed the crash" in events
    if facts["restarted_in_place"]:
        assert "PostgreSQL restarted in place" in events
        assert lab.leader().timeline == old.timeline, "a crash restart keeps the timeline"
    else:
        assert "new leader" in events and checks(result)[f"{old.name} rejoined as a streaming replica"]


def test_cli_refuses_rejoin_for_a_scenario_other_than_kill_leader(lab: Lab) -> None:
    leader = lab.leader().name
    env = {**os.environ, "PGHA_LAB_DIR": str(lab.root)}
    cli = subprocess.run(
        [sys.executable, "-m", "pgha", "drill", "lab", "switchover", "--rejoin", "reclone"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert cli.returncode == 2, cli.stdout + cli.stderr
    assert "--rejoin" in cli.stderr and "kill-leader" in cli.stderr
    assert lab.leader().name == leader and not lab.drill_lock_file.exists(), "refused before changing anything"


def test_frozen_leader_never_acknowledges_after_the_new_leader(lab: Lab) -> None:
    old = lab.leader()
    result = run(lab, "freeze-leader")
    assert_passed_and_restored(lab, result)
    rnd = result.rounds[0]
    assert checks(result)["the old leader acknowledged no write after the new leader's first"]
    assert checks(result)["the stale client's write exists nowhere after the rejoin"]
    assert rnd.facts["first_commit_on_new_leader"] is not None
    assert {c.server for c in rnd.commits} >= {old.host}, "the probe wrote to the old leader before the freeze"
    assert lab.frozen_nodes() == []


def test_kill_replica_keeps_the_leader_and_writes(lab: Lab) -> None:
    leader = lab.leader().name
    result = run(lab, "kill-replica")
    assert_passed_and_restored(lab, result)
    assert checks(result)["the leader stayed"] and lab.leader().name == leader
    assert result.rounds[0].lost == []


def test_etcd_member_loss_keeps_the_leader(lab: Lab) -> None:
    leader = lab.leader().name
    result = run(lab, "etcd-member-loss")
    assert_passed_and_restored(lab, result)
    assert checks(result)["the leader stayed"] and lab.leader().name == leader
    assert lab.etcd_healthy()


def test_restore_pitr_brings_back_exactly_the_commits_before_the_target(lab: Lab) -> None:
    result = run(lab, "restore-pitr")
    assert_passed_and_restored(lab, result)
    facts = result.rounds[0].facts
    assert facts["restored_rows"] == facts["commits_before"] > 0 and facts["commits_after"] > 0
    assert not list(lab.root.glob("drill-pitr-*")), "the scratch instance is removed"


def test_restore_point_in_time_refuses_a_time_without_backup_or_in_the_future(lab: Lab, tmp_path: Path) -> None:
    with pytest.raises(LabError, match="no base backup of the lab ended before"):
        lab.restore_point_in_time(datetime.now(UTC) - timedelta(days=1), tmp_path / "data")
    with pytest.raises(LabError, match="in the future"):
        lab.restore_point_in_time(datetime.now(UTC) + timedelta(hours=1), tmp_path / "data")
    assert not (tmp_path / "data").exists()


def test_lab_up_and_drills_refuse_while_another_drill_holds_the_lock(lab: Lab) -> None:
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        import psutil

        lab.drill_lock_file.write_text(f"{holder.pid} {psutil.Process(holder.pid).create_time()}\n")
        with pytest.raises(LabError, match=f"a drill \\(pid {holder.pid}\\) is using the lab"):
            lab.up()
        env = {**os.environ, "PGHA_LAB_DIR": str(lab.root)}
        cli = subprocess.run(
            [sys.executable, "-m", "pgha", "drill", "lab", "switchover"],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert cli.returncode == 2 and f"another drill (pid {holder.pid})" in cli.stderr
    finally:
        holder.kill()
        holder.wait()
    assert lab.drill_holder() is None, "a dead holder does not count"
    lab.up()
    lab.drill_lock_file.unlink()


def test_cli_reports_and_exits_1_when_a_target_is_missed(lab: Lab, tmp_path: Path) -> None:
    env = {**os.environ, "PGHA_LAB_DIR": str(lab.root)}
    result = subprocess.run(
        [sys.executable, "-m", "pgha", "drill", "lab", "switchover", "--max-rto", "0.001", "--report", str(tmp_path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    [path] = tmp_path.glob("lab-switchover-*.json")
    data = json.loads(path.read_text())
    assert data["verdict"]["passed"] is False
    assert any("RTO" in reason and "target 0.001 s" in reason for reason in data["verdict"]["reasons"])
    assert data["targets"]["max_rto_s"] == 0.001 and data["restored"] is True
    assert set(data["rounds"][0]) >= {"rto_s", "rpo_s", "lost_commits", "events", "checks"}
    assert path.with_suffix(".md").read_text().startswith("# Drill `switchover` on lab: FAILED")
    assert lab.secrets().superuser not in result.stdout + result.stderr


def write_wal(lab: Lab, table: str, megabytes: int) -> None:
    """About ``megabytes`` of WAL on the leader, in rows that do not compress."""
    conn = connect(lab.settings(), writable=True)
    try:
        conn.run(f"CREATE TABLE IF NOT EXISTS {table} (pad text)")
        conn.run(
            f"INSERT INTO {table} SELECT repeat(md5(g::text), 31) "  # noqa: S608 - the test's own names
            "FROM generate_series(1, :n) g",
            n=megabytes * 900,
        )
    finally:
        conn.close()


def test_a_rewound_old_leader_replays_from_the_s3_archive(lab: Lab) -> None:
    """A rewound node replays from the last checkpoint both timelines share. The members keep only a small
    wal_keep_size, so that WAL comes from the archive: restore_command (pgBackRest archive-get from S3)
    must work on a node that has just been rewound, with the credentials Patroni's environment gives it."""
    conn = connect(lab.settings(), writable=True)
    try:
        conn.run("CHECKPOINT")
        shared = conn.run("SELECT pg_walfile_name(redo_lsn) FROM pg_control_checkpoint()")[0][0]
    finally:
        conn.close()
    write_wal(lab, "wal_before_the_kill", 50)
    old = lab.leader().name
    log = lab.node_dir(old) / "patroni.log"
    offset = log.stat().st_size
    result = run(lab, "kill-leader")
    assert_passed_and_restored(lab, result)
    assert result.rounds[0].facts["old_leader_rewound"] is True
    recovery = log.read_bytes()[offset:].decode(errors="replace")
    assert f'restored log file "{shared}" from archive' in recovery
