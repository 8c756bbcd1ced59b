"""The drill engine: run a scenario's rounds, keep their events and checks, measure RTO/RPO, judge vs targets.

A scenario (lab or RDS) does the fault and the waiting; the engine owns what every drill shares:
numbered rounds with timestamped events and named checks, RTO and RPO from the write probe's
commits, the verdict against the targets, and restoring what the drill changed at the end
(even when a round failed half-way).
"""

from __future__ import annotations

import math
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from pgha.drill.probe import Commit, ProbeReport, lost_seconds

Say = Callable[[str], None]

#: The seed's KPIs: RTO < 5 min, RPO < 1 min, no acknowledged write lost with synchronous replication.
DEFAULT_MAX_RTO_S = 300.0
DEFAULT_MAX_RPO_S = 60.0
DEFAULT_MAX_LOST = 0


class DrillRefused(RuntimeError):
    """The drill did not start: bad input, a guard said no, or the target is missing. Nothing was changed."""


def target_problem(value: float) -> str | None:
    """Why ``value`` cannot be a drill target (RTO or RPO seconds, lost commits), or None when it can.

    A target is a finite number, 0 or more: a NaN passes every comparison (``rto > nan`` is False, so
    any drill passes) and cannot be written as JSON; an infinite one cannot be either; a negative one
    fails every round. The CLI's options and :class:`Targets` both judge with this one rule.
    """
    if isinstance(value, float) and not math.isfinite(value):
        return f"{value!r} is not a finite number"
    if value < 0:
        return f"{value!r} is negative: a target is 0 or more"
    return None


@dataclass(frozen=True)
class Targets:
    """What a drill must meet to pass (defaults: the seed's KPIs). Refuses a target
    :func:`target_problem` refuses (ValueError), so a drill can never be judged against one."""

    max_rto_s: float = DEFAULT_MAX_RTO_S
    max_rpo_s: float = DEFAULT_MAX_RPO_S
    max_lost: int = DEFAULT_MAX_LOST

    def __post_init__(self) -> None:
        problems = [
            f"{name}: {problem}"
            for name in ("max_rto_s", "max_rpo_s", "max_lost")
            if (problem := target_problem(getattr(self, name))) is not None
        ]
        if problems:
            raise ValueError("drill targets refused: " + "; ".join(problems))


@dataclass(frozen=True)
class Event:
    """Something that happened during a round, at an epoch time."""

    at: float
    name: str
    detail: str = ""


@dataclass(frozen=True)
class Check:
    """A named post-condition and whether it held."""

    name: str
    ok: bool
    detail: str = ""


