"""``pgha lab``: start, inspect, break and stop the local HA lab (3 x etcd + Patroni + PostgreSQL on loopback)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated

import typer

from pgha.console import console, fail, python_command, say

if TYPE_CHECKING:
    from pgha.lab.cluster import Lab
    from pgha.lab.status import LabStatus

#: Added to the root app by :mod:`pgha.cli` as ``pgha lab``.
app = typer.Typer(help="The local HA lab: 3 x (etcd + Patroni + PostgreSQL) on 127.0.1.1-3.", no_args_is_help=True)


def open_lab() -> Lab:
    """The lab the environment names ($PGHA_LAB_DIR, $PGHA_LAB_ADDRESSES), or one error line and exit 2 when
    $PGHA_LAB_ADDRESSES is malformed (as for every other bad setting), not a traceback."""
    from pgha.lab.cluster import Lab
    from pgha.local import PrerequisiteError

    try:
        return Lab(report=say)
    except PrerequisiteError as err:
        fail(err, 2)


def _print_status(status: LabStatus) -> None:
    """Print the lab's status view (:func:`pgha.lab.status.status_view`): the table through rich, every line
    unwrapped, so DSNs and commands copy and paste."""
    from pgha.lab.status import status_view

    for item in status_view(status, python_command()):
        if isinstance(item, str):
            say(item)
        else:
            console.print(item)


@app.command("up")
def lab_up(
    ttl: Annotated[int | None, typer.Option("--ttl", help="Leader key TTL (s); default: the lab's (20).")] = None,
    loop_wait: Annotated[int | None, typer.Option("--loop-wait", help="Seconds between HA loops (lab: 2).")] = None,
    retry_timeout: Annotated[
        int | None,
        typer.Option("--retry-timeout", help="Seconds to retry etcd and PostgreSQL before demoting (lab: 5)."),
    ] = None,
) -> None:
    """Start the lab (or whatever part of it is not running) and apply the schema.

    --ttl/--loop-wait/--retry-timeout choose Patroni's timing (checked by the rules the EC2 settings
    obey; what is not given keeps the lab's current value). The lab remembers it; on a running lab a
    new timing is applied through Patroni's dynamic config (PATCH /config), no restart.
    """
    from pgha.lab.cluster import LabError
    from pgha.local import PrerequisiteError
    from pgha.node.dynamic_config import DynamicConfigError

    lab = open_lab()
    timing = None
    if (ttl, loop_wait, retry_timeout) != (None, None, None):
        timing = lab.timing.with_changes(ttl=ttl, loop_wait=loop_wait, retry_timeout=retry_timeout)
        problems = timing.problems(names=("--ttl", "--loop-wait", "--retry-timeout"))
        if problems:
            fail("timing refused, nothing started: " + "; ".join(problems), 2)
    try:
        status = lab.up(timing=timing)
    except (LabError, PrerequisiteError, DynamicConfigError) as err:
        fail(err, 1)
    _print_status(status)
    say(f"stop it with: make down  (or {python_command()} -m pgha lab down [--purge])")


@app.command("status")
def lab_status(
    as_json: Annotated[bool, typer.Option("--json", help="Print members and DSNs as JSON.")] = False,
) -> None:
    """Show the members (role, state, timeline, lag) and the DSNs."""
    status = open_lab().status()
    if as_json:
        print(json.dumps(status, indent=2))
    else:
        _print_status(status)
    if not status["members"]:
        raise typer.Exit(3)


@app.command("down")
def lab_down(purge: Annotated[bool, typer.Option("--purge", help="Also delete the lab's data.")] = False) -> None:
    """Stop every lab process (by pid); leave no process behind."""
    killed = open_lab().down(purge=purge)
    if killed:
        console.print(f"killed leftover processes: {killed}")
    console.print("lab stopped")


@app.command("switchover")
def lab_switchover(
    candidate: Annotated[str | None, typer.Option(help="Member to promote (default: Patroni picks).")] = None,
) -> None:
    """Planned switchover through Patroni's REST API; prints the new leader."""
    from pgha.lab.cluster import LabError

    lab = open_lab()
    try:
        old = lab.leader().name
        new = lab.switchover(candidate)
    except (LabError, OSError) as err:
        fail(err, 1)
    say(f"switchover: {old} -> {new}")


@app.command("kill")
def lab_kill(
    node: Annotated[str | None, typer.Argument(help="node1, node2 or node3 (default: the leader).")] = None,
) -> None:
    """kill -9 a node's Patroni and PostgreSQL (an unplanned failure); `make up` brings it back."""
    from pgha.lab.cluster import LabError

    lab = open_lab()
    try:
        target = node or lab.leader().name
        lab.kill_node(target)
    except LabError as err:
        fail(err, 1)
    say(f"killed {target}: watch `pgha lab status`; `make up` restarts it and it rejoins as a replica")


@app.command("password")
def lab_password() -> None:
    """Print the lab superuser's password (for PGPASSWORD); an error when the lab directory has no lab."""
    from pgha.lab.cluster import LabError

    try:
        print(open_lab().secrets().superuser)
    except LabError as err:
        fail(err, 1)


@app.command("backup")
def lab_backup(
    kind: Annotated[str, typer.Option("--type", help="full, diff or incr.")] = "full",
) -> None:
    """Take a pgBackRest backup now (on the leader, into the lab's S3 bucket on moto)."""
    from pgha.lab.cluster import LabError

    if kind not in ("full", "diff", "incr"):
        fail(f"--type {kind!r}: must be full, diff or incr", 2)
    try:
        label = open_lab().backup(kind)
    except LabError as err:
        fail(err, 1)
    say(f"backup {label} ({kind}) done")


@app.command("ctl", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def lab_ctl(ctx: typer.Context) -> None:
    """Run patronictl against the lab (e.g. `pgha lab ctl list`): the CA, client certificate and REST password set."""
    from pgha.lab.cluster import LabError

    try:
        code = open_lab().ctl(list(ctx.args))
    except LabError as err:
        fail(err, 1)
    raise typer.Exit(code)
