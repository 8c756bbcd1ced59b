"""The write probe against a real PostgreSQL that stops answering (SIGSTOP), as a frozen leader does."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from pgha.drill.engine import DrillResult, Round, Targets
from pgha.drill.probe import Commit, ProbeReport, WriteProbe, lost_seconds, missing_acknowledged
from pgha.drill.report import report_dir_problem, write_report
from pgha.local import PostgresServer


@pytest.fixture
def server() -> Iterator[PostgresServer]:
    server = PostgresServer().start()
    yield server
    server.stop()


def freeze(server: PostgresServer, sig: signal.Signals) -> None:
    postmaster = psutil.Process(int((server.datadir / "postmaster.pid").read_text().split()[0]))
    for proc in [postmaster, *postmaster.children(recursive=True)]:
        with contextlib.suppress(ProcessLookupError):  # a backend that just ended
            os.kill(proc.pid, sig)


def test_a_frozen_server_is_an_outage_not_a_hung_probe(server: PostgresServer) -> None:
    probe = WriteProbe(server.settings(), timeout=2)
    probe.prepare()
    probe.start()
    deadline = time.monotonic() + 30
    while len(probe.report.commits) < 10 and time.monotonic() < deadline:
        time.sleep(0.1)
    freeze(server, signal.SIGSTOP)
    try:
        deadline = time.monotonic() + 30
        while not probe.report.errors and time.monotonic() < deadline:
            time.sleep(0.2)
        errors_while_frozen = list(probe.report.errors)
    finally:
        freeze(server, signal.SIGCONT)
    frozen_at = len(probe.report.commits)
    deadline = time.monotonic() + 30
    while len(probe.report.commits) < frozen_at + 10 and time.monotonic() < deadline:
        time.sleep(0.1)
    report = probe.stop()
    assert errors_while_frozen, "a write on a frozen server must fail (read timeout), not wait for the thaw"
    assert "timed out" in errors_while_frozen[0][1]
    assert len(report.commits) >= frozen_at + 10, "writes resume once the server answers again"
    assert missing_acknowledged(server.settings(), report.acknowledged) == []
    gap = report.longest_gap()
    assert gap is not None and gap[0] < errors_while_frozen[0][0] < gap[1]


def test_lost_seconds_spans_from_the_last_surviving_commit_to_the_newest_lost() -> None:
    commits = [Commit(i, 100.0 + i, "a") for i in range(1, 11)]
    assert lost_seconds(commits, []) == 0.0
    assert lost_seconds(commits, [8, 9, 10]) == 3.0  # commit 7 (t=107) survived; 10 (t=110) was lost
    assert lost_seconds(commits, [1]) == 0.0  # nothing survived before it: the span of what was lost


def wait_for_commits(probe: WriteProbe, count: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while len(probe.report.commits) < count and time.monotonic() < deadline:
        time.sleep(0.05)


def test_writes_still_down_when_the_probe_stops_are_no_rto_and_fail_the_verdict(
    server: PostgresServer, tmp_path: Path
) -> None:
    """Steady commits, then the server freezes and the probe stops before it thaws: the drill must not report the
    50 ms between two early commits as its RTO, nor pass."""
    rnd = Round(1)
    probe = WriteProbe(server.settings(), timeout=1)
    probe.prepare()
    probe.start()
    wait_for_commits(probe, 40)
    freeze(server, signal.SIGSTOP)
    try:
        time.sleep(3)
        report = probe.stop()
    finally:
        freeze(server, signal.SIGCONT)
    rnd.measure_probe(report, [], noise_s=0.2)
    assert rnd.rto_s is None, "an outage that had not ended has no measured RTO"
    assert rnd.not_recovered_s is not None and rnd.not_recovered_s >= 3, "at least the frozen stretch"
    assert rnd.rto_window is not None and rnd.rto_window[0] == report.commits[-1].at
    assert {"writes stopped", "writes not back"} <= {e.name for e in rnd.events}
    result = DrillResult("lab", "freeze", Targets(max_rto_s=25), rounds=[rnd])
    passed, reasons = result.verdict()
    assert not passed
    assert reasons == [
        f"round 1: writes not back when the measurement ended: no acknowledged commit for "
        f"{rnd.not_recovered_s:.2f} s (RTO at least that, not measured)"
    ]
    paths = write_report(result, tmp_path)
    [row] = json.loads(paths["json"].read_text())["rounds"]
    assert row["rto_s"] is None and row["not_recovered_s"] == rnd.not_recovered_s
    assert f"| 1 | not recovered (≥ {rnd.not_recovered_s:.2f} s) |" in paths["markdown"].read_text()


def test_an_outage_before_the_first_commit_counts(server: PostgresServer) -> None:
    """The probe starts while the server does not answer: the wait for its first commit is the outage."""
    probe = WriteProbe(server.settings(), timeout=1)
    probe.prepare()
    freeze(server, signal.SIGSTOP)
    try:
        probe.start()
        time.sleep(2.5)
    finally:
        freeze(server, signal.SIGCONT)
    wait_for_commits(probe, 20)
    report = probe.stop()
    rnd = Round(1)
    rnd.measure_probe(report, [], noise_s=0.2)
    assert rnd.rto_s is not None and rnd.rto_s >= 2.5
    assert rnd.not_recovered_s is None
    assert rnd.rto_window == (report.started, report.commits[0].at)


SPAN = "from the start of the restore until the scratch instance was promoted"


def test_restore_pitr_rpo_is_lost_seconds_like_every_other_drill() -> None:
    """One commit acknowledged before the target is missing from the restored copy: its RPO is the writes it spans
    since the newest one that survived (50 ms), not 0 s."""
    commits = [Commit(i, 100.0 + i * 0.05, "a") for i in range(1, 41)]
    rnd = Round(1)
    rnd.measure_restore(ProbeReport(commits=commits), [40], started=110.0, ready=111.5, span=SPAN)
    assert rnd.lost == [40] and rnd.rpo_s == lost_seconds(commits, [40]) == 0.05
    everything = Round(2)
    everything.measure_restore(ProbeReport(commits=commits), [], started=110.0, ready=111.5, span=SPAN)
    assert everything.rpo_s == 0.0 and everything.rto_s == 1.5


@pytest.mark.parametrize(
    ("targets", "named"),
    [
        ({"max_rto_s": float("nan")}, "max_rto_s: nan is not a finite number"),
        ({"max_rpo_s": float("inf")}, "max_rpo_s: inf is not a finite number"),
        ({"max_lost": -1}, "max_lost: -1 is negative"),
    ],
)
def test_targets_refuse_what_no_drill_can_be_judged_against(targets: dict[str, float], named: str) -> None:
    with pytest.raises(ValueError, match=f"drill targets refused: {named}"):
        Targets(**targets)


def test_a_report_never_writes_nan_as_json(tmp_path: Path) -> None:
    """json.dumps writes a NaN as NaN, which no JSON parser reads: the report refuses it instead."""
    rnd = Round(1)
    rnd.rto_s = float("nan")
    with pytest.raises(ValueError, match="not JSON compliant"):
        write_report(DrillResult("lab", "switchover", Targets(), rounds=[rnd]), tmp_path)


def test_a_report_directory_is_checked_without_creating_it(tmp_path: Path) -> None:
    assert report_dir_problem(tmp_path / "new" / "reports") is None
    assert not (tmp_path / "new").exists(), "a drill refused after the check leaves no directory behind"
    (tmp_path / "a-file").write_text("")
    assert report_dir_problem(tmp_path / "a-file") == f"{tmp_path / 'a-file'} is not a directory"
