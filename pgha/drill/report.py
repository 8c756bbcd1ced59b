"""Drill reports: JSON for machines, Markdown for PRs and runbooks, and a PNG timeline (matplotlib, Agg).

Files are ``DIR/<target>-<scenario>-<UTC time>.{json,md,png}``. The chart shows, per round,
commits per 100 ms over time with the events marked and the RTO window shaded.
"""

from __future__ import annotations

import json
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pgha.drill.compare import rto_cell
from pgha.drill.engine import DrillResult, Round

BUCKET_S = 0.1


def _iso(epoch: float | None) -> str | None:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="milliseconds") if epoch is not None else None


def _round_json(rnd: Round) -> dict[str, Any]:
    def rel(at: float) -> float:
        return round(at - rnd.started, 3)

    return {
        "round": rnd.number,
        "started_at": _iso(rnd.started),
        "finished_at": _iso(rnd.finished),
        "rto_s": rnd.rto_s,
        "not_recovered_s": rnd.not_recovered_s,
        "rto_source": rnd.rto_source,
        "rto_window_s": [rel(rnd.rto_window[0]), rel(rnd.rto_window[1])] if rnd.rto_window else None,
        "rpo_s": rnd.rpo_s,
        "rpo_source": rnd.rpo_source,
        "acknowledged_commits": len(rnd.commits),
        "lost_commits": rnd.lost,
        "events": [
            {"at": _iso(e.at), "t_s": rel(e.at), "name": e.name, "detail": e.detail}
            for e in sorted(rnd.events, key=lambda e: e.at)
        ],
        "checks": [{"name": c.name, "ok": c.ok, "detail": c.detail} for c in rnd.checks],
        "passed_checks": rnd.passed_checks,
        "error": rnd.error,
        "facts": rnd.facts,
        "commit_times_s": [rel(c.at) for c in rnd.commits],
    }


def report_json(result: DrillResult) -> dict[str, Any]:
    """The whole drill as a JSON-able dict (the schema of the .json report)."""
    passed, reasons = result.verdict()
    return {
        "scenario": result.scenario,
        "target": result.target,
        "started_at": _iso(result.started),
        "finished_at": _iso(result.finished),
        "settings": result.settings,
        "targets": {
            "max_rto_s": result.targets.max_rto_s,
            "max_rpo_s": result.targets.max_rpo_s,
            "max_lost_commits": result.targets.max_lost,
        },
        "verdict": {"passed": passed, "reasons": reasons},
        # restored: everything put back; False also when the drill left a change on purpose (left_changed)
        "restored": not result.unrestored and not result.left_changed,
        "unrestored": result.unrestored,
        "left_changed": result.left_changed,
        "rounds": [_round_json(r) for r in result.rounds],
        "notes": result.notes,
    }


def _fmt(value: float | None, unit: str = " s") -> str:
    return "not measured" if value is None else f"{value:.2f}{unit}"


def rto_text(rnd: Round) -> str:
    """A round's RTO for people, as the bench and soak tables say it (:func:`pgha.drill.compare.rto_cell`)."""
    return rto_cell({"rto_s": rnd.rto_s, "not_recovered_s": rnd.not_recovered_s}, " s", missing="not measured")