@dataclass
class Round:
    """One round of a drill: what happened, what was checked, what it cost."""

    number: int
    say: Say = field(default=lambda _line: None, repr=False, compare=False)
    started: float = field(default_factory=time.time)
    finished: float | None = None
    events: list[Event] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)
    commits: list[Commit] = field(default_factory=list)
    lost: list[int] = field(default_factory=list)
    rto_s: float | None = None
    #: (start, end) epoch times of the stretch the RTO measures.
    rto_window: tuple[float, float] | None = None
    rto_source: str = "not measured"
    #: Set when the writes had not come back when the measurement ended: the seconds from the last acknowledged
    #: write to that end, a lower bound of the RTO (``rto_s`` is then None and the round fails).
    not_recovered_s: float | None = None
    rpo_s: float | None = None
    rpo_source: str = "not measured"
    error: str | None = None
    facts: dict[str, object] = field(default_factory=dict)

    def event(self, name: str, detail: str = "", at: float | None = None) -> None:
        """Record (and show) an event; ``at`` defaults to now."""
        self.events.append(Event(time.time() if at is None else at, name, detail))
        self.say(f"round {self.number}: {name}" + (f" ({detail})" if detail else ""))

    def check(self, name: str, ok: bool, detail: str = "") -> bool:
        """Record (and show) whether a post-condition held; returns ``ok``."""
        self.checks.append(Check(name, bool(ok), detail))
        self.say(f"round {self.number}: {'ok' if ok else 'FAILED'} - {name}" + (f": {detail}" if detail else ""))
        return bool(ok)

    def measure_probe(
        self, report: ProbeReport, lost: list[int], source: str = "write probe", noise_s: float = 0.0
    ) -> None:
        """RTO = the longest stretch without an acknowledged commit (between two, or from the probe's start to
        its first); when the probe's writes had not come back at its stop, no RTO but the open stretch (see
        :meth:`writes_not_back`). RPO = the lost commits and the seconds of writes they span. Adds the "writes
        stopped" / "writes back" events at their real times when the stretch is longer than ``noise_s`` (the
        probe's ordinary pace is no outage)."""
        self.commits = list(report.commits)
        self.lost = list(lost)
        outage = report.outage()
        if outage is not None and not outage.recovered:
            self.writes_not_back(outage.start, outage.end, source)
        elif outage is not None:
            self.rto_window, self.rto_s, self.rto_source = (outage.start, outage.end), outage.seconds, source
            if outage.seconds > noise_s:
                before = "the probe started" if outage.start == report.started else "last acknowledged commit"
                self.events.append(Event(outage.start, "writes stopped", f"{before} before the longest gap"))
                self.events.append(Event(outage.end, "writes back", f"after {outage.seconds:.2f} s without a commit"))
        self.rpo_s = lost_seconds(self.commits, self.lost)
        self.rpo_source = f"{source}: acknowledged commits missing afterwards"
        if report.errors:  # why writes failed, in order (distinct messages, the first ten)
            self.facts["write_errors"] = [f"{at - self.started:.2f} s: {message}" for at, message in report.errors[:10]]

    def measure_restore(
        self, report: ProbeReport | None, missing: list[int], started: float, ready: float, span: str
    ) -> None:
        """A restore's cost, as both the lab's and RDS's restore-pitr count it: RTO the ``span`` from ``started``
        until the copy was ``ready``; RPO, with a probe's ``report``, the commits acknowledged before the target
        time that the copy lacks (``missing``), in seconds of writes as every drill counts them
        (:func:`pgha.drill.probe.lost_seconds`); without one, not applicable (a restore to a chosen time)."""
        self.rto_s, self.rto_window = round(ready - started, 3), (started, ready)
        self.rto_source = f"restore: {span}"
        if report is None:
            self.rpo_source = "not applicable: a restore to a chosen time"
            return
        self.commits = list(report.commits)
        self.lost = list(missing)
        self.rpo_s = lost_seconds(self.commits, self.lost)
        self.rpo_source = "commits acknowledged before the target time that the restored copy lacks"

    def writes_not_back(self, since: float, until: float, source: str) -> None:
        """The writes had not come back by ``until`` (the end of the measurement): no RTO, but the open stretch
        since ``since`` (the last acknowledged write) as its lower bound, which fails the round."""
        self.rto_s, self.rto_window = None, (since, until)
        self.not_recovered_s = round(until - since, 3)
        self.rto_source = (
            f"{source}: writes had not come back when it stopped; the {self.not_recovered_s:.2f} s "
            "since the last acknowledged write are a lower bound of the RTO"
        )
        self.events.append(Event(since, "writes stopped", "no acknowledged write after this"))
        self.events.append(
            Event(
                until,
                "writes not back",
                f"no acknowledged write for {self.not_recovered_s:.2f} s when the measurement ended",
            )
        )

    @property
    def passed_checks(self) -> bool:
        """True when every check held and the round did not abort."""
        return self.error is None and all(c.ok for c in self.checks)


