"""Side-by-side figures from drill rounds: percentiles, interleaved round order, targets and their verdicts.

The benchmark (``bench/ha.py``) and the soak (``bench/soak.py``) run the drill engine; this module
turns what the rounds measured into the summary they report: p50/p95 per side, ratios between
sides, and one verdict per target. Pure functions, so they are tested without a lab.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any


def percentile(values: Sequence[float], q: float) -> float | None:
    """The q-th percentile (0-100) by linear interpolation between closest ranks; None for no values."""
    if not values:
        return None
    if not 0 <= q <= 100:
        raise ValueError(f"percentile {q} is outside 0-100")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def summarize(values: Sequence[float]) -> dict[str, Any]:
    """n, p50, p95, min and max of the values (rounded to ms); the p's are None without values."""

    def ms(value: float | None) -> float | None:
        return None if value is None else round(value, 3)

    return {
        "n": len(values),
        "p50": ms(percentile(values, 50)),
        "p95": ms(percentile(values, 95)),
        "min": ms(min(values, default=None)),
        "max": ms(max(values, default=None)),
    }


def ratio(slow: float | None, fast: float | None) -> float | None:
    """slow / fast (how many times faster ``fast`` is), None when either is missing or fast is 0."""
    if slow is None or fast is None or fast <= 0:
        return None
    return round(slow / fast, 2)


def interleave(sides: Sequence[str], rounds: int) -> list[tuple[int, str]]:
    """(round, side) in run order: every round runs each side once, the order flipping each round
    (A B, B A, A B, ...) so that drift over the run, and what one side leaves behind for the next,
    hit both sides alike."""
    order = []
    for number in range(1, rounds + 1):
        this_round = list(sides) if number % 2 else list(reversed(sides))
        order += [(number, side) for side in this_round]
    return order


@dataclass(frozen=True)
class Verdict:
    """One target: what was measured against what was wanted, and whether it held."""

    name: str
    measured: float | None
    wanted: str
    met: bool
    detail: str = ""


def at_most(name: str, measured: float | None, limit: float, unit: str = " s", detail: str = "") -> Verdict:
    """Met when measured <= limit (missing measurements miss the target)."""
    return Verdict(name, measured, f"≤ {limit:g}{unit}", measured is not None and measured <= limit, detail)


def at_least(name: str, measured: float | None, floor: float, unit: str = "x", detail: str = "") -> Verdict:
    """Met when measured >= floor (missing measurements miss the target)."""
    return Verdict(name, measured, f"≥ {floor:g}{unit}", measured is not None and measured >= floor, detail)


def verdicts_json(verdicts: Sequence[Verdict]) -> list[dict[str, Any]]:
    """The verdicts as JSON-able dicts."""
    return [asdict(v) for v in verdicts]


def fmt(value: float | None, unit: str = "") -> str:
    """A number for a table: two decimals, or a dash when missing."""
    return "-" if value is None else f"{value:.2f}{unit}"


def rto_cell(row: Mapping[str, Any], unit: str = "", missing: str = "-") -> str:
    """A round's RTO (``rto_s``, ``not_recovered_s``): its seconds, "not recovered (≥ N)" when its writes had
    not come back when the probe stopped, or ``missing`` when nothing was measured."""
    if row.get("not_recovered_s") is not None:
        return f"not recovered (≥ {row['not_recovered_s']:.2f}{unit})"
    return missing if row.get("rto_s") is None else fmt(row["rto_s"], unit)


def verdict_table(verdicts: Sequence[Verdict]) -> list[str]:
    """Markdown rows: target, measured, wanted, met."""
    lines = ["| target | measured | wanted | verdict |", "|---|---|---|---|"]
    lines += [
        f"| {v.name} | {fmt(v.measured)} | {v.wanted} | {'met' if v.met else '**MISSED**'}"
        f"{' - ' + v.detail if v.detail else ''} |"
        for v in verdicts
    ]
    return lines
