"""Benchmark: pgha's HA figures side by side with the alternative, measured in one run on one lab.

A caller of the drill engine (``pgha.drill``), nothing of its own but the order and the summary:

(a) unplanned leader loss, RTO with the lab's tuned timing (ttl 20, loop_wait 2, retry_timeout 5) vs
    Patroni's defaults (ttl 30, loop_wait 10, retry_timeout 10), in its two forms: the node is lost
    (``kill-leader``: kill -9 of Patroni and the postmaster, so the leader key must expire) and
    PostgreSQL crashes under a live Patroni (``crash-leader``: kill -9 of the postmaster, as the OOM
    killer does). ONE lab whose dynamic config (PATCH /config) is switched between rounds, the order
    flipping every round (tuned, defaults, defaults, tuned, ...): same nodes, same data, same load;
(b) planned switchover: the write gap (RTO) under the same probe;
(c) the old leader's rejoin after a kill -9 at ~1 GB of data with ~100 MB written on the new leader
    after the failover: pg_rewind (Patroni's way) vs deleting its data directory so Patroni re-clones
    it with pg_basebackup, interleaved the same way; time from its Patroni start to streaming. Then
    the same at a larger database (``--large-mb``), to measure how each way grows with the data;
(d) acknowledged commits lost over every round (synchronous mode on): must be 0.

Writes ``OUT/bench.json``, ``OUT/bench.md`` and ``OUT/bench.png``; exits 1 when a target is missed
(the reports are written first). ``--quick``: 2 rounds, 128 MB + 16 MB, 1 rejoin round per way, no
larger database. ``--parts`` runs some of kill, crash, switchover, rejoin.

    .venv/bin/python bench/ha.py --rounds 5            # make bench ROUNDS=5
    .venv/bin/python bench/ha.py --quick               # make bench-quick
    .venv/bin/python bench/ha.py --parts rejoin        # only (c)
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

from pgha.connect import wait_for_writer
from pgha.drill.compare import (
    at_least,
    at_most,
    fmt,
    interleave,
    ratio,
    rto_cell,
    summarize,
    verdict_table,
    verdicts_json,
)
from pgha.drill.engine import DrillResult, Round, Targets, run_drill
from pgha.drill.lab import REJOIN_WAYS, LabDrill
from pgha.drill.report import render_comparison_png, report_dir_problem, write_report
from pgha.lab.cluster import LAB_TIMING, Lab, removed_on_exit
from pgha.local import postgres_bindir
from pgha.node.render import PatroniTiming

TIMINGS = {"tuned": LAB_TIMING, "defaults": PatroniTiming(ttl=30, loop_wait=10, retry_timeout=10)}
PARTS = ("kill", "crash", "switchover", "rejoin")
#: The unplanned leader losses of (a): bench part -> lab drill scenario.
LOSSES = {"kill": "kill-leader", "crash": "crash-leader"}
ROW_BYTES = 1000  # padding per row of the bulk table; ~1.1 kB per row on disk
TARGETS = {
    "kill_tuned_p95_s": 22.0,
    "kill_speedup": 1.5,
    "switchover_p95_s": 3.0,
    "rejoin_speedup": 5.0,
    "rewind_p95_s": 10.0,
    "lost_commits": 0,
}


def say(line: str) -> None:
    """Progress on stderr, with the time."""
    print(f"{datetime.now(UTC):%H:%M:%S} {line}", file=sys.stderr, flush=True)


def machine() -> dict[str, Any]:
    """What the figures were measured on (the PostgreSQL is the one the lab runs: pgha.local.postgres_bindir)."""
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    mem_kb = next(
        int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines() if line.startswith("MemTotal")
    )
    postgres = subprocess.run(
        [str(postgres_bindir() / "postgres"), "--version"], capture_output=True, text=True, check=False
    ).stdout.strip()
    from importlib.metadata import version

    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gb": round(mem_kb / 1024 / 1024, 1),
        "kernel": platform.release(),
        "postgres": postgres,
        "patroni": version("patroni"),
        "load_avg_at_start": [round(x, 2) for x in os.getloadavg()],
    }


def round_row(result: DrillResult, side: str, number: int) -> dict[str, Any]:
    """The figures of a one-round drill, for the JSON."""
    rnd: Round = result.rounds[0] if result.rounds else Round(0)
    passed, reasons = result.verdict()
    return {
        "side": side,
        "round": number,
        "rto_s": rnd.rto_s,
        "not_recovered_s": rnd.not_recovered_s,
        "lost_commits": len(rnd.lost),
        "acknowledged": len(rnd.commits),
        "passed_checks": rnd.passed_checks,
        "error": rnd.error,
        "facts": {k: v for k, v in rnd.facts.items() if k != "write_errors"},
        "events": [
            {"t_s": round(e.at - rnd.started, 3), "name": e.name, "detail": e.detail}
            for e in sorted(rnd.events, key=lambda e: e.at)
        ],
        "verdict": {"passed": passed, "reasons": reasons},
    }


def one_round(lab: Lab, scenario: str, side: str, number: int, reports: Path | None, **drill: Any) -> dict:
    """Run one round of a lab drill through the engine and return its row."""
    result = run_drill(
        LabDrill(lab, scenario, **drill),
        1,
        Targets(),
        say=say,
        settings={"bench": scenario, "side": side, "round": number, "timing": asdict(lab.timing)},
    )
    if reports:
        write_report(result, reports)
    row = round_row(result, side, number)
    say(
        f"{scenario} {side} round {number}: RTO {rto_cell(row, ' s')}, lost {row['lost_commits']}"
        + (f", rejoin {row['facts'].get('rejoin_s')} s" if "rejoin_s" in row["facts"] else "")
    )
    return row


def writer(lab: Lab, read_timeout: float = 60) -> Any:
    """A connection to the leader, waited for: right after a failover the new leader holds the lock a moment
    before PostgreSQL accepts writes."""
    settings = replace(lab.settings(), read_timeout=read_timeout, application_name="pgha-bench")
    return wait_for_writer(settings, timeout=60, interval=0.25)[0]


def fill(lab: Lab, megabytes: int, table: str = "bench_bulk") -> float:
    """Write about ``megabytes`` of logged (replicated) rows through the writer in 100 MB statements; seconds."""
    conn = writer(lab, read_timeout=900)
    started = time.monotonic()
    try:
        conn.run(f"CREATE TABLE IF NOT EXISTS {table} (id bigserial, pad text)")
        rows = megabytes * 1024 * 1024 // (ROW_BYTES + 100)
        for done in range(0, rows, 90_000):
            conn.run(
                f"INSERT INTO {table} (pad) SELECT repeat(md5(g::text), {ROW_BYTES // 32}) "  # noqa: S608 - our own names
                "FROM generate_series(1, :n) AS g",
                n=min(90_000, rows - done),
            )
    finally:
        conn.close()
    return round(time.monotonic() - started, 3)


def steady(lab: Lab, timeout: float = 300.0) -> float:
    """After a bulk load, bring the leader to the state a database of that size is in at rest: every finished
    WAL file archived (none left .ready) and a checkpoint since; seconds it took.

    A kill -9 right after the load would measure the load instead: Patroni first archives the backlog of
    the old leader, and the rewound node replays everything since the last checkpoint, up to
    max_wal_size of WAL, where a database at rest has checkpointed within checkpoint_timeout.
    """
    conn = writer(lab)
    started = time.monotonic()
    try:
        conn.run("SELECT pg_switch_wal()")
        while time.monotonic() - started < timeout:
            ready = conn.run("SELECT count(*) FROM pg_ls_archive_statusdir() WHERE name LIKE '%.ready'")[0][0]
            if not ready:
                break
            time.sleep(1)
        conn.run("CHECKPOINT")
    finally:
        conn.close()
    return round(time.monotonic() - started, 1)


def drop_table(lab: Lab, table: str) -> None:
    """Drop one of the bench's tables if it exists."""
    conn = writer(lab)
    try:
        conn.run(f"DROP TABLE IF EXISTS {table}")
    finally:
        conn.close()


