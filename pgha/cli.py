"""The ``pgha`` command line: ``python -m pgha <command>``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer
from rich.console import Console
from rich.markup import escape

from pgha.schema.migrations import MIGRATIONS_DIR

if TYPE_CHECKING:
    import pg8000.native

    from pgha.lab.cluster import Lab

app = typer.Typer(help="pgha: highly-available PostgreSQL on AWS, and the operations around it.", no_args_is_help=True)
console = Console()
err_console = Console(stderr=True)


def _say(line: str) -> None:
    """Print a progress or result line as plain text (server messages may contain brackets)."""
    console.print(line, markup=False, highlight=False, soft_wrap=True, emoji=False)


def _fail(message: object, code: int, prefix: str = "error: ") -> NoReturn:
    """Print a message (never read as markup, never wrapped) to stderr and exit with ``code``."""
    # emoji=False: ARNs hold ":secret:", which rich would turn into an emoji
    err_console.print(f"[red]{prefix}[/red]{escape(str(message))}", highlight=False, soft_wrap=True, emoji=False)
    raise typer.Exit(code)


def _parse_overrides(pairs: list[str]) -> dict[str, str | None]:
    """KEY=VALUE pairs; KEY= (empty) removes the key, like `pulumi config rm`."""
    overrides: dict[str, str | None] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise typer.BadParameter(f"{pair!r}: expected KEY=VALUE, e.g. replicas=2")
        overrides[key] = value or None
    return overrides


@app.command()
def plan(
    stack: Annotated[str, typer.Option(help="Stack whose Pulumi.<stack>.yaml config to use.")] = "dev",
    as_json: Annotated[bool, typer.Option("--json", help="Print every resource as JSON.")] = False,
    set_: Annotated[
        list[str] | None, typer.Option("--set", help="Override a config key: KEY=VALUE (repeatable); KEY= removes it.")
    ] = None,
) -> None:
    """Show what `pulumi up` would register for a stack, offline (the program runs under mocks)."""
    from components.config import ConfigError
    from pgha.ci.harness import run_program
    from pgha.ci.plan import outputs_tree, plan_json, plan_tree

    try:
        result = run_program(stack, _parse_overrides(set_ or []), check=False)
    except FileNotFoundError as err:
        _fail(err, 2)
    if isinstance(result.error, ConfigError):
        _fail(result.error, 2, prefix="")
    if result.error is not None:
        _fail(f"{type(result.error).__name__}: {result.error}", 1, prefix="the program failed: ")
    for warning in result.warnings:
        err_console.print(f"[yellow]warning:[/yellow] {escape(warning)}", highlight=False, soft_wrap=True)
    if as_json:
        print(json.dumps(plan_json(result), indent=2))
    else:
        console.print(plan_tree(result), highlight=False)
        console.print(outputs_tree(result), highlight=False)


DsnOption = Annotated[
    str,
    typer.Option(
        "--dsn",
        envvar="PGHA_DSN",
        help="postgresql://user[:password]@host[:port][,host2...]/db?sslmode=... or libpq key=value. "
        "Without a password in it, PGPASSWORD or --secret-arn supplies one.",
    ),
]
SecretOption = Annotated[
    str | None, typer.Option("--secret-arn", help="Secrets Manager secret with username/password (RDS master).")
]


def _connect(dsn: str, secret_arn: str | None, application_name: str) -> pg8000.native.Connection:
    """A connection to the writable host of the DSN, or a clean exit naming why not."""
    from dataclasses import replace

    from pgha.connect import ConnectError, connect, parse_dsn, resolve

    try:
        settings = resolve(replace(parse_dsn(dsn), application_name=application_name), secret_arn)
        return connect(settings, writable=True)
    except ConnectError as err:
        _fail(err, 2)


@app.command()
def migrate(
    dsn: DsnOption,
    secret_arn: SecretOption = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="List pending migrations; apply nothing.")] = False,
    migrations: Annotated[
        Path, typer.Option(help="Directory of NNNN_name.sql files.", exists=True, file_okay=False)
    ] = MIGRATIONS_DIR,
) -> None:
    """Apply the schema migrations (schema/migrations) to the database, each exactly once."""
    from pgha.schema.migrate import MigrationError
    from pgha.schema.migrate import migrate as run_migrations
    from pgha.schema.migrations import MigrationFileError

    conn = _connect(dsn, secret_arn, "pgha-migrate")
    try:
        result = run_migrations(
            conn, migrations, dry_run=dry_run, report=_say
        )
    except (MigrationError, MigrationFileError) as err:
        _fail(err, 1)
    finally:
        conn.close()
    if dry_run:
        console.print(f"{len(result.pending)} pending, {len(result.already_applied)} applied")
        for name in result.pending:
            _say(f"  pending: {name}")
    elif result.applied:
        console.print(f"applied {len(result.applied)} migration(s); schema hash {result.hash[:12]}")
    else:
        console.print(f"nothing to do: all {len(result.already_applied)} migrations applied")


@app.command()
def maintain(
    dsn: DsnOption,
    secret_arn: SecretOption = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="List what would run.")] = False,
) -> None:
    """ANALYZE tables with many changes and VACUUM tables with many dead tuples."""
    from pgha.schema.maintain import run_maintenance

    conn = _connect(dsn, secret_arn, "pgha-maintain")
    try:
        actions = run_maintenance(conn, dry_run=dry_run, report=_say)
    finally:
        conn.close()
    if not actions:
        console.print("nothing needs maintenance")


lab_app = typer.Typer(help="The local HA lab: 3 x (etcd + Patroni + PostgreSQL) on 127.0.1.1-3.",
                      no_args_is_help=True)
app.add_typer(lab_app, name="lab")


def _lab() -> Lab:
    from pgha.lab.cluster import Lab

    return Lab(report=_say)


def _print_status(status: dict) -> None:
    from rich.table import Table

    table = Table(title="pgha lab members")
    for column in ("member", "host", "port", "role", "state", "timeline", "lag"):
        table.add_column(column)
    for m in status["members"]:
        table.add_row(m["name"], m["host"], str(m["port"]), m["role"], m["state"], str(m["timeline"] or ""),
                      str(m["lag"] if m["lag"] is not None else ""))
    console.print(table)
    dsns = status["dsns"]
    lines = [f"writer DSN: {dsns['writer']}", f"reader DSN: {dsns['reader']}"]
    lines += [f"{node} DSN:  {dsn}" for node, dsn in dsns["nodes"].items()]
    lines.append("password:   export PGPASSWORD=$(python -m pgha lab password)")
    for line in lines:  # unwrapped, so they copy and paste
        _say(line)


@lab_app.command("up")
def lab_up() -> None:
    """Start the lab (or whatever part of it is not running) and apply the schema."""
    from pgha.lab.cluster import LabError
    from pgha.local import PrerequisiteError

    try:
        status = _lab().up()
    except (LabError, PrerequisiteError) as err:
        _fail(err, 1)
    _print_status(status)
    console.print("stop it with: make down  (or python -m pgha lab down [--purge])")


@lab_app.command("status")
def lab_status(
    as_json: Annotated[bool, typer.Option("--json", help="Print members and DSNs as JSON.")] = False,
) -> None:
    """Show the members (role, state, timeline, lag) and the DSNs."""
    status = _lab().status()
    if as_json:
        print(json.dumps(status, indent=2))
    else:
        _print_status(status)
    if not status["members"]:
        raise typer.Exit(3)


@lab_app.command("down")
def lab_down(purge: Annotated[bool, typer.Option("--purge", help="Also delete the lab's data.")] = False) -> None:
    """Stop every lab process (by pid); leave no process behind."""
    killed = _lab().down(purge=purge)
    if killed:
        console.print(f"killed leftover processes: {killed}")
    console.print("lab stopped")


@lab_app.command("switchover")
def lab_switchover(
    candidate: Annotated[str | None, typer.Option(help="Member to promote (default: Patroni picks).")] = None,
) -> None:
    """Planned switchover through Patroni's REST API; prints the new leader."""
    from pgha.lab.cluster import LabError

    lab = _lab()
    try:
        old = lab.leader().name
        new = lab.switchover(candidate)
    except (LabError, OSError) as err:
        _fail(err, 1)
    _say(f"switchover: {old} -> {new}")


