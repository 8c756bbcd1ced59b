"""The one rule for "the Patroni cluster is healthy", which `lab up`, `lab status`, the drills and the bench ask.

Standard library only, like the client it reads (:mod:`pgha.node.patroni_api`).
"""

from __future__ import annotations

from collections.abc import Sequence

from pgha.node.patroni_api import Member

#: The roles of a member that follows the leader.
REPLICA_ROLES = ("replica", "sync_standby")


def health_problems(members: Sequence[Member], size: int = 3) -> list[str]:
    """What keeps the cluster from being healthy; [] when it is.

    Healthy: all ``size`` members (three, as the lab and the EC2 cluster have) answer, one running leader,
    every other member a streaming replica on the leader's timeline, one of them the synchronous standby
    (the cluster runs synchronous_mode: without one a commit has no second copy).
    """
    problems = []
    if len(members) != size:
        problems.append(f"{len(members)} of {size} members answer")
    leaders = [m for m in members if m.role == "leader" and m.state == "running"]
    if len(leaders) != 1:
        problems.append(f"{len(leaders)} running leaders")
    problems += [
        f"{m.name} is {m.role}, {m.state}"
        for m in members
        if m.role != "leader" and not (m.role in REPLICA_ROLES and m.state == "streaming")
    ]
    if members and not any(m.role == "sync_standby" and m.state == "streaming" for m in members):
        problems.append("no streaming synchronous standby")
    if len(leaders) == 1 and leaders[0].timeline is not None:
        problems += [
            f"{m.name} on timeline {m.timeline}, the leader on {leaders[0].timeline}"
            for m in members
            if m.role in REPLICA_ROLES and m.timeline is not None and m.timeline != leaders[0].timeline
        ]
    return problems