@dataclass
class DrillResult:
    """A whole drill: its rounds, targets, what it could not restore, and the verdict."""

    target: str
    scenario: str
    targets: Targets
    started: float = field(default_factory=time.time)
    finished: float | None = None
    rounds: list[Round] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    #: What the drill could not put back the way it found it (empty: all restored).
    unrestored: list[str] = field(default_factory=list)
    #: What the drill left changed on purpose, each with what to run: a one-way promotion, an instance kept
    #: with --keep. Not a failure of the drill, but not "restored" either: the report never says all was put back.
    left_changed: list[str] = field(default_factory=list)
    settings: dict[str, object] = field(default_factory=dict)

    def verdict(self) -> tuple[bool, list[str]]:
        """(passed, reasons): passed only when every round succeeded, met the targets, and all was restored."""
        reasons = []
        if not self.rounds:
            reasons.append("no round ran")
        for rnd in self.rounds:
            prefix = f"round {rnd.number}: "
            if rnd.error:
                reasons.append(prefix + f"aborted: {rnd.error}")
            reasons += [
                prefix + f"check failed: {c.name}" + (f" ({c.detail})" if c.detail else "")
                for c in rnd.checks
                if not c.ok
            ]
            if rnd.not_recovered_s is not None:
                reasons.append(
                    prefix + "writes not back when the measurement ended: no acknowledged commit for "
                    f"{rnd.not_recovered_s:.2f} s (RTO at least that, not measured)"
                )
            if rnd.rto_s is not None and rnd.rto_s > self.targets.max_rto_s:
                reasons.append(prefix + f"RTO {rnd.rto_s:.2f} s > target {self.targets.max_rto_s:g} s")
            if rnd.rpo_s is not None and rnd.rpo_s > self.targets.max_rpo_s:
                reasons.append(prefix + f"RPO {rnd.rpo_s:.2f} s > target {self.targets.max_rpo_s:g} s")
            if len(rnd.lost) > self.targets.max_lost:
                reasons.append(prefix + f"{len(rnd.lost)} acknowledged commits lost > target {self.targets.max_lost}")
        reasons += [f"not restored: {problem}" for problem in self.unrestored]
        return not reasons, reasons


class Scenario(Protocol):
    """What the engine needs from a lab or RDS scenario."""

    target: str
    name: str

    def run_round(self, rnd: Round) -> None:
        """Pre-checks, the fault, waiting for recovery, measurements and post-checks of one round."""
        ...

    def restore(self) -> list[str]:
        """Put back what the drill changed; return what could not be restored (empty when all was)."""
        ...

    # Optional: ``left_changed() -> list[str]``, what the drill left changed on purpose (one-way changes,
    # --keep), read by :func:`run_drill` after :meth:`restore` into :attr:`DrillResult.left_changed`.


def run_drill(
    scenario: Scenario, rounds: int, targets: Targets, say: Say = print, settings: dict[str, object] | None = None
) -> DrillResult:
    """Run ``rounds`` rounds of ``scenario`` and always restore at the end, even after a failed round.

    A round that raises is recorded as aborted (with the error) and ends the drill: what state the
    target is in is then uncertain, so the remaining rounds are not run.
    """
    result = DrillResult(target=scenario.target, scenario=scenario.name, targets=targets, settings=dict(settings or {}))
    try:
        for number in range(1, rounds + 1):
            rnd = Round(number, say=say)
            result.rounds.append(rnd)
            say(f"round {number} of {rounds}: {scenario.name} on {scenario.target}")
            try:
                scenario.run_round(rnd)
            except Exception as err:  # any failure ends the round with its reason
                rnd.error = f"{type(err).__name__}: {err}"
                rnd.event("round aborted", rnd.error)
                result.notes.append(f"round {number} aborted:\n" + traceback.format_exc(limit=4))
                break
            finally:
                rnd.finished = time.time()
    finally:
        say("restoring what the drill changed")
        try:
            result.unrestored = scenario.restore()
        except Exception as err:  # report, never hide, what could not be restored
            result.unrestored = [f"restore failed: {type(err).__name__}: {err}"]
        left_changed: Callable[[], list[str]] | None = getattr(scenario, "left_changed", None)
        if callable(left_changed):
            result.left_changed = list(left_changed())
        result.finished = time.time()
    return result