def database_mb(lab: Lab) -> float:
    """Size of the lab database in MB."""
    return _scalar_mb(lab, "SELECT pg_database_size(current_database())")


def wal_mb(lab: Lab) -> float:
    """Size of the leader's pg_wal in MB: before PostgreSQL 18, pg_rewind copies all of it to the old leader."""
    return _scalar_mb(lab, "SELECT coalesce(sum(size), 0) FROM pg_ls_waldir()")


def _scalar_mb(lab: Lab, query: str) -> float:
    conn = writer(lab)
    try:
        return round(float(conn.run(query)[0][0]) / 1024 / 1024, 1)
    finally:
        conn.close()


def values(rows: list[dict], key: str = "rto_s", fact: bool = False) -> list[float]:
    """The measured values of rows (rounds that measured nothing, or whose writes had not come back, are left out;
    they fail their verdict and are counted as rounds with problems)."""
    found = [(r["facts"].get(key) if fact else r.get(key)) for r in rows]
    return [v for v in found if v is not None]


def rejoin_sizes(data: dict[str, Any]) -> list[int]:
    """The database sizes (nominal MB) the rejoin rounds ran at, smallest first."""
    return sorted({r["size_mb"] for r in data["rejoin"]})


def rejoin_values(data: dict[str, Any], way: str, size: int) -> list[float]:
    """Rejoin seconds of one way at one database size."""
    return values([r for r in data["rejoin"] if r["side"] == way and r["size_mb"] == size], "rejoin_s", fact=True)


