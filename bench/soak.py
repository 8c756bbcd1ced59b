"""Drill soak: many lab drills back to back under continuous writes; nothing acknowledged may be lost.

Runs ``--drills`` (default $DRILLS or 24: four of each scenario) drills of the drill engine on one
lab, cycling through switchover, kill-leader, crash-leader, freeze-leader, kill-replica and
etcd-member-loss. Two write probes: each drill's own (its RTO and lost commits), and a soak-long
one on its own table that never stops between drills (commits lost at any moment of the soak,
between drills too). After every drill: the cluster's state (3 members, 1 leader, replicas
streaming) and the soak probe's acknowledged commits all present. Stops at the first drill that
loses a commit, with the evidence: each member's WAL positions and timeline (Patroni's GET
/patroni) and the timeline history (GET /history).

Writes ``OUT/soak.json``, ``OUT/soak.md`` and ``OUT/soak.png``; exits 1 when a commit was lost,
a drill failed or the cluster was unhealthy after a drill.

    .venv/bin/python bench/soak.py --drills 24         # make soak DRILLS=24
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pgha.drill.compare import fmt, rto_cell, summarize
from pgha.drill.engine import Targets, run_drill
from pgha.drill.lab import LabDrill
from pgha.drill.probe import ProbeReport, WriteProbe, missing_acknowledged
from pgha.drill.report import render_comparison_png, report_dir_problem, write_report
from pgha.drill.scenarios import LAB_ROUNDS
from pgha.lab.cluster import Lab, LabError, removed_on_exit
from pgha.node.health import health_problems
from pgha.wait import holds_within

#: Every lab scenario but the restore (it measures a copy, not the cluster under faults).
MIX = tuple(name for name in LAB_ROUNDS if name != "restore-pitr")
SOAK_TABLE = "pgha_soak_probe"


def say(line: str) -> None:
    """Progress on stderr, with the time."""
    print(f"{datetime.now(UTC):%H:%M:%S} {line}", file=sys.stderr, flush=True)


def evidence(lab: Lab) -> dict[str, Any]:
    """What a lost commit must be explained with: every member's WAL positions and timeline, the history."""
    found: dict[str, Any] = {"members": {}, "history": None}
    for address in lab.addresses:
        try:
            node = lab.rest("/patroni", address)
            found["members"][address] = {
                k: node.get(k) for k in ("role", "state", "timeline", "xlog", "replication_state", "sync_standby")
            }
        except LabError as err:
            found["members"][address] = {"error": str(err)}
    try:
        found["history"] = lab.rest("/history")
    except LabError as err:
        found["history"] = str(err)
    return found


def cluster_state(lab: Lab) -> dict[str, Any]:
    """Members, roles, states and timelines after a drill, and what keeps the cluster from being healthy."""
    size = len(lab.addresses)
    settled = holds_within("a healthy lab", lambda: not health_problems(lab.members(), size), 60, 0.25)
    members = lab.members()
    problems = health_problems(members, size)
    return {
        "healthy": settled and not problems,
        "problems": problems,
        "members": [f"{m.name}: {m.role}, {m.state}, timeline {m.timeline}" for m in members],
    }


