"""The figures bench/ha.py and bench/soak.py report: percentiles, interleaving, verdicts, the comparison chart,
and `pgha lab up` refusing timing Patroni would adjust (no lab needed)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from pgha.drill.compare import at_least, at_most, interleave, percentile, ratio, summarize, verdict_table
from pgha.drill.engine import DrillResult, Round, Targets
from pgha.drill.probe import Commit, ProbeReport
from pgha.drill.report import render_comparison_png
from pgha.lab.cluster import LAB_TIMING, Lab
from pgha.node.render import PatroniTiming

PROJECT_DIR = Path(__file__).resolve().parents[1]


def test_percentiles_interpolate_between_ranks() -> None:
    assert percentile([10, 20, 30, 40, 50], 50) == 30
    assert percentile([1, 2, 3, 4, 100], 95) == pytest.approx(80.8)
    assert percentile([7.5], 95) == 7.5
    assert percentile([], 50) is None
    assert summarize([3.0, 1.0, 2.0]) == {"n": 3, "p50": 2.0, "p95": 2.9, "min": 1.0, "max": 3.0}
    with pytest.raises(ValueError, match="outside 0-100"):
        percentile([1], 101)


def test_interleaving_flips_the_order_every_round_so_drift_hits_both_sides() -> None:
    order = interleave(("tuned", "defaults"), 4)
    assert order == [
        (1, "tuned"),
        (1, "defaults"),
        (2, "defaults"),
        (2, "tuned"),
        (3, "tuned"),
        (3, "defaults"),
        (4, "defaults"),
        (4, "tuned"),
    ]
    # every side has the same mean position in the run: a linear drift adds the same to both
    positions = {side: [i for i, (_n, s) in enumerate(order) if s == side] for side in ("tuned", "defaults")}
    assert sum(positions["tuned"]) == sum(positions["defaults"])


def test_verdicts_miss_when_a_figure_is_missing_or_beyond_the_target() -> None:
    assert at_most("p95", 21.9, 22).met and not at_most("p95", 22.1, 22).met
    assert not at_most("p95", None, 22).met, "a figure that was not measured does not meet its target"
    assert at_least("speed-up", ratio(33.0, 20.0), 1.5).met
    assert not at_least("speed-up", ratio(28.0, 20.0), 1.5).met
    assert ratio(10.0, 0) is None and ratio(None, 1.0) is None
    rows = verdict_table([at_most("lost", 2, 0, unit="")])
    assert rows[-1] == "| lost | 2.00 | ≤ 0 | **MISSED** |"


def test_comparison_chart_is_a_png(tmp_path: Path) -> None:
    path = tmp_path / "bench.png"
    render_comparison_png(
        [
            ("kill -9", {"tuned": [19.5, 21.0, 20.2], "defaults": [33.1, 38.0]}),
            ("rejoin", {"rewind": [], "reclone": [30.0]}),
        ],
        path,
    )
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--ttl", "15"], "--ttl = 15: must be at least 20"),
        (["--loop-wait", "0"], "--loop-wait = 0: must be at least 1"),
        (
            ["--ttl", "30", "--loop-wait", "10", "--retry-timeout", "30"],
            "--loop-wait + 2 * --retry-timeout = 70 exceeds --ttl = 30",
        ),
        (["--retry-timeout", "10"], "--loop-wait + 2 * --retry-timeout = 22 exceeds --ttl = 20"),  # with the lab's ttl
    ],
)
def test_lab_up_refuses_timing_patroni_would_adjust_and_starts_nothing(
    tmp_path: Path, args: list[str], message: str
) -> None:
    root = tmp_path / "lab"
    result = subprocess.run(
        [sys.executable, "-m", "pgha", "lab", "up", *args],
        cwd=PROJECT_DIR,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "PGHA_LAB_DIR": str(root)},
    )
    assert result.returncode == 2, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], result.stderr
    assert not root.exists(), "nothing started, nothing written"


def test_the_lab_remembers_its_timing_and_defaults_to_the_tuned_one(tmp_path: Path) -> None:
    lab = Lab(root=tmp_path, report=lambda _line: None)
    assert lab.timing == LAB_TIMING
    chosen = PatroniTiming(ttl=30, loop_wait=10, retry_timeout=10)
    assert lab.set_timing(chosen) is False, "no running lab: nothing to patch"
    again = Lab(root=tmp_path, report=lambda _line: None)
    assert again.timing == chosen and again.cluster().timing == chosen  # restarts render it into bootstrap.dcs
    (tmp_path / "timing.json").write_text('{"ttl": 10, "loop_wait": 2, "retry_timeout": 5}')
    assert Lab(root=tmp_path, report=lambda _line: None).timing == LAB_TIMING, "a broken file is not used"


def test_a_killed_benchmark_still_removes_its_lab(tmp_path: Path) -> None:
    """SIGTERM (a CI timeout, `kill`) must reach the lab's removal, not leave the lab running; a second
    SIGTERM during the removal must not cut it short."""
    removed = tmp_path / "lab removed"
    script = (
        "import os, signal, time\n"
        "from pgha.lab.cluster import removed_on_exit\n"
        "class FakeLab:\n"
        "    def down(self, purge):\n"
        "        os.kill(os.getpid(), signal.SIGTERM); time.sleep(0.5)\n"
        f"        open({str(removed)!r}, 'w').write(str(purge))\n"
        "with removed_on_exit(FakeLab()):\n"
        "    print('ready', flush=True); time.sleep(60)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", script], cwd=PROJECT_DIR, stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 128 + signal.SIGTERM
    assert removed.read_text() == "True", "the lab's removal ran to its end, with its data"


def measured_round(number: int, report: ProbeReport) -> Round:
    """A drill round measured from a write probe's report, as the lab drills measure theirs."""
    rnd = Round(number)
    rnd.measure_probe(report, [], noise_s=0.2)
    return rnd


