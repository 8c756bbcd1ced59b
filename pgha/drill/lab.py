"""Drills on the local HA lab (real Patroni + etcd + PostgreSQL): the faults, the waiting and the checks.

Every scenario runs under a write probe committing through the writer DSN and a watcher that
turns Patroni's view of the members into events (leader lost, new leader, old node rejoined).
A drill holds the lab's drill lock, so `lab up` restarts nothing it is using, and leaves the lab
as it found it (three members, one leader, streaming replicas) or says what it could not restore.
"""

from __future__ import annotations

import contextlib
import random
import re
import shutil
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pgha.connect import ConnectionSettings, connect
from pgha.drill.engine import DrillRefused, Round
from pgha.drill.probe import WriteProbe, missing_acknowledged, present_ids
from pgha.drill.scenarios import LAB_ROUNDS
from pgha.lab.cluster import Lab, LabError, Member
from pgha.local import as_service_user, free_port, give_to_service_user, postgres_bindir
from pgha.node.health import REPLICA_ROLES, health_problems
from pgha.wait import holds_within

SCENARIOS = tuple(LAB_ROUNDS)
#: Seconds of steady writes before the fault, so the chart shows a baseline.
BASELINE_S = 2.0
SETTLE_TIMEOUT_S = 120.0
#: How kill-leader's old leader comes back: rewound by pg_rewind (Patroni's way), or re-cloned from scratch.
REJOIN_WAYS = ("rewind", "reclone")
#: Patroni log lines that mark a step of a rejoin (timestamp, message).
REJOIN_STEP = re.compile(
    r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) \w+: .*?(Trying to archive|running pg_rewind"
    r"|pg_rewind exit code|crash recovery|single.user|trying to bootstrap|replica has been created"
    r"|starting as a secondary|establishing a new patroni|Local timeline)"
)
#: Patroni 4.1 log lines reacting to its PostgreSQL's crash, in the order they come: the HA loop's queries fail,
#: then it finds the postmaster gone and, holding the leader key, starts it again (or, with
#: primary_start_timeout 0, fails over).
CRASH_STEP = re.compile(
    r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) \w+: .*?(Retry got exception"
    r"|Error communicating with PostgreSQL|Postgresql is not running|starting primary after failure"
    r"|Primary crashed)"
)
RESTART_IN_PLACE = "starting primary after failure"


def _wait(what: str, condition: Callable[[], object], timeout: float = SETTLE_TIMEOUT_S) -> bool:
    """Whether ``condition`` held within ``timeout`` (a moment without a leader counts as not yet): a drill
    reports a check that failed rather than stopping, so this is :func:`pgha.wait.holds_within`."""
    return holds_within(what, condition, timeout, 0.25, ignore=(LabError,))


class MemberWatcher:
    """Polls the members in the background and records leader changes and the old node's return as events."""

    def __init__(self, lab: Lab, rnd: Round, old_leader: str, watched: str | None = None):
        self.lab, self.rnd, self.old_leader = lab, rnd, old_leader
        self.watched = watched or old_leader
        self.leader: str | None = old_leader
        self.new_leader: str | None = None
        self.new_leader_at: float | None = None
        self.leader_lost = False
        self.rejoined_at: float | None = None
        self.seen_down = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> MemberWatcher:
        """Begin watching."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop watching."""
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.is_set():
            members = self.lab.members()
            if members:
                self._observe(members)
            self._stop.wait(0.25)

    def _observe(self, members: list[Member]) -> None:
        running = [m.name for m in members if m.role == "leader" and m.state == "running"]
        leader = running[0] if running else None
        if leader is None and self.leader is not None:
            self.leader_lost = True
            self.rnd.event("leader lost", f"no running leader (was {self.leader})")
        elif leader is not None and leader != self.leader:
            back = leader == self.old_leader and self.new_leader is None
            self.rnd.event("leader running again" if back else "new leader", leader)
            if leader != self.old_leader and self.new_leader is None:
                self.new_leader, self.new_leader_at = leader, time.time()
        self.leader = leader
        watched = next((m for m in members if m.name == self.watched), None)
        if watched is None or watched.state not in ("running", "streaming"):
            self.seen_down = True
        elif (
            self.rejoined_at is None
            and watched.role in REPLICA_ROLES
            and watched.state == "streaming"
            and (self.seen_down or self.new_leader)
        ):
            self.rejoined_at = time.time()
            self.rnd.event("old node rejoined", f"{self.watched} is {watched.role}, streaming")


