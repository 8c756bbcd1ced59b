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
    assert order == [(1, "tuned"), (1, "defaults"), (2, "defaults"), (2, "tuned"),
                     (3, "tuned"), (3, "defaults"), (4, "defaults"), (4, "tuned")]
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
    render_comparison_png([("kill -9", {"tuned": [19.5, 21.0, 20.2], "defaults": [33.1, 38.0]}),
                           ("rejoin", {"rewind": [], "reclone": [30.0]})], path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize(("args", "message"), [
    (["--ttl", "15"], "--ttl = 15: must be at least 20"),
    (["--loop-wait", "0"], "--loop-wait = 0: must be at least 1"),
    (["--ttl", "30", "--loop-wait", "10", "--retry-timeout", "30"],
     "--loop-wait + 2 * --retry-timeout = 70 exceeds --ttl = 30"),
    (["--retry-timeout", "10"], "--loop-wait + 2 * --retry-timeout = 22 exceeds --ttl = 20"),  # with the lab's ttl
])
def test_lab_up_refuses_timing_patroni_would_adjust_and_starts_nothing(tmp_path: Path, args: list[str],
                                                                       message: str) -> None:
    root = tmp_path / "lab"
    result = subprocess.run([sys.executable, "-m", "pgha", "lab", "up", *args], cwd=PROJECT_DIR, capture_output=True,
                            text=True, timeout=60, check=False, env={**os.environ, "PGHA_LAB_DIR": str(root)})
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
    script = ("import os, signal, time\n"
              "from pgha.lab.cluster import removed_on_exit\n"
              "class FakeLab:\n"
              "    def down(self, purge):\n"
              "        os.kill(os.getpid(), signal.SIGTERM); time.sleep(0.5)\n"
              f"        open({str(removed)!r}, 'w').write(str(purge))\n"
              "with removed_on_exit(FakeLab()):\n"
              "    print('ready', flush=True); time.sleep(60)\n")
    proc = subprocess.Popen([sys.executable, "-c", script], cwd=PROJECT_DIR, stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 128 + signal.SIGTERM
    assert removed.read_text() == "True", "the lab's removal ran to its end, with its data"