def steady_commits(start: float, seconds: float, first_id: int = 1) -> list[Commit]:
    """A commit every 50 ms for ``seconds``, from ``start``."""
    return [Commit(first_id + i, start + i * 0.05, "a") for i in range(int(seconds / 0.05))]


def recovered(start: float, outage_s: float) -> ProbeReport:
    """2 s of commits, ``outage_s`` without one, 2 s of commits again; the probe stopped while writing."""
    commits = steady_commits(start, 2) + steady_commits(start + 2 + outage_s, 2, first_id=1000)
    return ProbeReport(commits=commits, started=start, stopped=commits[-1].at + 0.05)


def not_back(start: float, open_s: float) -> ProbeReport:
    """2 s of commits, then none until the probe stopped ``open_s`` later, its last write failed."""
    commits = steady_commits(start, 2)
    return ProbeReport(
        commits=commits, started=start, stopped=commits[-1].at + open_s, failing_since=commits[-1].at + 0.1
    )


def test_bench_leaves_rounds_whose_writes_did_not_come_back_out_of_the_rto_figures_and_says_so() -> None:
    from bench.ha import PARTS, TIMINGS, markdown, round_row, summary

    start = 1_800_000_000.0
    reports = [recovered(start, 19.0), recovered(start, 21.0), not_back(start, 60.0)]
    rows = [
        round_row(DrillResult("lab", "kill-leader", Targets(), rounds=[measured_round(1, r)]), "tuned", n)
        for n, r in enumerate(reports, 1)
    ]
    data = {
        **{part: [] for part in PARTS},
        "kill": rows,
        "data_mb": 1024,
        "after_mb": 100,
        "quick": False,
        "started_at": "2026-12-01T00:00:00+00:00",
        "machine": {
            "cpu": "x",
            "cores": 2,
            "memory_gb": 4,
            "kernel": "6",
            "postgres": "17",
            "patroni": "4.1",
            "load_avg_at_start": [0.1],
        },
        "timings": {k: vars(v) for k, v in TIMINGS.items()},
    }
    figures, verdicts = summary(data)
    tuned = figures["leader_loss_rto_s"]["kill"]["tuned"]
    assert tuned["n"] == 2 and tuned["max"] == pytest.approx(21.05, abs=0.01), "the open 60 s is no RTO"
    assert figures["rounds_not_recovered"] == ["kill tuned round 3: ≥ 60.00 s"]
    assert {v.name: v.met for v in verdicts}["rounds with a failed check or abort"] is False
    text = markdown(data, figures, verdicts)
    assert "writes had not come back when the probe stopped (no RTO, left out of the figures above): 1" in text
    assert "| kill | tuned | 3 | not recovered (≥ 60.00) |" in text


def test_soak_counts_drills_whose_writes_did_not_come_back_and_uses_the_drills_rto_for_its_probe() -> None:
    from bench.soak import markdown, soak_probe_figures, summarize_soak

    start = 1_800_000_000.0
    rounds = [measured_round(1, recovered(start, 3.0)), measured_round(2, not_back(start, 40.0))]
    rows = [
        {
            "n": r.number,
            "scenario": "switchover",
            "rto_s": r.rto_s,
            "not_recovered_s": r.not_recovered_s,
            "lost_commits": 0,
            "passed": r.not_recovered_s is None,
            "reasons": [],
            "cluster_after": {"healthy": True, "members": []},
        }
        for r in rounds
    ]
    figures = summarize_soak(rows)["switchover"]
    assert figures["count"] == 2 and figures["not_recovered"] == 1
    assert figures["rto_s"]["n"] == 1 and figures["rto_s"]["max"] == pytest.approx(3.05, abs=0.01)
    gap = recovered(start, 3.0)
    assert soak_probe_figures(gap, [])["longest_gap_s"] == measured_round(1, gap).rto_s
    still_down = soak_probe_figures(not_back(start, 40.0), [7])
    assert still_down["longest_gap_s"] is None and still_down["not_recovered_s"] == pytest.approx(40.0, abs=0.01)
    assert still_down["lost"] == [7]
    text = markdown(
        {
            "started_at": "2026-12-01T00:00:00",
            "passed": False,
            "planned": 2,
            "timing": None,
            "drills": rows,
            "soak_probe": still_down,
            "per_scenario": summarize_soak(rows),
        }
    )
    assert "| switchover | 2 | 3.05 s | 3.05 s | 3.05 s | 1 | 0 |" in text
    assert "| 2 | switchover | not recovered (≥ 40.00 s) |" in text
    assert "1 lost, longest stretch without one not recovered (≥ 40.00 s))" in text


@pytest.mark.parametrize("script", ["ha.py", "soak.py"])
@pytest.mark.parametrize("option", ["--out", "--drill-reports"])
def test_bench_refuses_a_report_directory_it_cannot_write_before_the_lab_starts(
    tmp_path: Path, script: str, option: str
) -> None:
    """Else the reports fail after every round has run (hours for the soak). Bad lab addresses make a script
    that does not check fail before a lab starts, so this test never starts one."""
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    result = subprocess.run(
        [sys.executable, f"bench/{script}", option, str(blocker / "x")],
        cwd=PROJECT_DIR,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "PGHA_LAB_ADDRESSES": "not-a-lab", "TMPDIR": str(tmp_path)},
    )
    assert result.returncode == 2, result.stdout + result.stderr
    assert f"error: {option} {blocker / 'x'} cannot be created: {blocker} is not a directory" in result.stderr
    assert "lab up" not in result.stdout