def by_side(rows: list[dict], side: str) -> list[float]:
    """RTOs of the rounds of one side."""
    return values([r for r in rows if r["side"] == side])


def not_recovered(data: dict[str, Any]) -> list[str]:
    """The rounds whose writes had not come back when the probe stopped (no RTO), with their open stretch."""
    return [
        f"{part} {r['side']} round {r['round']}: ≥ {r['not_recovered_s']:.2f} s"
        for part in PARTS
        for r in data[part]
        if r.get("not_recovered_s") is not None
    ]


def summary(data: dict[str, Any]) -> tuple[dict[str, Any], list]:
    """p50/p95 per side, ratios, and the verdicts against the targets."""
    losses = {part: {side: summarize(by_side(data[part], side)) for side in TIMINGS} for part in LOSSES}
    speedups = {part: {q: ratio(s["defaults"][q], s["tuned"][q]) for q in ("p50", "p95")} for part, s in losses.items()}
    switch = summarize(values(data["switchover"]))
    sizes = rejoin_sizes(data)
    rejoin = {str(size): {way: summarize(rejoin_values(data, way, size)) for way in REJOIN_WAYS} for size in sizes}
    rejoin_speedup = {size: ratio(ways["reclone"]["p50"], ways["rewind"]["p50"]) for size, ways in rejoin.items()}
    headline = str(data["data_mb"])
    every = [r for part in PARTS for r in data[part]]
    lost = sum(r["lost_commits"] for r in every)
    invalid = [
        f"{r['side']} round {r['round']}: " + "; ".join(r["verdict"]["reasons"])
        for r in every
        if not r["verdict"]["passed"]
    ]
    figures = {
        "leader_loss_rto_s": losses,
        "leader_loss_speedup": speedups,
        "switchover_rto_s": switch,
        "rejoin_s": rejoin,
        "rejoin_speedup_p50": rejoin_speedup,
        "lost_commits": lost,
        "rounds": len(every),
        "rounds_with_problems": invalid,
        "rounds_not_recovered": not_recovered(data),
    }
    head_rejoin = rejoin.get(headline, {way: summarize([]) for way in REJOIN_WAYS})
    verdicts = []
    if data["kill"]:
        verdicts += [
            at_most(
                "node loss (kill -9 leader) RTO p95, tuned", losses["kill"]["tuned"]["p95"], TARGETS["kill_tuned_p95_s"]
            ),
            at_least(
                "node loss RTO p50, defaults / tuned",
                speedups["kill"]["p50"],
                TARGETS["kill_speedup"],
                detail="bounded by ttl: ≤ 30/20 with Patroni's ttl ≥ 20 (docs/bench.md)",
            ),
        ]
    if data["crash"]:
        verdicts.append(
            at_least(
                "PostgreSQL crash on the leader RTO p50, defaults / tuned",
                speedups["crash"]["p50"],
                TARGETS["kill_speedup"],
            )
        )
    if data["switchover"]:
        verdicts.append(at_most("switchover write gap p95", switch["p95"], TARGETS["switchover_p95_s"]))
    if data["rejoin"]:
        verdicts += [
            at_least(
                f"rejoin p50 at {headline} MB, re-clone / pg_rewind",
                rejoin_speedup.get(headline),
                TARGETS["rejoin_speedup"],
            ),
            at_most(
                f"rejoin with pg_rewind p95 at {headline} MB", head_rejoin["rewind"]["p95"], TARGETS["rewind_p95_s"]
            ),
        ]
    verdicts += [
        at_most("acknowledged commits lost, all rounds", lost, TARGETS["lost_commits"], unit=""),
        at_most("rounds with a failed check or abort", len(invalid), 0, unit="", detail="; ".join(invalid)[:300]),
    ]
    return figures, verdicts


