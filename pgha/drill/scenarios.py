"""The drills' dispatch tables: each scenario's name and the drill method that runs its round.

:class:`pgha.drill.lab.LabDrill` and :class:`pgha.drill.rds.RdsDrill` dispatch on these, and the CLI offers
exactly their names without importing the drills (which pull in psutil, pg8000 and boto3: start-up stays fast).
"""

from __future__ import annotations

from collections.abc import Mapping

#: ``pgha drill lab SCENARIO`` -> the LabDrill method that runs its round.
LAB_ROUNDS: Mapping[str, str] = {
    "switchover": "_switchover",
    "kill-leader": "_kill_leader",
    "crash-leader": "_crash_leader",
    "freeze-leader": "_freeze_leader",
    "kill-replica": "_kill_replica",
    "etcd-member-loss": "_etcd_member_loss",
    "restore-pitr": "_restore_pitr",
}
#: ``pgha drill rds SCENARIO`` -> the RdsDrill method that runs its round.
RDS_ROUNDS: Mapping[str, str] = {
    "failover": "_failover",
    "promote-replica": "_promote",
    "promote-dr": "_promote",
    "restore-pitr": "_restore_pitr",
}


def one_of(names: Mapping[str, str]) -> str:
    """The scenario names as a person reads a choice: ``a, b or c``."""
    listed = list(names)
    return ", ".join(listed[:-1]) + f" or {listed[-1]}" if len(listed) > 1 else "".join(listed)
