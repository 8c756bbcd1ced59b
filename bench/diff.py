"""Benchmark: how long `pgha diff` takes for the dev and prod stacks (target: both within 10 s).

Each round runs the full command in a fresh process, as CI does: the working tree in-process,
the base ref in a temporary git worktree and a subprocess, the comparison and the Markdown.
Prints a Markdown table and writes JSON with ``--json``; exits 1 when the slowest round of both
stacks together is over the target (the JSON is written first), as bench/ha.py and
bench/tenant_reads.py do. Timings live here, not in the tests.

    .venv/bin/python bench/diff.py --base main --rounds 3 --json reports/diff.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parent.parent
TARGET_SECONDS = 10.0


def time_diff(stack: str, base: str) -> tuple[float, int]:
    """Wall-clock seconds and exit code of one `pgha diff --markdown` run."""
    start = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "pgha", "diff", "--stack", stack, "--base", base, "--markdown"],
        cwd=PROJECT_DIR,
        capture_output=True,
        text=True,
        timeout=600,
    )
    elapsed = time.perf_counter() - start
    if result.returncode not in (0, 3):
        raise SystemExit(f"pgha diff --stack {stack} failed: {result.stderr.strip()}")
    return elapsed, result.returncode


def main() -> int:
    """Run the rounds and report median/max per stack and for both stacks together; 1 when over the target."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", default="HEAD", help="git ref to diff against (default HEAD)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", type=Path, help="write the raw timings here")
    args = parser.parse_args()
    rounds = {"dev": [], "prod": []}
    for _ in range(args.rounds):
        for stack in rounds:
            rounds[stack].append(time_diff(stack, args.base)[0])
    both = [dev + prod for dev, prod in zip(rounds["dev"], rounds["prod"], strict=True)]
    print(f"`pgha diff` against {args.base}, {args.rounds} rounds (seconds)\n")
    print("| stack | median | max |\n|---|---|---|")
    for stack, times in [*rounds.items(), ("dev + prod", both)]:
        print(f"| {stack} | {statistics.median(times):.2f} | {max(times):.2f} |")
    met = max(both) <= TARGET_SECONDS
    print(f"\nboth stacks: {max(both):.2f} s at worst, {'within' if met else 'OVER'} the {TARGET_SECONDS:.0f} s target")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(
            json.dumps(
                {"base": args.base, "rounds": rounds, "both": both, "target_s": TARGET_SECONDS, "met": met}, indent=2
            )
        )
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