def _timing_label(side: str) -> str:
    t = TIMINGS[side]
    return f"{'tuned' if side == 'tuned' else 'Patroni defaults'} ({t.ttl}/{t.loop_wait}/{t.retry_timeout})"


def markdown(data: dict[str, Any], figures: dict[str, Any], verdicts: list) -> str:
    """bench.md: the machine, the table, the verdicts."""
    m = data["machine"]
    losses, speedups = figures["leader_loss_rto_s"], figures["leader_loss_speedup"]
    lines = [
        f"# pgha HA benchmark ({data['started_at'][:16]} UTC{', QUICK' if data['quick'] else ''})",
        "",
        f"Machine: {m['cpu']}, {m['cores']} cores, {m['memory_gb']} GB, Linux {m['kernel']}, {m['postgres']}, "
        f"Patroni {m['patroni']}; load average at start {m['load_avg_at_start']}. One lab (3 nodes, etcd, "
        "synchronous mode) on loopback; rounds interleaved (order flipping every round).",
        "",
        "| figure | rounds | p50 | p95 | min | max |",
        "|---|---|---|---|---|---|",
    ]
    rows: list[tuple[str, dict]] = []
    for part, label in (
        ("kill", "node loss (kill -9 Patroni + PostgreSQL) RTO"),
        ("crash", "PostgreSQL crash on the leader (kill -9 postmaster) RTO"),
    ):
        if data[part]:
            rows += [(f"{label}, {_timing_label(side)}", losses[part][side]) for side in TIMINGS]
    if data["switchover"]:
        rows.append(("planned switchover write gap", figures["switchover_rto_s"]))
    for size, ways in figures["rejoin_s"].items():
        rows += [(f"old leader rejoin, {way} ({size} MB + {data['after_mb']} MB)", ways[way]) for way in REJOIN_WAYS]
    for label, s in rows:
        lines.append(
            f"| {label} | {s['n']} | {fmt(s['p50'], ' s')} | {fmt(s['p95'], ' s')} | "
            f"{fmt(s['min'], ' s')} | {fmt(s['max'], ' s')} |"
        )
    unrecovered = figures["rounds_not_recovered"]
    lines += [
        "",
        "Rounds whose writes had not come back when the probe stopped (no RTO, left out of the figures "
        f"above): {len(unrecovered)}" + (f" ({'; '.join(unrecovered)})" if unrecovered else "") + ".",
    ]
    said = [
        f"{name} defaults/tuned p50 {fmt(speedups[part]['p50'], 'x')} (p95 {fmt(speedups[part]['p95'], 'x')})"
        for part, name in (("kill", "node loss"), ("crash", "PostgreSQL crash"))
        if data[part]
    ]
    said += [
        f"rejoin re-clone/pg_rewind p50 at {size} MB {fmt(x, 'x')}" for size, x in figures["rejoin_speedup_p50"].items()
    ]
    lines += [
        "",
        "Speed-up: " + "; ".join(said) + f". Acknowledged commits lost over {figures['rounds']} "
        f"rounds: {figures['lost_commits']}.",
        "",
        "## Targets",
        "",
    ]
    lines += verdict_table(verdicts)
    lines += [
        "",
        "![bench](bench.png)",
        "",
        "## Rounds (in run order)",
        "",
        "| part | side | round | RTO (s) | rejoin (s) | pg_rewind (s) | leader pg_wal (MB) | lost | checks |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for part in PARTS:
        for r in data[part]:
            facts = r["facts"]
            steps = facts.get("rejoin_steps") or {}
            rewind = (
                round(steps["pg_rewind exit code"] - steps["running pg_rewind"], 2)
                if {"pg_rewind exit code", "running pg_rewind"} <= steps.keys()
                else None
            )
            label = f"{part} {r['size_mb']} MB" if part == "rejoin" else part
            lines.append(
                f"| {label} | {r['side']} | {r['round']} | {rto_cell(r)} | {fmt(facts.get('rejoin_s'))} | "
                f"{fmt(rewind)} | {fmt(facts.get('leader_wal_mb'))} | {r['lost_commits']} | "
                f"{'ok' if r['verdict']['passed'] else 'problem'} |"
            )
    lines += ["", "What these figures do and do not mean: docs/bench.md."]
    return "\n".join(lines) + "\n"


def write_reports(out: Path, data: dict[str, Any]) -> bool:
    """bench.json, bench.md, bench.png; True when every target was met."""
    figures, verdicts = summary(data)
    data = {**data, "figures": figures, "targets": TARGETS, "verdicts": verdicts_json(verdicts)}
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench.json").write_text(json.dumps(data, indent=2) + "\n")
    titles = {"kill": "node loss: RTO", "crash": "PostgreSQL crash: RTO", "switchover": "planned switchover: write gap"}
    panels = [(titles[part], {side: by_side(data[part], side) for side in TIMINGS}) for part in LOSSES if data[part]]
    if data["switchover"]:
        panels.append((titles["switchover"], {"tuned": values(data["switchover"])}))
    if data["rejoin"]:
        panels.append(
            (
                "old leader rejoin",
                {
                    f"{way}\n{size} MB": rejoin_values(data, way, size)
                    for size in rejoin_sizes(data)
                    for way in REJOIN_WAYS
                },
            )
        )
    render_comparison_png(
        panels,
        out / "bench.png",
        targets={titles["kill"]: TARGETS["kill_tuned_p95_s"], titles["switchover"]: TARGETS["switchover_p95_s"]},
    )
    (out / "bench.md").write_text(markdown(data, figures, verdicts))
    return all(v.met for v in verdicts)


def rejoin_rounds(lab: Lab, data: dict[str, Any], size_mb: int, args: argparse.Namespace) -> None:
    """Grow the database to ``size_mb``, then the interleaved rejoin rounds (c) at that size."""
    grow = size_mb - sum(data["filled_mb"])
    say(f"writing {grow} MB (database to ~{size_mb} MB)")
    data["fill_s"].append(fill(lab, grow))
    data["filled_mb"].append(grow)
    data["steady_s"].append(steady(lab))
    data["database_mb_before_rejoin"][str(size_mb)] = database_mb(lab)
    say(f"database {data['database_mb_before_rejoin'][str(size_mb)]} MB after {data['fill_s'][-1]} s")

    def after_failover(rnd: Round) -> None:
        drop_table(lab, "bench_after_failover")  # the last round's: each round adds the same to the same size
        seconds = fill(lab, args.after_mb, "bench_after_failover")
        rnd.event("written on the new leader", f"{args.after_mb} MB in {seconds:.1f} s")
        rnd.facts.update(database_mb=database_mb(lab), leader_wal_mb=wal_mb(lab))

    for number, way in interleave(REJOIN_WAYS, args.rejoin_rounds):
        row = one_round(lab, "kill-leader", way, number, args.drill_reports, rejoin=way, after_failover=after_failover)
        data["rejoin"].append({**row, "size_mb": size_mb})


def main() -> int:
    """Run (a)-(d), write the reports, return the exit code."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--rounds",
        type=int,
        default=int(os.environ.get("ROUNDS") or 5),
        help="rounds per side for (a) and rounds of (b) (default $ROUNDS or 5)",
    )
    parser.add_argument("--rejoin-rounds", type=int, default=3, help="rounds per way for (c), at each size")
    parser.add_argument("--data-mb", type=int, default=1024, help="data before the rejoin rounds")
    parser.add_argument(
        "--large-mb", type=int, default=4096, help="then the rejoin rounds again at this database size (0: not)"
    )
    parser.add_argument("--after-mb", type=int, default=100, help="written on the new leader after the failover")
    parser.add_argument("--parts", default=",".join(PARTS), help=f"which of {', '.join(PARTS)} to run")
    parser.add_argument(
        "--quick", action="store_true", help="2 rounds, 128 MB + 16 MB, 1 rejoin round per way, no larger database"
    )
    parser.add_argument("--out", type=Path, default=Path("reports"))
    parser.add_argument("--drill-reports", type=Path, help="also write every round's drill report here")
    parser.add_argument("--keep", action="store_true", help="leave the lab running (and its directory)")
    parser.add_argument("--from-json", type=Path, help="only rewrite the reports from an earlier bench.json")
    args = parser.parse_args()
    parts = [p.strip() for p in args.parts.split(",") if p.strip()]
    if not parts or set(parts) - set(PARTS):
        parser.error(f"--parts {args.parts!r}: choose from {', '.join(PARTS)}")
    if args.large_mb and args.large_mb <= args.data_mb:
        parser.error(f"--large-mb {args.large_mb} must exceed --data-mb {args.data_mb} (or be 0)")
    for option, directory in (("--out", args.out), ("--drill-reports", args.drill_reports)):
        problem = directory and report_dir_problem(directory)  # before the lab starts, not after the rounds
        if problem:
            parser.error(f"{option} {problem}")
    if args.from_json:
        data = {**{part: [] for part in PARTS}, **json.loads(args.from_json.read_text())}
        return 0 if write_reports(args.out, data) and not data["notes"] else 1
    if args.quick:
        args.rounds, args.rejoin_rounds, args.data_mb, args.after_mb, args.large_mb = 2, 1, 128, 16, 0
    root = Path(tempfile.mkdtemp(prefix="pgha-bench-"))
    lab = Lab(root=root, report=lambda _line: None)
    data: dict[str, Any] = {
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "quick": args.quick,
        "machine": machine(),
        "parts": parts,
        "rounds": args.rounds,
        "rejoin_rounds": args.rejoin_rounds,
        "data_mb": args.data_mb,
        "large_mb": args.large_mb,
        "after_mb": args.after_mb,
        "lab_addresses": list(lab.addresses),
        "timings": {k: asdict(v) for k, v in TIMINGS.items()},
        "fill_s": [],
        "filled_mb": [],
        "steady_s": [],
        "database_mb_before_rejoin": {},
        "notes": [],
        **{part: [] for part in PARTS},
    }
    with removed_on_exit(lab, keep=args.keep):
        try:
            say(f"lab up in {root} on {', '.join(lab.addresses)}")
            lab.up(timing=TIMINGS["tuned"])
            with lab.drill_lock():
                losses = [part for part in LOSSES if part in parts]
                if losses:
                    for number, side in interleave(tuple(TIMINGS), args.rounds):
                        if lab.set_timing(TIMINGS[side]):
                            say(f"dynamic config now {asdict(TIMINGS[side])} ({side})")
                        for part in losses:
                            data[part].append(one_round(lab, LOSSES[part], side, number, args.drill_reports))
                    lab.set_timing(TIMINGS["tuned"])
                if "switchover" in parts:
                    for number in range(1, args.rounds + 1):
                        data["switchover"].append(one_round(lab, "switchover", "tuned", number, args.drill_reports))
                if "rejoin" in parts:
                    for size in [args.data_mb] + ([args.large_mb] if args.large_mb else []):
                        rejoin_rounds(lab, data, size, args)
        except Exception as err:  # the reports still say what was measured, and why it stopped
            data["notes"].append(f"stopped early: {type(err).__name__}: {err}")
            say(data["notes"][-1])
        finally:
            data["finished_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    met = write_reports(args.out, data)
    print((args.out / "bench.md").read_text())
    return 0 if met and not data["notes"] else 1


if __name__ == "__main__":
    sys.exit(main())