def report_markdown(result: DrillResult, png_name: str | None = None) -> str:
    """The drill as Markdown: verdict, targets, one table row per round, then each round's events and checks."""
    data = report_json(result)
    passed = data["verdict"]["passed"]
    lines = [
        f"# Drill `{result.scenario}` on {result.target}: {'PASSED' if passed else 'FAILED'}",
        "",
        f"- started {data['started_at']}, finished {data['finished_at']}",
        f"- targets: RTO ≤ {result.targets.max_rto_s:g} s, RPO ≤ {result.targets.max_rpo_s:g} s, "
        f"lost commits ≤ {result.targets.max_lost}",
    ]
    lines += [f"- {key}: {value}" for key, value in result.settings.items()]
    if not passed:
        lines += ["", "**Why it failed:**", ""] + [f"- {r}" for r in data["verdict"]["reasons"]]
    lines += ["", "| round | RTO | RPO | lost commits | acknowledged | checks |", "|---|---|---|---|---|---|"]
    for rnd in result.rounds:
        ok = sum(c.ok for c in rnd.checks)
        lines.append(
            f"| {rnd.number} | {rto_text(rnd)} | {_fmt(rnd.rpo_s)} | {len(rnd.lost)} | "
            f"{len(rnd.commits)} | {ok}/{len(rnd.checks)}{' (aborted)' if rnd.error else ''} |"
        )
    if png_name:
        lines += ["", f"![timeline]({png_name})"]
    for rnd, rj in zip(result.rounds, data["rounds"], strict=True):
        lines += [
            "",
            f"## Round {rnd.number}",
            "",
            f"- RTO: {rto_text(rnd)} ({rnd.rto_source})",
            f"- RPO: {_fmt(rnd.rpo_s)} ({rnd.rpo_source})",
        ]
        if rnd.lost:
            lines.append(f"- lost commits: {', '.join(map(str, rnd.lost[:50]))}{' ...' if len(rnd.lost) > 50 else ''}")
        lines += [f"- {key}: {value}" for key, value in rnd.facts.items()]
        if rnd.error:
            lines.append(f"- **aborted**: {rnd.error}")
        lines += ["", "| t (s) | event | detail |", "|---|---|---|"]
        lines += [f"| {e['t_s']:.2f} | {e['name']} | {e['detail']} |" for e in rj["events"]]
        lines += ["", "| check | result | detail |", "|---|---|---|"]
        lines += [f"| {c.name} | {'ok' if c.ok else '**FAILED**'} | {c.detail} |" for c in rnd.checks]
    lines += ["", "## Restored", ""]
    lines += [f"- **not restored**: {p}" for p in result.unrestored]
    lines += [f"- **left changed** (not put back, by design): {p}" for p in result.left_changed]
    if not result.unrestored and not result.left_changed:
        lines.append("- everything the drill changed was put back")
    if result.notes:
        lines += ["", "## Notes", ""] + [f"```\n{n.strip()}\n```" for n in result.notes]
    return "\n".join(lines) + "\n"


