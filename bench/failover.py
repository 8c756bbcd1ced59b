"""Benchmark: what a failover costs in the local HA lab (RTO in seconds, RPO in lost commits).

Brings up the lab in a temporary directory, keeps a write probe committing through the writer
DSN, and measures a planned switchover and an unplanned leader loss (kill -9 of Patroni and the
postmaster) ``--rounds`` times each. Prints a Markdown table and writes JSON with ``--json``.
Timings live here, not in the pass/fail tests.

    .venv/bin/python bench/failover.py --rounds 3 --json reports/failover.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pgha.drill.probe import WriteProbe, missing_acknowledged
from pgha.lab.cluster import Lab, LabError


def _wait(condition: Callable[[], bool], timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if condition():
                return
        except LabError:
            pass
        time.sleep(0.25)
    raise TimeoutError("the lab did not settle")


def _healthy(lab: Lab) -> bool:
    members = lab.members()
    return len(members) == 3 and all(m.state in ("running", "streaming") for m in members) and any(
        m.role == "sync_standby" for m in members)


def measure(lab: Lab, action: str) -> dict:
    """One failover of kind ``action`` ("switchover" or "kill") under write load."""
    _wait(lambda: _healthy(lab))
    old = lab.leader().name
    probe = WriteProbe(lab.settings())
    probe.prepare()
    probe.start()
    time.sleep(2)
    started = time.monotonic()
    if action == "switchover":
        lab.switchover()
    else:
        lab.kill_node(old)
    _wait(lambda: lab.leader().name != old and lab.leader().state == "running")
    promoted = time.monotonic() - started
    acknowledged = len(probe.report.acknowledged)
    _wait(lambda: len(probe.report.acknowledged) > acknowledged + 20)
    report = probe.stop()
    lost = missing_acknowledged(lab.settings(), report.acknowledged)
    if action == "kill":
        lab.up()  # the killed node rejoins
    return {"action": action, "rto_seconds": round(report.longest_outage, 2),
            "new_leader_after_seconds": round(promoted, 2), "acknowledged": len(report.acknowledged),
            "lost_acknowledged": len(lost)}


def main() -> None:
    """Run the rounds and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", type=Path, help="also write the raw results here")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="pgha-bench-"))
    lab = Lab(root=root, report=lambda _line: None)
    results = []
    try:
        lab.up()
        for _ in range(args.rounds):
            for action in ("switchover", "kill"):
                results.append(measure(lab, action))
                print(json.dumps(results[-1]), file=sys.stderr)
    finally:
        lab.down(purge=True)
    print("| failover | rounds | RTO median (s) | RTO max (s) | acknowledged writes lost |")
    print("|---|---|---|---|---|")
    for action in ("switchover", "kill"):
        rows = [r for r in results if r["action"] == action]
        rtos = [r["rto_seconds"] for r in rows]
        print(f"| {action} | {len(rows)} | {statistics.median(rtos):.1f} | {max(rtos):.1f} | "
              f"{sum(r['lost_acknowledged'] for r in rows)} |")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
