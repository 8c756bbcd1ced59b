"""What ``pgha lab status`` shows: the shape of :meth:`pgha.lab.cluster.Lab.status` and its view for a terminal.

The view is built here, not printed: the CLI prints it (the table through rich, each line unwrapped so it
copies and pastes), and the shape is the one ``pgha lab status --json`` prints.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, NotRequired, TypedDict

if TYPE_CHECKING:
    from rich.table import Table


class LabDsns(TypedDict):
    """The writer, reader and per-node DSNs (no password: it is in PGPASSWORD)."""

    writer: str
    reader: str
    nodes: dict[str, str]


class LabStatus(TypedDict):
    """The lab's members, DSNs, processes and timing; health and the timing in the DCS once a member answers."""

    lab_dir: str
    #: Each member as Patroni last reported it: a :class:`pgha.node.patroni_api.Member` as a dict (etcd keeps
    #: the report until the member's key expires).
    members: list[dict[str, Any]]
    dsns: LabDsns
    #: node -> process (etcd, patroni) -> pid, None when not running.
    processes: dict[str, dict[str, int | None]]
    #: The timing the lab was started with (ttl, loop_wait, retry_timeout).
    timing: dict[str, int]
    health_problems: NotRequired[list[str]]
    #: The same keys as Patroni's dynamic config holds them (what is in force).
    timing_in_dcs: NotRequired[dict[str, Any]]


def status_view(status: LabStatus, python: str) -> list[Table | str]:
    """The members as a table (a member whose Patroni is gone marked as such), health, the DSNs and the timing,
    in print order; for a lab with no member answering, one line saying so instead. ``python`` is the
    interpreter to name in the commands the lines suggest."""
    from rich.table import Table

    if not status["members"]:
        return [_no_member_line(status, python)]
    table = Table(title="pgha lab members")
    for column in ("member", "host", "port", "role", "state", "timeline", "lag"):
        table.add_column(column)
    gone = []
    for m in status["members"]:
        state = m["state"]
        if not status["processes"].get(m["name"], {}).get("patroni"):
            # Patroni was killed: etcd keeps the member's key, and what it last reported, until the ttl runs out
            gone.append(m)
            state = "Patroni not running"
        table.add_row(
            m["name"],
            m["host"],
            str(m["port"]),
            m["role"],
            state,
            str(m["timeline"] or ""),
            str(m["lag"] if m["lag"] is not None else ""),
        )
    view: list[Table | str] = [table]
    if problems := status.get("health_problems"):
        view.append("not healthy: " + "; ".join(problems))
    ttl = status.get("timing_in_dcs", status["timing"]).get("ttl")
    view += [
        f"{m['name']}: its Patroni is not running; etcd keeps its last report ({m['role']}, {m['state']}) "
        f"until its key expires (ttl {ttl} s)"
        for m in gone
    ]
    dsns = status["dsns"]
    view += [f"writer DSN: {dsns['writer']}", f"reader DSN: {dsns['reader']}"]
    view += [f"{node} DSN:  {dsn}" for node, dsn in dsns["nodes"].items()]
    view.append(f"password:   export PGPASSWORD=$({python} -m pgha lab password)")
    view.append("timing:     " + ", ".join(f"{k} {v}" for k, v in status["timing"].items()))
    return view


def _no_member_line(status: LabStatus, python: str) -> str:
    """Why no member shows: the processes that run though none answers, or that the lab is not running."""
    running = sorted(
        f"{node}/{process}"
        for node, processes in status["processes"].items()
        for process, pid in processes.items()
        if pid
    )
    if running:
        return (
            f"no lab member answers Patroni's REST API, though these run: {', '.join(running)} "
            f"(logs in {status['lab_dir']}/node*/)"
        )
    return f"lab is not running ({status['lab_dir']}): start it with make up (or {python} -m pgha lab up)"