def markdown(data: dict[str, Any]) -> str:
    """soak.md: per scenario count, RTO p50/p95, drills not recovered, lost commits, cluster state; then every
    drill."""
    probe = data["soak_probe"]
    gap = rto_cell({"rto_s": probe["longest_gap_s"], "not_recovered_s": probe.get("not_recovered_s")}, " s")
    lines = [
        f"# pgha drill soak ({data['started_at'][:16]} UTC): {'PASSED' if data['passed'] else 'FAILED'}",
        "",
        f"{len(data['drills'])} of {data['planned']} drills back to back on one lab ({data['timing']}), under a "
        f"soak-long write probe ({probe['acknowledged']} commits acknowledged, {len(probe['lost'])} lost, "
        f"longest stretch without one {gap}) and each drill's own. RTO figures leave out drills whose writes "
        "had not come back when their probe stopped (no RTO; counted as not recovered).",
        "",
    ]
    if data.get("stopped"):
        lines += [
            f"**Stopped:** {data['stopped']}",
            "",
            "```json",
            json.dumps(data.get("evidence"), indent=2)[:6000],
            "```",
            "",
        ]
    lines += [
        "| scenario | drills | RTO p50 | RTO p95 | RTO max | not recovered | lost commits | healthy after | passed |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, s in data["per_scenario"].items():
        lines.append(
            f"| {name} | {s['count']} | {fmt(s['rto_s']['p50'], ' s')} | {fmt(s['rto_s']['p95'], ' s')} | "
            f"{fmt(s['rto_s']['max'], ' s')} | {s['not_recovered']} | {s['lost_commits']} | "
            f"{s['healthy_after']}/{s['count']} | {s['passed']}/{s['count']} |"
        )
    lines += [
        "",
        "![soak](soak.png)",
        "",
        "| # | scenario | RTO | lost | passed | cluster after |",
        "|---|---|---|---|---|---|",
    ]
    for d in data["drills"]:
        lines.append(
            f"| {d['n']} | {d['scenario']} | {rto_cell(d, ' s')} | {d['lost_commits']} | "
            f"{'yes' if d['passed'] else 'no: ' + '; '.join(d['reasons'])[:200]} | "
            f"{'; '.join(d['cluster_after']['members'])} |"
        )
    return "\n".join(lines) + "\n"


def summarize_soak(drills: list[dict[str, Any]]) -> dict[str, Any]:
    """Per scenario: count, RTO p50/p95/max (of the drills whose writes came back), how many did not recover,
    lost commits, healthy-after and passed counts."""
    out = {}
    for name in MIX:
        rows = [d for d in drills if d["scenario"] == name]
        if rows:
            out[name] = {
                "count": len(rows),
                "rto_s": summarize([d["rto_s"] for d in rows if d["rto_s"] is not None]),
                "not_recovered": sum(d.get("not_recovered_s") is not None for d in rows),
                "lost_commits": sum(d["lost_commits"] for d in rows),
                "healthy_after": sum(d["cluster_after"]["healthy"] for d in rows),
                "passed": sum(d["passed"] for d in rows),
            }
    return out


def soak_probe_figures(report: ProbeReport, lost: list[int]) -> dict[str, Any]:
    """The soak-long probe: commits acknowledged and lost, and its longest stretch without an acknowledged commit
    by the drills' RTO definition (``ProbeReport.outage``): ``longest_gap_s``, or ``not_recovered_s`` (a lower
    bound) when its writes had not come back when it stopped."""
    outage = report.outage()
    return {
        "acknowledged": len(report.acknowledged),
        "lost": lost[:100],
        "longest_gap_s": outage.seconds if outage is not None and outage.recovered else None,
        "not_recovered_s": outage.seconds if outage is not None and not outage.recovered else None,
    }


def main() -> int:
    """Run the soak, write the reports, return the exit code."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--drills", type=int, default=int(os.environ.get("DRILLS") or 24))
    parser.add_argument("--out", type=Path, default=Path("reports"))
    parser.add_argument("--drill-reports", type=Path, help="also write every drill's report here")
    args = parser.parse_args()
    for option, directory in (("--out", args.out), ("--drill-reports", args.drill_reports)):
        problem = directory and report_dir_problem(directory)  # before the lab starts, not after the rounds
        if problem:
            parser.error(f"{option} {problem}")
    root = Path(tempfile.mkdtemp(prefix="pgha-soak-"))
    lab = Lab(root=root, report=lambda _line: None)
    data: dict[str, Any] = {
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "planned": args.drills,
        "lab_addresses": list(lab.addresses),
        "drills": [],
        "stopped": None,
    }
    soak: WriteProbe | None = None
    with removed_on_exit(lab):
        try:
            say(f"lab up in {root} on {', '.join(lab.addresses)}")
            lab.up()
            data["timing"] = asdict(lab.timing)
            soak = WriteProbe(lab.settings(), interval=0.1, table=SOAK_TABLE)
            soak.prepare()
            soak.start()
            with lab.drill_lock():
                for n in range(1, args.drills + 1):
                    scenario = MIX[(n - 1) % len(MIX)]
                    result = run_drill(
                        LabDrill(lab, scenario), 1, Targets(), say=say, settings={"soak": n, "timing": data["timing"]}
                    )
                    if args.drill_reports:
                        write_report(result, args.drill_reports)
                    rnd = result.rounds[0] if result.rounds else None
                    passed, reasons = result.verdict()
                    state = cluster_state(lab)
                    soak_lost = missing_acknowledged(lab.settings(), soak.report.acknowledged, SOAK_TABLE)
                    row = {
                        "n": n,
                        "scenario": scenario,
                        "rto_s": rnd.rto_s if rnd else None,
                        "not_recovered_s": rnd.not_recovered_s if rnd else None,
                        "lost_commits": len(rnd.lost) if rnd else 0,
                        "lost_ids": rnd.lost[:50] if rnd else [],
                        "soak_probe_lost": len(soak_lost),
                        "passed": passed,
                        "reasons": reasons,
                        "cluster_after": state,
                        "leader_after": (rnd.facts.get("leader_after") if rnd else None),
                    }
                    data["drills"].append(row)
                    say(
                        f"drill {n}/{args.drills} {scenario}: RTO {rto_cell(row, ' s')}, lost {row['lost_commits']}"
                        f" (soak probe {len(soak_lost)}), {'passed' if passed else 'FAILED'}, "
                        f"{'healthy' if state['healthy'] else 'UNHEALTHY: ' + '; '.join(state['problems'])}"
                    )
                    if row["lost_commits"] or soak_lost:
                        ids = (row["lost_ids"] or soak_lost)[:20]
                        data["stopped"] = (
                            f"drill {n} ({scenario}) lost {row['lost_commits']} commits of its probe "
                            f"and {len(soak_lost)} of the soak probe (ids {ids})"
                        )
                        data["evidence"] = evidence(lab)
                        break
        except Exception as err:  # the report still says what was measured, and why it stopped
            data["stopped"] = f"stopped early: {type(err).__name__}: {err}"
            say(data["stopped"])
        finally:
            if soak is not None:
                report = soak.stop()
                try:
                    lost = missing_acknowledged(lab.settings(), report.acknowledged, SOAK_TABLE)
                except Exception as err:  # the lab may be gone; say so instead of guessing
                    lost, data["soak_probe_error"] = [], str(err)
                data["soak_probe"] = soak_probe_figures(report, lost)
            else:
                data["soak_probe"] = soak_probe_figures(ProbeReport(), [])
            data["finished_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    data.setdefault("timing", None)
    data["per_scenario"] = summarize_soak(data["drills"])
    data["passed"] = (
        not data["stopped"]
        and len(data["drills"]) == args.drills
        and not data["soak_probe"]["lost"]
        and data["soak_probe"]["not_recovered_s"] is None
        and all(d["passed"] and d["cluster_after"]["healthy"] for d in data["drills"])
    )
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "soak.json").write_text(json.dumps(data, indent=2) + "\n")
    render_comparison_png(
        [
            (
                "drill soak: RTO per scenario",
                {name: [d["rto_s"] for d in data["drills"] if d["scenario"] == name and d["rto_s"]] for name in MIX},
            )
        ],
        args.out / "soak.png",
    )
    (args.out / "soak.md").write_text(markdown(data))
    print((args.out / "soak.md").read_text())
    return 0 if data["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