def render_png(result: DrillResult, path: Path) -> None:
    """The timeline chart: per round, commits per 100 ms, events as labelled lines, the RTO window shaded."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rounds = result.rounds or []
    fig, axes = plt.subplots(max(len(rounds), 1), 1, figsize=(12, 3.6 * max(len(rounds), 1)), squeeze=False)
    for ax, rnd in zip(axes[:, 0], rounds or [None], strict=False):
        if rnd is None:
            ax.text(0.5, 0.5, "no round ran", ha="center", va="center", transform=ax.transAxes)
            continue
        end = max([rnd.finished or rnd.started] + [c.at for c in rnd.commits] + [e.at for e in rnd.events])
        span = max(end - rnd.started, BUCKET_S)
        buckets = [0] * (int(span / BUCKET_S) + 1)
        for commit in rnd.commits:
            index = int((commit.at - rnd.started) / BUCKET_S)
            if 0 <= index < len(buckets):
                buckets[index] += 1
        xs = [i * BUCKET_S for i in range(len(buckets))]
        ax.bar(xs, buckets, width=BUCKET_S, align="edge", color="#2b7bba", label="commits per 100 ms")
        if rnd.rto_window:
            ax.axvspan(
                rnd.rto_window[0] - rnd.started,
                rnd.rto_window[1] - rnd.started,
                color="#d62728",
                alpha=0.15,
                label=f"RTO window ({rto_text(rnd)})",
            )
        top = max([*buckets, 1]) * 1.05
        events = sorted(rnd.events, key=lambda e: e.at)
        for n, event in enumerate(events):
            x = event.at - rnd.started
            ax.axvline(x, color="#444444", linestyle="--", linewidth=0.8)
            ax.text(
                x,
                top * (0.95 - 0.09 * (n % 6)),
                f" {event.name}",
                fontsize=7,
                rotation=0,
                va="top",
                ha="left",
                color="#222222",
                bbox={"facecolor": "white", "alpha": 0.7, "linewidth": 0, "pad": 1},
            )
        ax.set_xlim(0, span)
        ax.set_ylim(0, top)
        ax.set_xlabel("seconds since the round started")
        ax.set_ylabel("commits / 100 ms")
        ax.set_title(
            f"{result.target} {result.scenario}, round {rnd.number}: RTO {rto_text(rnd)}, "
            f"RPO {_fmt(rnd.rpo_s)}, {len(rnd.lost)} lost",
            fontsize=10,
        )
        ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def report_dir_problem(directory: Path) -> str | None:
    """Why the reports could not be written into ``directory``, or None when they can: checked before a drill
    injects its fault, so a bad ``--report`` stops it then, not after the drill with the RTO unprinted.

    Changes nothing: the directory is created only by :func:`write_report`, so a drill refused later leaves
    none behind. Its nearest existing ancestor must be a directory where a file can be created (a temporary
    one, removed at once: as root, os.access would say yes to a read-only file system).
    """
    existing = directory
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        what = "is not a directory" if existing == directory else f"cannot be created: {existing} is not a directory"
        return f"{directory} {what}"
    try:
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as err:
        return f"{directory} cannot be written: {err.strerror or err} ({existing})"
    return None


def write_report(result: DrillResult, directory: Path) -> dict[str, Path]:
    """Write the JSON, Markdown and PNG reports into ``directory``; returns their paths by kind."""
    directory.mkdir(parents=True, exist_ok=True)
    stamp = datetime.fromtimestamp(result.started, UTC).strftime("%Y%m%dT%H%M%SZ")
    base = directory / f"{result.target}-{result.scenario}-{stamp}"
    paths = {"json": base.with_suffix(".json"), "markdown": base.with_suffix(".md"), "png": base.with_suffix(".png")}
    # allow_nan=False: a NaN or infinity would be written as NaN/Infinity, which is not JSON
    paths["json"].write_text(json.dumps(report_json(result), indent=2, allow_nan=False) + "\n")
    render_png(result, paths["png"])
    paths["markdown"].write_text(report_markdown(result, paths["png"].name))
    return paths


def render_comparison_png(
    panels: list[tuple[str, dict[str, list[float]]]],
    path: Path,
    unit: str = "seconds",
    targets: dict[str, float] | None = None,
) -> None:
    """Side-by-side comparison: one panel per figure (title, side -> values), every round as a dot, the p50
    as a bar and the p95 as a tick, so the spread between rounds shows next to the central value;
    ``targets`` (panel title -> limit) draws a dashed target line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from pgha.drill.compare import percentile

    widths = [max(4.2, 1.4 * len(sides)) for _title, sides in panels] or [4.2]
    fig, axes = plt.subplots(
        1, len(widths), figsize=(sum(widths), 4.2), squeeze=False, gridspec_kw={"width_ratios": widths}
    )
    colors = ["#2b7bba", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b"]
    for ax, (title, sides) in zip(axes[0], panels or [("nothing measured", {})], strict=False):
        for index, values in enumerate(sides.values()):
            color = colors[index % len(colors)]
            p50, p95 = percentile(values, 50), percentile(values, 95)
            if p50 is not None:
                ax.bar(index, p50, width=0.6, color=color, alpha=0.35)
                ax.text(index, p50, f"p50 {p50:.1f}", ha="center", va="bottom", fontsize=8)
            if p95 is not None:
                ax.hlines(p95, index - 0.3, index + 0.3, colors=color, linewidth=2)
                ax.text(index + 0.32, p95, f"p95 {p95:.1f}", va="center", fontsize=7)
            spread = [index + 0.12 * ((n % 5) - 2) / 2 for n in range(len(values))]
            ax.scatter(spread, values, color=color, s=14, zorder=3)
        ax.set_xticks(range(len(sides)), [f"{side}\n(n={len(v)})" for side, v in sides.items()], fontsize=8)
        if targets and title in targets:
            ax.axhline(targets[title], color="#444444", linestyle="--", linewidth=1)
            ax.text(len(sides) - 0.5, targets[title], f"target {targets[title]:g}", fontsize=7, ha="right", va="bottom")
        ax.set_title(title, fontsize=10)
        ax.set_ylabel(unit)
        ax.set_ylim(bottom=0)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