class LabDrill:
    """One lab scenario, run by :func:`pgha.drill.engine.run_drill`."""

    target = "lab"

    def __init__(
        self, lab: Lab, name: str, rejoin: str = "rewind", after_failover: Callable[[Round], None] | None = None
    ):
        """``rejoin`` and ``after_failover`` shape kill-leader: ``after_failover(rnd)`` runs once the new leader
        takes writes and before the old node restarts (e.g. to write data it lacks); ``rejoin="reclone"`` deletes the
        old node's data directory first, so Patroni re-clones it (pg_basebackup) instead of rewinding it."""
        if name not in SCENARIOS:
            raise DrillRefused(f"unknown lab scenario {name!r}: choose one of {', '.join(SCENARIOS)}")
        if rejoin not in REJOIN_WAYS:
            raise DrillRefused(f"unknown rejoin {rejoin!r}: choose one of {', '.join(REJOIN_WAYS)}")
        if rejoin != REJOIN_WAYS[0] and name != "kill-leader":
            raise DrillRefused(
                f"--rejoin {rejoin} is for kill-leader only (how the killed leader comes back); {name} does not use it"
            )
        self.lab, self.name = lab, name
        self.rejoin, self.after_failover = rejoin, after_failover
        self.scratch: Path | None = None

    # --- before and after ------------------------------------------------------------------

    def prepare(self) -> None:
        """Refuse (changing nothing) unless the lab runs and is healthy within a short wait."""
        if not self.lab.members():
            raise DrillRefused(f"the lab in {self.lab.root} is not running: start it with `make up`")
        holder = self.lab.drill_holder()
        if holder:
            raise DrillRefused(f"another drill (pid {holder}) is using the lab: wait for it")
        if not _wait("a healthy lab", lambda: not self._problems(), 60):
            raise DrillRefused("the lab is not healthy: " + "; ".join(self._problems()))

    def _pre_check(self, rnd: Round) -> Member:
        ok = _wait("a healthy lab", lambda: not self._problems())
        rnd.check(
            "lab healthy before the fault (3 members, 1 leader, streaming replicas, a sync standby)",
            ok,
            "; ".join(self._problems()),
        )
        if not ok:
            raise LabError("the lab is not healthy; not injecting a fault")
        leader = self.lab.leader()
        rnd.facts.update(leader_before=leader.name, timeline_before=leader.timeline)
        return leader

    def _problems(self) -> list[str]:
        """What keeps the lab from being healthy now, by the one rule (:func:`pgha.node.health.health_problems`)."""
        return health_problems(self.lab.members(), len(self.lab.addresses))

    def _sync_standby(self) -> Member | None:
        return next((m for m in self.lab.members() if m.role == "sync_standby"), None)

    def restore(self) -> list[str]:
        """Thaw, restart what is missing, wait for a healthy lab; return what is still wrong."""
        problems = []
        for node in self.lab.frozen_nodes():
            self.lab.thaw_node(node)
        if self.scratch is not None:
            _stop_scratch(self.scratch)
        missing = [
            f"{node}/{proc}" for node, procs in self.lab.running().items() for proc, pid in procs.items() if not pid
        ]
        if missing:
            try:
                self.lab.up()
            except (LabError, OSError) as err:
                problems.append(f"could not restart {', '.join(missing)}: {err}")
        if not _wait("a healthy lab", lambda: not self._problems()):
            problems += self._problems() or ["the lab did not settle"]
        return problems

    # --- rounds ---------------------------------------------------------------------------------

    def run_round(self, rnd: Round) -> None:
        """Dispatch to the scenario (:data:`pgha.drill.scenarios.LAB_ROUNDS`)."""
        getattr(self, LAB_ROUNDS[self.name])(rnd)

    def _under_load(
        self,
        rnd: Round,
        victim: str,
        old_leader: str,
        fault: Callable[[], None],
        recover: Callable[[MemberWatcher], None],
    ) -> tuple[WriteProbe, MemberWatcher]:
        """Probe + watcher around ``fault`` then ``recover``; returns both, stopped and measured."""
        probe = WriteProbe(self.lab.settings())
        probe.prepare()
        probe.start()
        watcher = MemberWatcher(self.lab, rnd, old_leader, watched=victim).start()
        try:
            # The fault lands at a random point of Patroni's HA loop. Drills repeated at a steady pace would
            # otherwise hit the same phase every round and bias the RTO one way: a node loss costs ttl minus
            # the time since the leader key's last renewal, a crash the time to the next loop.
            delay = random.uniform(0, self.lab.timing.loop_wait)
            rnd.facts["fault_phase_delay_s"] = round(delay, 3)
            time.sleep(BASELINE_S + delay)
            fault()
            recover(watcher)
            writes_seen = len(probe.report.commits)
            rnd.check(
                "writes go on through the writer DSN",
                _wait("writes", lambda: len(probe.report.commits) > writes_seen + 20, 60),
            )
        finally:
            report = probe.stop()
            watcher.stop()
        rnd.measure_probe(
            report, missing_acknowledged(self.lab.settings(), report.acknowledged), noise_s=4 * probe.interval
        )
        rnd.check("no acknowledged commit lost", not rnd.lost, f"{len(rnd.lost)} lost" if rnd.lost else "")
        return probe, watcher

    def _rejoin_checks(self, rnd: Round, watcher: MemberWatcher, node: str, log_offset: int) -> None:
        rejoined = _wait(
            f"{node} to rejoin",
            lambda: (
                watcher.rejoined_at is not None
                or (self._member(node).role in REPLICA_ROLES and self._member(node).state == "streaming")
            ),
        )
        rnd.check(f"{node} rejoined as a streaming replica", rejoined, self._describe(node))
        if rejoined and watcher.rejoined_at is None:  # the watcher had stopped: this poll saw it, as precisely
            watcher.rejoined_at = time.time()
            rnd.event("old node rejoined", self._describe(node))
        rewound = "pg_rewind" in self._log_since(node, log_offset)
        rnd.facts["old_leader_rewound"] = rewound
        leader = self.lab.leader()
        same = _wait("one timeline", lambda: self._member(node).timeline == self.lab.leader().timeline, 60)
        rnd.check(
            f"{node} follows the new leader's timeline",
            same,
            f"{node} on {self._member(node).timeline}, leader {leader.name} on {self.lab.leader().timeline}"
            + ("; rewound with pg_rewind" if rewound else ""),
        )

    def _member(self, name: str) -> Member:
        member = next((m for m in self.lab.members() if m.name == name), None)
        if member is None:
            raise LabError(f"{name} does not answer")
        return member

    def _describe(self, name: str) -> str:
        try:
            m = self._member(name)
            return f"{name}: {m.role}, {m.state}, timeline {m.timeline}"
        except LabError as err:
            return str(err)

    def _log_offset(self, node: str) -> int:
        path = self.lab.node_dir(node) / "patroni.log"
        return path.stat().st_size if path.exists() else 0

    def _log_since(self, node: str, offset: int) -> str:
        path = self.lab.node_dir(node) / "patroni.log"
        if not path.exists():
            return ""
        with open(path, "rb") as log:
            log.seek(offset)
            return log.read().decode(errors="replace")

    def _log_steps(self, node: str, offset: int, pattern: re.Pattern[str]) -> list[tuple[float, str]]:
        """(epoch time, step) of each line of the node's Patroni log since ``offset`` that ``pattern`` matches
        (group 1: the timestamp, in the machine's time zone, UTC here; group 2: the step)."""
        steps = []
        for line in self._log_since(node, offset).splitlines():
            if match := pattern.match(line):
                at = datetime.strptime(match.group(1), "%Y-%m-%d %H:%M:%S,%f").replace(tzinfo=UTC).timestamp()
                steps.append((at, match.group(2)))
        return steps

    def _new_leader_check(self, rnd: Round, watcher: MemberWatcher, old: str) -> None:
        ok = _wait("a new leader", lambda: watcher.new_leader is not None or self.lab.leader().name != old)
        rnd.check("a new leader took over", ok, watcher.new_leader or "")
        rnd.facts["leader_after"] = watcher.new_leader

    def _switchover(self, rnd: Round) -> None:
        old = self._pre_check(rnd)
        offset = self._log_offset(old.name)

        def fault() -> None:
            rnd.event("fault injected", f"planned switchover away from {old.name}")
            self.lab.switchover()

        _probe, watcher = self._under_load(
            rnd, old.name, old.name, fault, lambda w: self._new_leader_check(rnd, w, old.name)
        )
        self._rejoin_checks(rnd, watcher, old.name, offset)

    def _kill_leader(self, rnd: Round) -> None:
        old = self._pre_check(rnd)
        offset = self._log_offset(old.name)

        def fault() -> None:
            rnd.event("fault injected", f"kill -9 of {old.name}'s Patroni and postmaster")
            self.lab.kill_node(old.name)

        def recover(watcher: MemberWatcher) -> None:
            self._new_leader_check(rnd, watcher, old.name)
            if self.after_failover is not None:
                # the new leader holds the key a moment before PostgreSQL has promoted and takes writes
                _wait("a writable leader", lambda: _writable(self.lab.settings()), 60)
                self.after_failover(rnd)
            if self.rejoin == "reclone":
                shutil.rmtree(self.lab.node_dir(old.name) / "pgdata")
                rnd.event("old data directory deleted", f"{old.name} must be re-cloned (pg_basebackup)")
            rnd.event("old node restarting", f"lab up starts {old.name}'s Patroni again")
            self.lab.up()

        _probe, watcher = self._under_load(rnd, old.name, old.name, fault, recover)
        self._rejoin_checks(rnd, watcher, old.name, offset)
        self._rejoin_time(rnd, watcher, old.name, offset)

    def _rejoin_time(self, rnd: Round, watcher: MemberWatcher, node: str, log_offset: int) -> None:
        """Seconds from the old node's Patroni start (its pid file) until it streamed from the new leader, and
        where they went: the first time each step appears in its Patroni log, relative to that start."""
        pidfile = self.lab.node_dir(node) / "patroni.pid"
        if watcher.rejoined_at is None or not pidfile.exists():
            return
        started = pidfile.stat().st_mtime
        rnd.facts.update(rejoin=self.rejoin, rejoin_s=round(watcher.rejoined_at - started, 3))
        steps: dict[str, float] = {}
        archived = 0
        for at, step in self._log_steps(node, log_offset, REJOIN_STEP):
            steps.setdefault(step, round(at - started, 2))
            if step == "Trying to archive":
                archived += 1
                steps["last WAL archived"] = round(at - started, 2)
        rnd.facts.update(rejoin_steps=steps, rejoin_wal_archived_first=archived)

    def _crash_leader(self, rnd: Round) -> None:
        """kill -9 of the leader's postmaster only (an OOM kill, a segfault); its Patroni runs on.

        Still holding the leader key, Patroni starts PostgreSQL again in place on its next HA loop
        ("starting primary after failure"), so loop_wait bounds the detection where a lost node waits
        for the key's ttl. It may also fail over: both are accepted, and the facts say which happened
        (``restarted_in_place``, ``leader_after``) and when Patroni reacted (``patroni_noticed_s``, and
        ``patroni_restart_s`` until it started PostgreSQL again in place), from its log.
        """
        old = self._pre_check(rnd)
        crash: dict[str, Any] = {}

        def fault() -> None:
            crash.update(offset=self._log_offset(old.name), at=time.time())
            crash["pid"] = self.lab.kill_postgres(old.name)
            if crash["pid"] is None:
                raise LabError(f"no postmaster of {old.name} to kill")
            rnd.event("fault injected", f"kill -9 of {old.name}'s postmaster (pid {crash['pid']}); Patroni runs on")

        def leads_again() -> bool:
            leader = self.lab.leader()
            if leader.state == "running" and (
                leader.name != old.name or self.lab.postmaster_pid(old.name) not in (None, crash["pid"])
            ):
                crash["leader"] = leader
            return "leader" in crash

        def recover(watcher: MemberWatcher) -> None:
            ok = _wait("a running leader", leads_again)
            if not rnd.check(
                "a running leader again",
                ok,
                f"{crash['leader'].name}, timeline {crash['leader'].timeline}" if ok else "; ".join(self._problems()),
            ):
                return
            steps = self._log_steps(old.name, crash["offset"], CRASH_STEP)
            if steps:
                crash["noticed"] = steps[0][0]
                rnd.event("Patroni noticed the crash", steps[0][1], at=steps[0][0])
            crash["restart"] = next((at for at, step in steps if step == RESTART_IN_PLACE), None)
            leader = crash["leader"]
            if leader.name != old.name:
                self._new_leader_check(rnd, watcher, old.name)
                return
            rnd.event(
                "PostgreSQL restarted in place",
                f"{old.name}: postmaster pid {crash['pid']} -> {self.lab.postmaster_pid(old.name)}",
                at=crash["restart"],
            )
            rnd.check(
                f"{old.name} leads again on the same timeline",
                leader.timeline == old.timeline,
                f"timeline {old.timeline} -> {leader.timeline}",
            )

        _probe, watcher = self._under_load(rnd, old.name, old.name, fault, recover)
        leader = crash.get("leader")
        in_place = leader is not None and leader.name == old.name
        if in_place:
            rnd.check(
                "the replicas stream from it again",
                _wait("a healthy lab", lambda: not self._problems(), 60),
                "; ".join(self._problems()),
            )
        elif leader is not None:
            self._rejoin_checks(rnd, watcher, old.name, crash["offset"])
        pid_after = self.lab.postmaster_pid(old.name)
        noticed, restart = crash.get("noticed"), crash.get("restart")
        rnd.facts.update(
            leader_after=leader.name if leader else None,
            restarted_in_place=in_place and pid_after not in (None, crash["pid"]),
            postmaster_pid_before=crash["pid"],
            postmaster_pid_after=pid_after,
            patroni_noticed_s=round(noticed - crash["at"], 3) if noticed else None,
            patroni_restart_s=round(restart - crash["at"], 3) if restart else None,
        )

    def _freeze_leader(self, rnd: Round) -> None:
        """SIGSTOP the leader for ttl + 10 s, then SIGCONT: it must come back a replica and never have
        acknowledged a write after the new leader's first one.

        The proof has two witnesses: the probe (every commit records which server acknowledged it),
        and a stale client connected straight to the old leader before the freeze, which tries one
        more write the moment the old leader wakes up. Neither may be acknowledged by the old leader
        after the new leader's first commit, and the stale row must not exist anywhere afterwards.
        """
        old = self._pre_check(rnd)
        offset = self._log_offset(old.name)
        freeze_s = self.lab.timing.ttl + 10
        stale_conn = connect(
            replace(
                self._node_settings(old.host),
                connect_timeout=30,
                read_timeout=30,
                application_name="pgha-drill-stale-client",
            )
        )
        stale: dict[str, Any] = {}

        def stale_write() -> None:
            try:
                rows = stale_conn.run("INSERT INTO pgha_write_probe (id) VALUES (-1) RETURNING now()")
                stale.update(acknowledged=True, at=time.time(), detail=f"committed at {rows[0][0]}")
            except Exception as err:  # any refusal is what we hope for
                stale.update(acknowledged=False, at=time.time(), detail=f"{type(err).__name__}: {err}"[:200])
            with contextlib.suppress(Exception):
                stale_conn.close()

        writer = threading.Thread(target=stale_write, daemon=True)

        def fault() -> None:
            pids = self.lab.freeze_node(old.name)
            rnd.event(
                "fault injected",
                f"SIGSTOP of {old.name}'s Patroni and {len(pids) - 1} PostgreSQL processes for {freeze_s} s (ttl + 10)",
            )

        def recover(watcher: MemberWatcher) -> None:
            time.sleep(freeze_s)
            self._new_leader_check(rnd, watcher, old.name)
            self.lab.thaw_node(old.name)
            rnd.event("old node thawed", f"SIGCONT to {old.name}; a stale client writes to it at once")
            writer.start()

        probe, watcher = self._under_load(rnd, old.name, old.name, fault, recover)
        writer.join(timeout=60)
        rnd.event("stale client answered", str(stale.get("detail", "no answer")))
        new_host = next((m.host for m in self.lab.members() if m.name == watcher.new_leader), None)
        first_new = min((c.at for c in probe.report.commits if c.server == new_host), default=None)
        late = [
            c.id for c in probe.report.commits if c.server == old.host and first_new is not None and c.at > first_new
        ]
        if stale.get("acknowledged") and first_new is not None and float(stale["at"]) > first_new:
            late.append(-1)
        rnd.facts.update(first_commit_on_new_leader=first_new, stale_client=stale.get("detail"))
        rnd.check(
            "the old leader acknowledged no write after the new leader's first",
            first_new is not None and not late,
            f"late acknowledgements by {old.name}: {late}"
            if late
            else "probe commits by server and the stale client's write compared",
        )
        self._rejoin_checks(rnd, watcher, old.name, offset)
        on_new = -1 in present_ids(self.lab.settings())
        on_old = -1 in present_ids(self._node_settings(old.host), writable=False)
        rnd.check(
            "the stale client's write exists nowhere after the rejoin",
            not on_new and not on_old,
            f"on the new leader: {on_new}, on {old.name}: {on_old}",
        )

    def _kill_replica(self, rnd: Round) -> None:
        leader = self._pre_check(rnd)
        victim = self._sync_standby()
        assert victim is not None
        offset = self._log_offset(victim.name)

        def fault() -> None:
            rnd.event("fault injected", f"kill -9 of the synchronous standby {victim.name}")
            self.lab.kill_node(victim.name)

        def recover(watcher: MemberWatcher) -> None:
            moved = _wait(
                "another sync standby", lambda: (s := self._sync_standby()) is not None and s.name != victim.name, 60
            )
            rnd.event(
                "sync standby moved" if moved else "sync standby did not move",
                (s.name if (s := self._sync_standby()) else "none"),
            )
            rnd.event("replica restarting", f"lab up starts {victim.name}'s Patroni again")
            self.lab.up()

        _probe, watcher = self._under_load(rnd, victim.name, leader.name, fault, recover)
        rnd.check(
            "the leader stayed",
            not watcher.leader_lost and watcher.new_leader is None and self.lab.leader().name == leader.name,
            f"leader {self.lab.leader().name}",
        )
        self._rejoin_checks(rnd, watcher, victim.name, offset)

    def _etcd_member_loss(self, rnd: Round) -> None:
        leader = self._pre_check(rnd)
        node = leader.name  # the leader's own etcd member: the harder case

        def fault() -> None:
            pid = self.lab.kill_etcd(node)
            rnd.event("fault injected", f"kill -9 of the etcd member on {node} (pid {pid})")

        def recover(watcher: MemberWatcher) -> None:
            time.sleep(self.lab.timing.ttl)  # a whole ttl: the leader key must be renewed through the other members
            self.lab.restart_etcd(node)
            rnd.event("etcd member restarted", node)

        _probe, watcher = self._under_load(rnd, node, leader.name, fault, recover)
        rnd.check(
            "the leader stayed",
            not watcher.leader_lost and watcher.new_leader is None and self.lab.leader().name == leader.name,
            f"leader {self.lab.leader().name}",
        )
        rnd.check("etcd healthy again (3 members)", _wait("etcd", self.lab.etcd_healthy, 60))
        rnd.check("members healthy", _wait("healthy", lambda: not self._problems(), 60), "; ".join(self._problems()))

    def _restore_pitr(self, rnd: Round) -> None:
        """Restore the cluster as of a time between two known commits into a scratch instance; exactly the
        commits acknowledged before that time must be there."""
        self._pre_check(rnd)
        label = self.lab.backup()
        rnd.event("base backup taken", f"pgBackRest {label}")
        probe = WriteProbe(self.lab.settings())
        probe.prepare()
        probe.start()
        try:
            time.sleep(BASELINE_S)
            probe.pause()
            before = set(probe.report.acknowledged)
            time.sleep(0.5)
            target = datetime.now(UTC)
            rnd.event("target time", target.isoformat(), at=target.timestamp())
            time.sleep(0.5)
            probe.resume()
            time.sleep(BASELINE_S)
        finally:
            report = probe.stop()
        after = set(report.acknowledged) - before
        self.scratch = self.lab.root / f"drill-pitr-{int(time.time())}"
        started = time.time()
        rnd.event("restore started", f"into {self.scratch}")
        self.lab.restore_point_in_time(target, self.scratch / "data")
        port = free_port()
        _start_scratch(self.scratch, port)
        rnd.event("scratch instance started", f"127.0.0.1:{port}")
        settings = replace(self._node_settings("127.0.0.1"), hosts=(("127.0.0.1", port),))
        promoted = _wait("promotion", lambda: _writable(settings), SETTLE_TIMEOUT_S)
        rnd.event("scratch instance promoted" if promoted else "scratch instance did not promote")
        ready = time.time()
        present = present_ids(settings) if promoted else set()
        missing = sorted(before - present)
        extra = sorted(present - before)
        rnd.measure_restore(
            report, missing, started, ready, "from the start of the restore until the scratch instance was promoted"
        )
        rnd.facts.update(
            target_time=target.isoformat(),
            commits_before=len(before),
            commits_after=len(after),
            restored_rows=len(present),
            scratch_port=port,
        )
        rnd.check("the scratch instance promoted at the target time", promoted)
        rnd.check(
            "every commit acknowledged before the target time is there",
            promoted and not missing,
            f"{len(before)} expected, {len(missing)} missing",
        )
        rnd.check(
            "no commit from after the target time is there",
            promoted and not extra,
            f"{len(after)} commits after the target, {len(extra)} present",
        )
        _stop_scratch(self.scratch)
        gone = not self.scratch.exists()
        rnd.event("scratch instance removed" if gone else "scratch instance NOT removed", str(self.scratch))
        rnd.check("scratch instance removed", gone)
        self.scratch = None

    def _node_settings(self, host: str) -> ConnectionSettings:
        base = self.lab.settings()
        return replace(base, hosts=((host, self.lab.ports.postgres),), application_name="pgha-drill")