@lab_app.command("kill")
def lab_kill(
    node: Annotated[str | None, typer.Argument(help="node1, node2 or node3 (default: the leader).")] = None,
) -> None:
    """kill -9 a node's Patroni and PostgreSQL (an unplanned failure); `make up` brings it back."""
    from pgha.lab.cluster import LabError

    lab = _lab()
    try:
        target = node or lab.leader().name
    except LabError as err:
        _fail(err, 1)
    lab.kill_node(target)
    _say(f"killed {target}: watch `pgha lab status`; `make up` restarts it and it rejoins as a replica")


@lab_app.command("password")
def lab_password() -> None:
    """Print the lab superuser's password (for PGPASSWORD)."""
    print(_lab().secrets().superuser)


@lab_app.command("backup")
def lab_backup(
    kind: Annotated[str, typer.Option("--type", help="full, diff or incr.")] = "full",
) -> None:
    """Take a pgBackRest backup now (on the leader, into the lab's S3 bucket on moto)."""
    from pgha.lab.cluster import LabError

    if kind not in ("full", "diff", "incr"):
        _fail(f"--type {kind!r}: must be full, diff or incr", 2)
    try:
        label = _lab().backup(kind)
    except LabError as err:
        _fail(err, 1)
    _say(f"backup {label} ({kind}) done")


@lab_app.command("ctl", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def lab_ctl(ctx: typer.Context) -> None:
    """Run patronictl against the lab (e.g. `pgha lab ctl list`): the CA, client certificate and REST password set."""
    from pgha.lab.cluster import LabError

    try:
        code = _lab().ctl(list(ctx.args))
    except LabError as err:
        _fail(err, 1)
    raise typer.Exit(code)


node_app = typer.Typer(help="What runs on a database node (EC2 or a lab node).", no_args_is_help=True)
app.add_typer(node_app, name="node")


@node_app.command("bootstrap")
def node_bootstrap(
    config: Annotated[Path, typer.Option("--config", help="The node's JSON file (see docs/patroni.md).")],
    start: Annotated[bool, typer.Option(help="Hand over to the service manager (systemd) when done.")] = True,
) -> None:
    """Configure this node: secrets from Secrets Manager, configs from patroni/, directories, then start."""
    from pgha.node.bootstrap import BootstrapError, bootstrap
    from pgha.node.config import NodeConfigError, load

    try:
        node = load(config)
    except NodeConfigError as err:
        _fail(err, 2)
    try:
        bootstrap(node, start=start, report=_say)
    except BootstrapError as err:
        _fail(err, 1)


@app.callback()
def main() -> None:
    """pgha: highly-available PostgreSQL on AWS, and the operations around it."""
