"""Benchmark: pgha's HA figures side by side with the alternative, measured in one run on one lab.

A caller of the drill engine (``pgha.drill``), nothing of its own but the order and the summary:

(a) kill -9 of the leader, RTO with the lab's tuned timing (ttl 20, loop_wait 2, retry_timeout 5) vs
    Patroni's defaults (ttl 30, loop_wait 10, retry_timeout 10). ONE lab whose dynamic config
    (PATCH /config) is switched between rounds, the order flipping every round (tuned, defaults,
    defaults, tuned, ...): same nodes, same data, same background load, only the timing differs;
(b) planned switchover: the write gap (RTO) under the same probe;
(c) the old leader's rejoin after a kill -9 at ~1 GB of data with ~100 MB written on the new leader
    after the failover: pg_rewind (Patroni's way) vs deleting its data directory so Patroni re-clones
    it with pg_basebackup, interleaved the same way; time from its Patroni start to streaming;
(d) acknowledged commits lost over every round (synchronous mode on): must be 0.

Writes ``OUT/bench.json``, ``OUT/bench.md`` and ``OUT/bench.png``; exits 1 when a target is missed
(the reports are written first). ``--quick``: 2 rounds, 128 MB + 16 MB, 1 rejoin round per way.

    .venv/bin/python bench/ha.py --rounds 5            # make bench ROUNDS=5
    .venv/bin/python bench/ha.py --quick               # make bench-quick
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pgha.connect import connect
from pgha.drill.compare import (
    at_least,
    at_most,
    fmt,
    interleave,
    ratio,
    summarize,
    verdict_table,
    verdicts_json,
)
from pgha.drill.engine import DrillResult, Round, Targets, run_drill
from pgha.drill.lab import LabDrill
from pgha.drill.report import render_comparison_png, write_report
from pgha.lab.cluster import LAB_TIMING, Lab
from pgha.node.render import PatroniTiming

TIMINGS = {"tuned": LAB_TIMING, "defaults": PatroniTiming(ttl=30, loop_wait=10, retry_timeout=10)}
REJOIN_WAYS = ("rewind", "reclone")
ROW_BYTES = 1000  # padding per row of the bulk table; ~1.1 kB per row on disk
TARGETS = {"kill_tuned_p95_s": 22.0, "kill_speedup": 1.5, "switchover_p95_s": 3.0, "rejoin_speedup": 5.0,
           "rewind_p95_s": 10.0, "lost_commits": 0}


def say(line: str) -> None:
    """Progress on stderr, with the time."""
    print(f"{datetime.now(UTC):%H:%M:%S} {line}", file=sys.stderr, flush=True)


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    mem_kb = next(int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines()
                  if line.startswith("MemTotal"))
    postgres = subprocess.run(["/usr/lib/postgresql/15/bin/postgres", "--version"], capture_output=True,
                              text=True, check=False).stdout.strip()
    from importlib.metadata import version

    return {"cpu": cpu, "cores": os.cpu_count(), "memory_gb": round(mem_kb / 1024 / 1024, 1),
            "kernel": platform.release(), "postgres": postgres, "patroni": version("patroni"),
            "load_avg_at_start": [round(x, 2) for x in os.getloadavg()]}


def round_row(result: DrillResult, side: str, number: int) -> dict[str, Any]:
    """The figures of a one-round drill, for the JSON."""
    rnd: Round = result.rounds[0] if result.rounds else Round(0)
    passed, reasons = result.verdict()
    return {"side": side, "round": number, "rto_s": rnd.rto_s, "lost_commits": len(rnd.lost),
            "acknowledged": len(rnd.commits), "passed_checks": rnd.passed_checks, "error": rnd.error,
            "facts": {k: v for k, v in rnd.facts.items() if k != "write_errors"},
            "events": [{"t_s": round(e.at - rnd.started, 3), "name": e.name, "detail": e.detail}
                       for e in sorted(rnd.events, key=lambda e: e.at)],
            "verdict": {"passed": passed, "reasons": reasons}}


def one_round(lab: Lab, scenario: str, side: str, number: int, reports: Path | None, **drill: Any) -> dict:
    """Run one round of a lab drill through the engine and return its row."""
    result = run_drill(LabDrill(lab, scenario, **drill), 1, Targets(), say=say,
                       settings={"bench": scenario, "side": side, "round": number, "timing": asdict(lab.timing)})
    if reports:
        write_report(result, reports)
    row = round_row(result, side, number)
    say(f"{scenario} {side} round {number}: RTO {fmt(row['rto_s'], ' s')}, lost {row['lost_commits']}"
        + (f", rejoin {row['facts'].get('rejoin_s')} s" if "rejoin_s" in row["facts"] else ""))
    return row


def fill(lab: Lab, megabytes: int, table: str = "bench_bulk") -> float:
    """Write about ``megabytes`` of logged (replicated) rows through the writer in 100 MB statements; seconds."""
    settings = replace(lab.settings(), read_timeout=900, application_name="pgha-bench-fill")
    conn = connect(settings, writable=True)
    started = time.monotonic()
    try:
        conn.run(f"CREATE TABLE IF NOT EXISTS {table} (id bigserial, pad text)")
        rows = megabytes * 1024 * 1024 // (ROW_BYTES + 100)
        for done in range(0, rows, 90_000):
            conn.run(f"INSERT INTO {table} (pad) SELECT repeat(md5(g::text), {ROW_BYTES // 32}) "  # noqa: S608 - our own names
                     "FROM generate_series(1, :n) AS g", n=min(90_000, rows - done))
    finally:
        conn.close()
    return round(time.monotonic() - started, 3)


def archived(lab: Lab, timeout: float = 180.0) -> float:
    """Wait until the leader has archived every finished WAL file (none left .ready); seconds waited.

    A kill -9 right after a bulk load leaves a backlog that Patroni archives before it rewinds the old
    leader: the rejoin rounds start from a steady state instead, as a production failover mostly does.
    """
    conn = connect(lab.settings(), writable=True)
    started = time.monotonic()
    try:
        conn.run("SELECT pg_switch_wal()")
        while time.monotonic() - started < timeout:
            ready = conn.run("SELECT count(*) FROM pg_ls_archive_statusdir() WHERE name LIKE '%.ready'")[0][0]
            if not ready:
                break
            time.sleep(1)
    finally:
        conn.close()
    return round(time.monotonic() - started, 1)


def database_mb(lab: Lab) -> float:
    """Size of the lab database in MB."""
    conn = connect(lab.settings())
    try:
        return round(conn.run("SELECT pg_database_size(current_database())")[0][0] / 1024 / 1024, 1)
    finally:
        conn.close()


def values(rows: list[dict], key: str = "rto_s", fact: bool = False) -> list[float]:
    """The measured values of rows (rounds that measured nothing are left out, and counted as invalid)."""
    found = [(r["facts"].get(key) if fact else r.get(key)) for r in rows]
    return [v for v in found if v is not None]


def summary(data: dict[str, Any]) -> tuple[dict[str, Any], list]:
    """p50/p95 per side, ratios, and the verdicts against the targets."""
    kill = {side: summarize(values([r for r in data["kill"] if r["side"] == side])) for side in TIMINGS}
    switch = summarize(values(data["switchover"]))
    rejoin = {way: summarize(values([r for r in data["rejoin"] if r["side"] == way], "rejoin_s", fact=True))
              for way in REJOIN_WAYS}
    every = data["kill"] + data["switchover"] + data["rejoin"]
    lost = sum(r["lost_commits"] for r in every)
    invalid = [f"{r['side']} round {r['round']}: " + "; ".join(r["verdict"]["reasons"])
               for r in every if not r["verdict"]["passed"]]
    figures = {
        "kill_leader_rto_s": kill, "kill_speedup_p50": ratio(kill["defaults"]["p50"], kill["tuned"]["p50"]),
        "kill_speedup_p95": ratio(kill["defaults"]["p95"], kill["tuned"]["p95"]),
        "switchover_rto_s": switch, "rejoin_s": rejoin,
        "rejoin_speedup_p50": ratio(rejoin["reclone"]["p50"], rejoin["rewind"]["p50"]),
        "lost_commits": lost, "rounds": len(every), "rounds_with_problems": invalid,
    }
    verdicts = [
        at_most("kill -9 leader RTO p95, tuned", kill["tuned"]["p95"], TARGETS["kill_tuned_p95_s"]),
        at_least("kill -9 leader RTO p50, defaults / tuned", figures["kill_speedup_p50"], TARGETS["kill_speedup"]),
        at_most("switchover write gap p95", switch["p95"], TARGETS["switchover_p95_s"]),
        at_least("rejoin p50, re-clone / pg_rewind", figures["rejoin_speedup_p50"], TARGETS["rejoin_speedup"]),
        at_most("rejoin with pg_rewind p95", rejoin["rewind"]["p95"], TARGETS["rewind_p95_s"]),
        at_most("acknowledged commits lost, all rounds", lost, TARGETS["lost_commits"], unit=""),
        at_most("rounds with a failed check or abort", len(invalid), 0, unit="",
                detail="; ".join(invalid)[:300]),
    ]
    return figures, verdicts


def markdown(data: dict[str, Any], figures: dict[str, Any], verdicts: list) -> str:
    """bench.md: the machine, the table, the verdicts."""
    m = data["machine"]
    kill, rejoin, switch = figures["kill_leader_rto_s"], figures["rejoin_s"], figures["switchover_rto_s"]
    lines = [
        f"# pgha HA benchmark ({data['started_at'][:16]} UTC{', QUICK' if data['quick'] else ''})", "",
        f"Machine: {m['cpu']}, {m['cores']} cores, {m['memory_gb']} GB, Linux {m['kernel']}, {m['postgres']}, "
        f"Patroni {m['patroni']}; load average at start {m['load_avg_at_start']}. One lab (3 nodes, etcd, "
        "synchronous mode) on loopback; rounds interleaved (order flipping every round).", "",
        "| figure | rounds | p50 | p95 | min | max |", "|---|---|---|---|---|---|",
    ]
    for label, s in (
        (f"kill -9 leader RTO, tuned ({TIMINGS['tuned'].ttl}/{TIMINGS['tuned'].loop_wait}/"
         f"{TIMINGS['tuned'].retry_timeout})", kill["tuned"]),
        (f"kill -9 leader RTO, Patroni defaults ({TIMINGS['defaults'].ttl}/{TIMINGS['defaults'].loop_wait}/"
         f"{TIMINGS['defaults'].retry_timeout})", kill["defaults"]),
        ("planned switchover write gap", switch),
        (f"old leader rejoin, pg_rewind ({data['data_mb']} MB + {data['after_mb']} MB)", rejoin["rewind"]),
        (f"old leader rejoin, re-clone ({data['data_mb']} MB + {data['after_mb']} MB)", rejoin["reclone"]),
    ):
        lines.append(f"| {label} | {s['n']} | {fmt(s['p50'], ' s')} | {fmt(s['p95'], ' s')} | "
                     f"{fmt(s['min'], ' s')} | {fmt(s['max'], ' s')} |")
    lines += ["", f"Speed-up: kill -9 RTO defaults/tuned p50 {fmt(figures['kill_speedup_p50'], 'x')}, p95 "
              f"{fmt(figures['kill_speedup_p95'], 'x')}; rejoin re-clone/pg_rewind p50 "
              f"{fmt(figures['rejoin_speedup_p50'], 'x')}. Acknowledged commits lost over "
              f"{figures['rounds']} rounds: {figures['lost_commits']}.", "", "## Targets", ""]
    lines += verdict_table(verdicts)
    lines += ["", "![bench](bench.png)", "", "## Rounds (in run order)", "",
              "| part | side | round | RTO (s) | rejoin (s) | lost | checks |", "|---|---|---|---|---|---|---|"]
    for part in ("kill", "switchover", "rejoin"):
        for r in data[part]:
            lines.append(f"| {part} | {r['side']} | {r['round']} | {fmt(r['rto_s'])} | "
                         f"{fmt(r['facts'].get('rejoin_s'))} | {r['lost_commits']} | "
                         f"{'ok' if r['verdict']['passed'] else 'problem'} |")
    lines += ["", "What these figures do and do not mean: docs/bench.md."]
    return "\n".join(lines) + "\n"


def write_reports(out: Path, data: dict[str, Any]) -> bool:
    """bench.json, bench.md, bench.png; True when every target was met."""
    figures, verdicts = summary(data)
    data = {**data, "figures": figures, "targets": TARGETS, "verdicts": verdicts_json(verdicts)}
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench.json").write_text(json.dumps(data, indent=2) + "\n")
    render_comparison_png([
        ("kill -9 leader: RTO", {side: values([r for r in data["kill"] if r["side"] == side]) for side in TIMINGS}),
        ("planned switchover: write gap", {"tuned": values(data["switchover"])}),
        ("old leader rejoin", {way: values([r for r in data["rejoin"] if r["side"] == way], "rejoin_s", True)
                               for way in REJOIN_WAYS}),
    ], out / "bench.png", targets={"kill -9 leader: RTO": TARGETS["kill_tuned_p95_s"],
                                   "planned switchover: write gap": TARGETS["switchover_p95_s"]})
    (out / "bench.md").write_text(markdown(data, figures, verdicts))
    return all(v.met for v in verdicts)


def main() -> int:
    """Run (a)-(d), write the reports, return the exit code."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=int(os.environ.get("ROUNDS") or 5),
                        help="rounds per side for (a) and rounds of (b) (default $ROUNDS or 5)")
    parser.add_argument("--rejoin-rounds", type=int, default=3, help="rounds per way for (c)")
    parser.add_argument("--data-mb", type=int, default=1024, help="data before the rejoin rounds")
    parser.add_argument("--after-mb", type=int, default=100, help="written on the new leader after the failover")
    parser.add_argument("--quick", action="store_true", help="2 rounds, 128 MB + 16 MB, 1 rejoin round per way")
    parser.add_argument("--out", type=Path, default=Path("reports"))
    parser.add_argument("--drill-reports", type=Path, help="also write every round's drill report here")
    parser.add_argument("--keep", action="store_true", help="leave the lab running (and its directory)")
    parser.add_argument("--from-json", type=Path, help="only rewrite the reports from an earlier bench.json")
    args = parser.parse_args()
    if args.from_json:
        data = json.loads(args.from_json.read_text())
        return 0 if write_reports(args.out, data) and not data["notes"] else 1
    if args.quick:
        args.rounds, args.rejoin_rounds, args.data_mb, args.after_mb = 2, 1, 128, 16
    root = Path(tempfile.mkdtemp(prefix="pgha-bench-"))
    lab = Lab(root=root, report=lambda _line: None)
    data: dict[str, Any] = {"started_at": datetime.now(UTC).isoformat(timespec="seconds"), "quick": args.quick,
                            "machine": machine(), "rounds": args.rounds, "rejoin_rounds": args.rejoin_rounds,
                            "data_mb": args.data_mb, "after_mb": args.after_mb, "lab_addresses": list(lab.addresses),
                            "timings": {k: asdict(v) for k, v in TIMINGS.items()},
                            "kill": [], "switchover": [], "rejoin": [], "notes": []}
    try:
        say(f"lab up in {root} on {', '.join(lab.addresses)}")
        lab.up(timing=TIMINGS["tuned"])
        with lab.drill_lock():
            for number, side in interleave(tuple(TIMINGS), args.rounds):
                if lab.set_timing(TIMINGS[side]):
                    say(f"dynamic config now {asdict(TIMINGS[side])} ({side})")
                data["kill"].append(one_round(lab, "kill-leader", side, number, args.drill_reports))
            lab.set_timing(TIMINGS["tuned"])
            for number in range(1, args.rounds + 1):
                data["switchover"].append(one_round(lab, "switchover", "tuned", number, args.drill_reports))
            say(f"writing {args.data_mb} MB")
            data["fill_s"] = fill(lab, args.data_mb)
            data["archive_backlog_wait_s"] = archived(lab)
            data["database_mb_before_rejoin"] = database_mb(lab)
            say(f"database {data['database_mb_before_rejoin']} MB after {data['fill_s']} s")

            def after_failover(rnd: Round) -> None:
                seconds = fill(lab, args.after_mb, "bench_after_failover")
                rnd.event("written on the new leader", f"{args.after_mb} MB in {seconds:.1f} s")
                rnd.facts["database_mb"] = database_mb(lab)

            for number, way in interleave(REJOIN_WAYS, args.rejoin_rounds):
                data["rejoin"].append(one_round(lab, "kill-leader", way, number, args.drill_reports, rejoin=way,
                                                after_failover=after_failover))
    except Exception as err:  # the reports still say what was measured, and why it stopped
        data["notes"].append(f"stopped early: {type(err).__name__}: {err}")
        say(data["notes"][-1])
    finally:
        data["finished_at"] = datetime.now(UTC).isoformat(timespec="seconds")
        if not args.keep:
            lab.down(purge=True)
    met = write_reports(args.out, data)
    print((args.out / "bench.md").read_text())
    return 0 if met and not data["notes"] else 1


if __name__ == "__main__":
    sys.exit(main())
