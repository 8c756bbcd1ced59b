"""Benchmark: what a failover costs in the local HA lab (RTO in seconds, RPO in lost commits).

A thin caller of the drill engine (``pgha.drill``): brings up the lab in a temporary directory and
runs the ``switchover`` and ``kill-leader`` lab drills ``--rounds`` times each, under the same write
probe and with the same measurements as ``pgha drill lab``. Prints a Markdown table, writes the raw
numbers with ``--json`` and the drills' full reports with ``--report``. Timings live here, not in
the pass/fail tests.

    .venv/bin/python bench/failover.py --rounds 3 --json reports/failover.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pgha.drill.engine import Targets, run_drill
from pgha.drill.lab import LabDrill
from pgha.drill.report import write_report
from pgha.lab.cluster import Lab

SCENARIOS = ("switchover", "kill-leader")


def main() -> None:
    """Run the drills and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", type=Path, help="also write the raw results here")
    parser.add_argument("--report", type=Path, help="also write each drill's JSON/Markdown/PNG report here")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="pgha-bench-"))
    lab = Lab(root=root, report=lambda _line: None)
    results = []
    try:
        lab.up()
        for scenario in SCENARIOS:
            drill = LabDrill(lab, scenario)
            drill.prepare()
            with lab.drill_lock():
                result = run_drill(drill, args.rounds, Targets(), say=lambda line: print(line, file=sys.stderr))
            if args.report:
                write_report(result, args.report)
            results += [{"action": scenario, "round": r.number, "rto_seconds": r.rto_s, "rpo_seconds": r.rpo_s,
                         "acknowledged": len(r.commits), "lost_acknowledged": len(r.lost),
                         "passed_checks": r.passed_checks} for r in result.rounds]
    finally:
        lab.down(purge=True)
    print("| failover | rounds | RTO median (s) | RTO max (s) | acknowledged writes lost |")
    print("|---|---|---|---|---|")
    for scenario in SCENARIOS:
        rows = [r for r in results if r["action"] == scenario and r["rto_seconds"] is not None]
        if not rows:
            print(f"| {scenario} | 0 | - | - | - |")
            continue
        rtos = [r["rto_seconds"] for r in rows]
        print(f"| {scenario} | {len(rows)} | {statistics.median(rtos):.1f} | {max(rtos):.1f} | "
              f"{sum(r['lost_acknowledged'] for r in rows)} |")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