def _writable(settings: ConnectionSettings) -> bool:
    try:
        conn = connect(settings, writable=True)
    except Exception:  # not yet
        return False
    conn.close()
    return True


def _start_scratch(root: Path, port: int) -> None:
    """Start the restored copy on 127.0.0.1:port with its own socket directory (it replays, then promotes)."""
    data = root / "data"
    sockets = root / "run"
    sockets.mkdir(exist_ok=True)
    give_to_service_user(root, sockets)
    subprocess.run(
        as_service_user(
            [
                str(postgres_bindir() / "pg_ctl"),
                "-D",
                str(data),
                "-l",
                str(root / "postgres.log"),
                "-w",
                "-t",
                "120",
                "-o",
                f"-p {port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={sockets}",
                "start",
            ]
        ),
        check=False,
        capture_output=True,
        cwd=root,
    )


def _stop_scratch(root: Path) -> None:
    """Stop the scratch instance (immediately: it is thrown away) and delete it."""
    if (root / "data" / "postmaster.pid").exists():
        subprocess.run(
            as_service_user(
                [str(postgres_bindir() / "pg_ctl"), "-D", str(root / "data"), "-m", "immediate", "-w", "stop"]
            ),
            check=False,
            capture_output=True,
            cwd="/",
        )
    shutil.rmtree(root, ignore_errors=True)
