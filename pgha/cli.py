"""The ``pgha`` command line: ``python -m pgha <command>``."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer
from rich.console import Console
from rich.markup import escape

from pgha.drill.scenarios import LAB_ROUNDS, RDS_ROUNDS, one_of
from pgha.schema.migrations import MIGRATIONS_DIR

if TYPE_CHECKING:
    from collections.abc import Callable

    import pg8000.native
    from rich.status import Status

    from pgha.ci.harness import Plan
    from pgha.drill.engine import DrillResult
    from pgha.lab.cluster import Lab
    from pgha.schema.logins import LoginSpec
    from pgha.schema.migrate import Timeouts

app = typer.Typer(help="pgha: highly-available PostgreSQL on AWS, and the operations around it.", no_args_is_help=True)
# The CLI prints user data (ARNs, names, server messages): no emoji codes (an ARN's ":secret:" would
# become one) and no highlighting, on every path (print, Tree labels, table cells, the status line).
console = Console(emoji=False, highlight=False)
err_console = Console(stderr=True, emoji=False, highlight=False)


def _say(line: str) -> None:
    """Print a progress or result line as plain text (server messages may contain brackets)."""
    console.print(line, markup=False, soft_wrap=True)


def _fail(message: object, code: int, prefix: str = "error: ") -> NoReturn:
    """Print a message (never read as markup, never wrapped) to stderr and exit with ``code``."""
    err_console.print(f"[red]{prefix}[/red]{escape(str(message))}", soft_wrap=True)
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
    from pgha.ci.plan import outputs_tree, plan_json, plan_tree

    result = _run_stack(stack, set_)
    for warning in result.warnings:
        err_console.print(f"[yellow]warning:[/yellow] {escape(warning)}", soft_wrap=True)
    if as_json:
        print(json.dumps(plan_json(result), indent=2))
    else:
        console.print(plan_tree(result))
        console.print(outputs_tree(result))


# --- CI: diff, preview-check, policy (exit 3: a dangerous change; 1: a failed program, preview or policy) ---


def _run_stack(stack: str, set_: list[str] | None) -> Plan:
    """The program run under mocks for a stack, or a clean exit: 2 for a bad stack or config, 1 if it fails."""
    from components.config import ConfigError
    from pgha.ci.harness import run_program

    try:
        result = run_program(stack, _parse_overrides(set_ or []), check=False)
    except FileNotFoundError as err:
        _fail(err, 2)
    if isinstance(result.error, ConfigError):
        _fail(result.error, 2, prefix="")
    if result.error is not None:
        _fail(f"{type(result.error).__name__}: {result.error}", 1, prefix="the program failed: ")
    return result


@app.command()
def diff(
    stack: Annotated[str, typer.Option(help="Stack whose Pulumi.<stack>.yaml config to use.")] = "dev",
    base: Annotated[str, typer.Option(help="Git ref to compare the working tree with, e.g. origin/main.")] = "main",
    as_json: Annotated[bool, typer.Option("--json", help="Print the diff as JSON.")] = False,
    markdown: Annotated[bool, typer.Option("--markdown", help="Print the diff as a PR comment (Markdown).")] = False,
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", help="Override a config key at both versions: KEY=VALUE (repeatable); KEY= removes it."),
    ] = None,
) -> None:
    """Compare what the program registers at a git ref and in the working tree, offline.

    Exit 3 when a stateful resource (database, volume, key, bucket, secret, ...) would be replaced
    or deleted; 0 otherwise; 2 on an unknown ref or stack. ``--set`` runs both versions with the same
    config overrides (e.g. ``engine=patroni``: the path no committed stack selects).
    """
    from pgha.ci.diff import DiffInputError, DiffProgramError, diff_stack, render_markdown, render_text

    try:
        result = diff_stack(stack, base, overrides=_parse_overrides(set_ or []))
    except DiffInputError as err:
        _fail(err, 2)
    except DiffProgramError as err:
        _fail(err, 1)
    if as_json:
        print(json.dumps(result.to_json(), indent=2))
    elif markdown:
        print(render_markdown(result))
    else:
        _say(render_text(result))
    if result.dangerous:
        raise typer.Exit(3)


@app.command("preview-check")
def preview_check(
    file: Annotated[Path, typer.Argument(help="The output of `pulumi preview --json` ('-' for stdin).")],
) -> None:
    """Stop a real preview that would replace or delete a stateful resource (exit 3).

    Exit 1 when the preview itself failed (an error diagnostic: its steps are partial, so the check is
    incomplete) and shows no dangerous change; 2 if FILE is not a preview.
    """
    import sys

    from pgha.ci.preview_check import PreviewFormatError, check_preview, incomplete_note, render_findings

    try:
        text = sys.stdin.read() if str(file) == "-" else file.read_text()
        findings = check_preview(text)
    except (OSError, UnicodeDecodeError, PreviewFormatError) as err:
        _fail(f"{file}: {err}", 2)
    _say(render_findings(findings))
    note = incomplete_note(findings)
    if note is not None:
        err_console.print(f"[red]error:[/red] {escape(note)}", soft_wrap=True)
    if findings.dangerous:
        raise typer.Exit(3)
    if note is not None:
        raise typer.Exit(1)


@app.command()
def policy(
    stack: Annotated[str, typer.Option(help="Stack whose Pulumi.<stack>.yaml config to use.")] = "dev",
    set_: Annotated[
        list[str] | None, typer.Option("--set", help="Override a config key: KEY=VALUE (repeatable); KEY= removes it.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the violations as JSON.")] = False,
) -> None:
    """Check every resource the program registers against the policy pack (AWS FSBP controls), offline.

    Exit 1 when a mandatory rule is violated; advisory violations are printed and do not fail.
    """
    from pgha.ci.policy import evaluate_plan

    result = _run_stack(stack, set_)
    violations = evaluate_plan(result)
    if as_json:
        print(json.dumps([v.to_json() for v in violations], indent=2))
    else:
        for v in violations:
            _say(f"{v.level.upper():9} {v.policy}  {v.resource}  {v.message}")
        mandatory = sum(v.mandatory for v in violations)
        _say(f"stack {stack}: {len(violations)} violation(s), {mandatory} mandatory")
    if any(v.mandatory for v in violations):
        raise typer.Exit(1)


DsnOption = Annotated[
    str,
    typer.Option(
        "--dsn",
        envvar="PGHA_DSN",
        help="postgresql://user[:password]@host[:port][,host2...]/db?sslmode=... or libpq key=value. "
        "Without a password in it, --secret-arn supplies one (and its username), else PGPASSWORD. "
        "sslmode: prefer (default: TLS when offered), disable, require, verify-ca, verify-full. "
        "An unknown setting (e.g. a misspelled sslmode) is refused.",
    ),
]
SecretOption = Annotated[
    str | None, typer.Option("--secret-arn", help="Secrets Manager secret with username/password (RDS master).")
]


def _connect(
    dsn: str, secret_arn: str | None, application_name: str
) -> tuple[pg8000.native.Connection, Callable[[], pg8000.native.Connection]]:
    """A connection to the writable host of the DSN (or a clean exit naming why not), and a way to
    open another one to that same host."""
    from dataclasses import replace

    from pgha.connect import ConnectError, connect, connect_pinned, parse_dsn, resolve

    try:
        settings = resolve(replace(parse_dsn(dsn), application_name=application_name), secret_arn)
        conn, pinned = connect_pinned(settings, writable=True)
    except ConnectError as err:
        _fail(err, 2)
    return conn, lambda: connect(replace(pinned, application_name=f"{application_name}-watch"))


def _logins(secret_arns: list[str]) -> list[LoginSpec]:
    """The application logins of ``--login-secret`` secrets, or a clean exit naming the secret that is wrong."""
    from pgha.connect import ConnectError, secret_credentials
    from pgha.schema.logins import login_from_secret

    logins = []
    for arn in secret_arns:
        try:
            logins.append(login_from_secret(*secret_credentials(arn)))
        except (ConnectError, ValueError) as err:
            _fail(f"--login-secret {arn}: {err}", 2)
    return logins


def _seconds(option: str, value: str | None) -> float | None:
    """A timeout option: seconds (``5``, ``2.5``), with ``ms``/``s``/``min``, or ``none``/``0`` for no limit.

    Refused (exit 2, naming the option) before connecting: a positive value below 1 ms (PostgreSQL would
    round it to 0, no limit) and one above PostgreSQL's maximum (see :func:`pgha.schema.migrate.timeout_problem`).
    """
    if value is None or value.strip().lower() in ("none", "0", "off"):
        return None
    import re

    from pgha.schema.migrate import timeout_problem

    # [0-9], not \d: \d and float() also take non-ASCII digits (Arabic-Indic, full-width)
    match = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]+)?)\s*(ms|s|min)?\s*", value)
    if not match:
        _fail(f"{option} {value!r}: expected seconds like 5, 2.5s, 500ms or 2min, or none", 2)
    seconds = float(match[1]) * {"ms": 0.001, "s": 1, "min": 60, None: 1}[match[2]] or None
    problem = timeout_problem(seconds)
    if problem is not None:
        _fail(f"{option} {value!r} {problem}", 2)
    return seconds


StatementTimeoutOption = Annotated[
    str | None,
    typer.Option("--statement-timeout", help="Cancel any statement running longer (e.g. 10min); default: no limit."),
]
LockTimeoutOption = Annotated[
    str,
    typer.Option("--lock-timeout", help="Give up waiting for a lock after this long (default 5s) instead of "
                 "queueing behind a long transaction and blocking traffic; 'none' waits forever."),
]


def _timeouts(statement_timeout: str | None, lock_timeout: str) -> Timeouts:
    from pgha.schema.migrate import Timeouts

    return Timeouts(statement=_seconds("--statement-timeout", statement_timeout),
                    lock=_seconds("--lock-timeout", lock_timeout))


@app.command()
def migrate(
    dsn: DsnOption,
    secret_arn: SecretOption = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="List pending migrations; apply nothing.")] = False,
    migrations: Annotated[
        Path, typer.Option(help="Directory of NNNN_name.sql files.", exists=True, file_okay=False)
    ] = MIGRATIONS_DIR,
    statement_timeout: StatementTimeoutOption = None,
    lock_timeout: LockTimeoutOption = "5s",
    login_secrets: Annotated[
        list[str] | None,
        typer.Option("--login-secret", help="After the migrations, create or update the application login of this "
                     "Secrets Manager secret (the stack's appSecretArns; repeat for each), as the schema hook does. "
                     "For schemaRunner: off."),
    ] = None,
) -> None:
    """Apply the schema migrations (schema/migrations) to the database, each exactly once."""
    from pgha.connect import QUERY_ERRORS, close_quietly
    from pgha.schema.logins import ensure_logins
    from pgha.schema.migrate import MigrationError, error_text
    from pgha.schema.migrate import migrate as run_migrations
    from pgha.schema.migrations import MigrationFileError, discover

    timeouts = _timeouts(statement_timeout, lock_timeout)
    try:
        discover(migrations)  # a file that cannot be read stops the run before it connects
    except MigrationFileError as err:
        _fail(err, 1)
    logins = _logins(login_secrets or [])  # read first: a wrong secret stops the run before anything is applied
    conn, observer = _connect(dsn, secret_arn, "pgha-migrate")
    try:
        result = run_migrations(
            conn, migrations, dry_run=dry_run, report=_say, timeouts=timeouts, observer=observer
        )
        if logins and not dry_run:  # after the migrations: they create the group roles the logins join
            ensure_logins(conn, logins, report=_say)
    except (MigrationError, MigrationFileError) as err:
        _fail(err, 1)
    except QUERY_ERRORS as err:  # the runner wraps these; a backstop so the user never sees a traceback
        _fail(f"pgha migrate failed: {error_text(err)}", 1)
    finally:
        close_quietly(conn)  # a lost connection is the error above, not a second one from close()
    if dry_run:
        console.print(f"{len(result.pending)} pending, {len(result.already_applied)} applied")
        for name in result.pending:
            _say(f"  pending: {name}")
        for login in logins:
            _say(f"  login to create or update: {login.username} (member of {login.member_of})")
    elif result.applied:
        console.print(f"applied {len(result.applied)} migration(s); schema hash {result.hash[:12]}")
    else:
        console.print(f"nothing to do: all {len(result.already_applied)} migrations applied")


@app.command()
def maintain(
    dsn: DsnOption,
    secret_arn: SecretOption = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="List what would run.")] = False,
    statement_timeout: StatementTimeoutOption = None,
    lock_timeout: LockTimeoutOption = "5s",
) -> None:
    """ANALYZE tables with many changes and VACUUM tables with many dead tuples."""
    from pgha.connect import QUERY_ERRORS, close_quietly
    from pgha.schema.maintain import run_maintenance
    from pgha.schema.migrate import error_text

    timeouts = _timeouts(statement_timeout, lock_timeout)
    conn, _observer = _connect(dsn, secret_arn, "pgha-maintain")
    try:
        result = run_maintenance(conn, dry_run=dry_run, report=_say, timeouts=timeouts)
    except QUERY_ERRORS as err:  # a server error, or the connection lost
        _fail(f"pgha maintain failed: {error_text(err)}".replace("\n", " "), 1)
    finally:
        close_quietly(conn)  # after a lost connection, close() would raise a second error
    if not result.actions:
        console.print("nothing needs maintenance")
    if result.skipped:
        _fail(f"{len(result.skipped)} table(s) skipped: their locks were not granted in time; run again later", 1)


lab_app = typer.Typer(help="The local HA lab: 3 x (etcd + Patroni + PostgreSQL) on 127.0.1.1-3.",
                      no_args_is_help=True)
app.add_typer(lab_app, name="lab")


def _lab() -> Lab:
    """The lab the environment names ($PGHA_LAB_DIR, $PGHA_LAB_ADDRESSES), or one error line and exit 2 when
    $PGHA_LAB_ADDRESSES is malformed (as for every other bad setting), not a traceback."""
    from pgha.lab.cluster import Lab
    from pgha.local import PrerequisiteError

    try:
        return Lab(report=_say)
    except PrerequisiteError as err:
        _fail(err, 2)


def _python() -> str:
    """This CLI's own interpreter as a command to paste into a shell: ``sys.executable``, relative to the
    current directory when that is shorter (e.g. ``.venv/bin/python``). A bare ``python`` is often not the
    venv (ModuleNotFoundError: typer)."""
    import os
    import shlex
    import sys

    python = sys.executable
    with contextlib.suppress(ValueError):  # another drive (Windows)
        relative = os.path.relpath(python)
        if len(relative) < len(python):
            python = relative if os.sep in relative else os.path.join(os.curdir, relative)
    return shlex.quote(python)


def _print_status(status: dict) -> None:
    """The members as a table (a member whose Patroni is gone marked as such), the DSNs and the timing;
    for a lab with no member answering, one line saying so instead."""
    from rich.table import Table

    if not status["members"]:
        running = sorted(f"{node}/{process}" for node, processes in status["processes"].items()
                         for process, pid in processes.items() if pid)
        if running:
            _say(f"no lab member answers Patroni's REST API, though these run: {', '.join(running)} "
                 f"(logs in {status['lab_dir']}/node*/)")
        else:
            _say(f"lab is not running ({status['lab_dir']}): start it with make up (or {_python()} -m pgha lab up)")
        return
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
        table.add_row(m["name"], m["host"], str(m["port"]), m["role"], state, str(m["timeline"] or ""),
                      str(m["lag"] if m["lag"] is not None else ""))
    console.print(table)
    if status.get("health_problems"):
        _say("not healthy: " + "; ".join(status["health_problems"]))
    ttl = status.get("timing_in_dcs", status["timing"]).get("ttl")
    for m in gone:
        _say(f"{m['name']}: its Patroni is not running; etcd keeps its last report ({m['role']}, {m['state']}) "
             f"until its key expires (ttl {ttl} s)")
    dsns = status["dsns"]
    lines = [f"writer DSN: {dsns['writer']}", f"reader DSN: {dsns['reader']}"]
    lines += [f"{node} DSN:  {dsn}" for node, dsn in dsns["nodes"].items()]
    lines.append(f"password:   export PGPASSWORD=$({_python()} -m pgha lab password)")
    if "timing" in status:
        lines.append("timing:     " + ", ".join(f"{k} {v}" for k, v in status["timing"].items()))
    for line in lines:  # unwrapped, so they copy and paste
        _say(line)


@lab_app.command("up")
def lab_up(
    ttl: Annotated[int | None, typer.Option("--ttl", help="Leader key TTL (s); default: the lab's (20).")] = None,
    loop_wait: Annotated[int | None, typer.Option("--loop-wait", help="Seconds between HA loops (lab: 2).")] = None,
    retry_timeout: Annotated[int | None, typer.Option(
        "--retry-timeout", help="Seconds to retry etcd and PostgreSQL before demoting (lab: 5).")] = None,
) -> None:
    """Start the lab (or whatever part of it is not running) and apply the schema.

    --ttl/--loop-wait/--retry-timeout choose Patroni's timing (checked by the rules the EC2 settings
    obey; what is not given keeps the lab's current value). The lab remembers it; on a running lab a
    new timing is applied through Patroni's dynamic config (PATCH /config), no restart.
    """
    from dataclasses import replace

    from pgha.lab.cluster import LabError
    from pgha.local import PrerequisiteError
    from pgha.node.dynamic_config import DynamicConfigError

    lab = _lab()
    timing = None
    if (ttl, loop_wait, retry_timeout) != (None, None, None):
        current = lab.timing
        timing = replace(current, **{k: v for k, v in (("ttl", ttl), ("loop_wait", loop_wait),
                                                        ("retry_timeout", retry_timeout)) if v is not None})
        problems = timing.problems(names=("--ttl", "--loop-wait", "--retry-timeout"))
        if problems:
            _fail("timing refused, nothing started: " + "; ".join(problems), 2)
    try:
        status = lab.up(timing=timing)
    except (LabError, PrerequisiteError, DynamicConfigError) as err:
        _fail(err, 1)
    _print_status(status)
    _say(f"stop it with: make down  (or {_python()} -m pgha lab down [--purge])")


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
        lab.kill_node(target)
    except LabError as err:
        _fail(err, 1)
    _say(f"killed {target}: watch `pgha lab status`; `make up` restarts it and it rejoins as a replica")


@lab_app.command("password")
def lab_password() -> None:
    """Print the lab superuser's password (for PGPASSWORD); an error when the lab directory has no lab."""
    from pgha.lab.cluster import LabError

    try:
        print(_lab().secrets().superuser)
    except LabError as err:
        _fail(err, 1)


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


drill_app = typer.Typer(help="DR drills: fail over, promote and restore; measure RTO/RPO; write a report.",
                        no_args_is_help=True)
app.add_typer(drill_app, name="drill")


def _drill_target(value: float | None) -> float | None:
    """Check a --max-rto/--max-rpo/--max-lost value while the options are parsed, before anything runs:
    a finite number, 0 or more (:func:`pgha.drill.engine.target_problem`); click names the option."""
    from pgha.drill.engine import target_problem

    if value is None:  # not given: the command's own default applies (drill rds restore-pitr: its own)
        return value
    problem = target_problem(value)
    if problem is not None:
        raise typer.BadParameter(problem)
    return value


ReportOption = Annotated[Path, typer.Option("--report", help="Directory for the JSON, Markdown and PNG reports.")]
MaxRtoOption = Annotated[float, typer.Option("--max-rto", callback=_drill_target,
                                             help="RTO target in seconds, 0 or more (seed KPI: 300).")]
MaxRpoOption = Annotated[float, typer.Option("--max-rpo", callback=_drill_target,
                                             help="RPO target in seconds, 0 or more (seed KPI: 60).")]
MaxLostOption = Annotated[int, typer.Option("--max-lost", callback=_drill_target,
                                            help="Acknowledged commits that may be lost, 0 or more (0).")]


def _check_report_dir(report_dir: Path) -> None:
    """Exit 2 naming --report when the reports could not be written there: called before a drill touches
    anything, so a bad directory never costs a drill whose RTO and verdict are then lost."""
    from pgha.drill.report import report_dir_problem

    problem = report_dir_problem(report_dir)
    if problem is not None:
        _fail(f"--report {problem}; nothing was started", 2)


def _finish_drill(result: DrillResult, report_dir: Path) -> NoReturn:
    """Print each round's RTO/RPO, write the reports, print the verdict; exit 0 only when the drill passed,
    everything was restored and the reports were written. A report that cannot be written (the disk filled
    during the drill) is an error line: the measurements and the verdict are printed all the same."""
    from pgha.drill.report import rto_text, write_report

    passed, reasons = result.verdict()
    for rnd in result.rounds:
        rto = rto_text(rnd)
        rpo = "not measured" if rnd.rpo_s is None else f"{rnd.rpo_s:.2f} s"
        _say(f"round {rnd.number}: RTO {rto}, RPO {rpo}, {len(rnd.lost)} acknowledged commits lost")
    try:
        paths = write_report(result, report_dir)
    except (OSError, ValueError) as err:
        paths, unwritten = {}, f"the reports were not written into {report_dir}: {err}"
    else:
        unwritten = None
    for kind, path in paths.items():
        _say(f"report ({kind}): {path}")
    for change in result.left_changed:
        _say(f"left changed (not put back, by design): {change}")
    if passed:
        console.print("[green]drill passed[/green]")
    else:
        for reason in reasons:
            _say(f"  - {reason}")
        err_console.print("[red]drill failed[/red]")
    if unwritten is not None:
        _fail(unwritten, 1)
    raise typer.Exit(0 if passed else 1)


def _progress() -> tuple[Status, Callable[[str], None]]:
    """A rich status line that shows the latest step while each step is also printed."""
    status = console.status("starting the drill", spinner="dots")

    def say(line: str) -> None:
        status.update(escape(line))
        _say(line)

    return status, say


@drill_app.command("lab")
def drill_lab(
    scenario: Annotated[str, typer.Argument(help=f"{one_of(LAB_ROUNDS)}.")],
    rounds: Annotated[int, typer.Option(min=1, max=20, help="How many times to run it.")] = 1,
    rejoin: Annotated[str, typer.Option(help="kill-leader only: how the old leader comes back: rewind (pg_rewind) "
                                             "or reclone (its data directory deleted, Patroni re-clones it).")
                      ] = "rewind",
    report: ReportOption = Path("reports/drills"),
    max_rto: MaxRtoOption = 300.0,
    max_rpo: MaxRpoOption = 60.0,
    max_lost: MaxLostOption = 0,
) -> None:
    """Run a drill on the local lab under a write probe; report RTO, RPO, events; leave the lab as found."""
    from pgha.drill.engine import DrillRefused, Targets, run_drill
    from pgha.drill.lab import LabDrill
    from pgha.lab.cluster import LabError

    _check_report_dir(report)
    lab = _lab()
    try:
        drill = LabDrill(lab, scenario, rejoin=rejoin)
        drill.prepare()
    except (DrillRefused, LabError) as err:
        _fail(err, 2)
    status, say = _progress()
    try:
        with status, lab.drill_lock():
            result = run_drill(drill, rounds, Targets(max_rto, max_rpo, max_lost), say=say,
                               settings={"lab": str(lab.root), "rounds": rounds})
    except LabError as err:  # another drill took the lock first
        _fail(err, 2)
    _finish_drill(result, report)


@drill_app.command("rds")
def drill_rds(
    scenario: Annotated[str, typer.Argument(help=f"{one_of(RDS_ROUNDS)}.")],
    stack: Annotated[str, typer.Option(help="Stack whose Pulumi.<stack>.yaml names the instances.")],
    yes: Annotated[bool, typer.Option("--yes", help="Really run on a stack with deletion protection.")] = False,
    replica: Annotated[str | None, typer.Option(help="promote-replica: N or the replica's identifier.")] = None,
    to: Annotated[str | None, typer.Option(help="restore-pitr: ISO 8601 time with zone, or 'latest'.")] = None,
    keep: Annotated[bool, typer.Option("--keep", help="restore-pitr: keep the scratch instance.")] = False,
    dsn: Annotated[str | None, typer.Option(
        "--dsn", envvar="PGHA_DSN", help="The writer (as for `pgha migrate`): a heartbeat every second measures "
        "RTO/RPO. Without it: RTO from status and events, RPO not measured.")] = None,
    secret_arn: SecretOption = None,
    max_lag: Annotated[float, typer.Option("--max-lag", help="Refuse to promote a replica lagging more (s).")] = 1.0,
    allow_missing_lag: Annotated[bool, typer.Option(
        "--allow-missing-lag", help="Promote even when CloudWatch has no ReplicaLag for the replica.")] = False,
    allow_pending_reboot: Annotated[bool, typer.Option(
        "--allow-pending-reboot", help="failover: reboot even though changes wait for a reboot (it applies "
        "them).")] = False,
    update_config: Annotated[bool, typer.Option(
        "--update-config", help="After promote-dr, write the config change into Pulumi.<stack>.yaml.")] = False,
    report: ReportOption = Path("reports/drills"),
    max_rto: Annotated[float | None, typer.Option(
        "--max-rto", callback=_drill_target, help="RTO target in seconds, 0 or more (seed KPI: 300; restore-pitr: "
        "3600, the whole restore).")] = None,
    max_rpo: MaxRpoOption = 60.0,
    max_lost: MaxLostOption = 0,
    project_dir: Annotated[Path | None, typer.Option(help="Directory of Pulumi.yaml and the stack files "
                                                          "(default: this project).")] = None,
    poll_seconds: Annotated[float, typer.Option(hidden=True)] = 5.0,
) -> None:
    """Drill a deployed RDS stack with boto3 (AWS_ENDPOINT_URL is honoured); report RTO, RPO and events."""
    from dataclasses import replace

    from pgha.ci.harness import PROJECT_DIR
    from pgha.connect import ConnectError, parse_dsn, resolve
    from pgha.drill.engine import DEFAULT_MAX_RTO_S, DrillRefused, Targets, run_drill
    from pgha.drill.rds import RESTORE_PITR_MAX_RTO_S, DryRun, RdsDrill, RdsOptions, load_stack
    from pgha.drill.stack_config import set_stack_value

    _check_report_dir(report)
    project_dir = project_dir or PROJECT_DIR
    status, say = _progress()
    try:
        settings = resolve(replace(parse_dsn(dsn), application_name="pgha-drill"), secret_arn) if dsn else None
        drill = RdsDrill(load_stack(stack, project_dir), scenario, RdsOptions(
            yes=yes, replica=replica, to=to, keep=keep, max_lag_s=max_lag, allow_missing_lag=allow_missing_lag,
            settings=settings, poll_s=poll_seconds, allow_pending_reboot=allow_pending_reboot,
            project_dir=project_dir), say=say)
        drill.prepare()
    except (DrillRefused, ConnectError) as err:
        _fail(err, 2)
    except DryRun as plan_only:
        for line in plan_only.lines:
            _say(line)
        raise typer.Exit(3) from None
    if max_rto is None:
        max_rto = RESTORE_PITR_MAX_RTO_S if scenario == "restore-pitr" else DEFAULT_MAX_RTO_S
    with status:
        result = run_drill(drill, 1, Targets(max_rto, max_rpo, max_lost), say=say,
                           settings={"stack": stack, "instance": drill.subject_id, "region": drill.subject_region})
    result.notes += drill.notes
    change = drill.config_change
    if change is not None:
        stack_file = project_dir / f"Pulumi.{stack}.yaml"
        result.settings["stack_config_change"] = f"{change.key}: {change.value} ({change.pulumi_command(stack)})"
        _say(f"stack config: {change.key}: {change.value} - {change.reason}")
        _say(f"  with the Pulumi CLI: {change.pulumi_command(stack)}")
        _say(f"  then pulumi up --refresh --stack {stack}: the refresh first reads the promoted instance (no "
             "source any more); a plain pulumi up would ask the provider to promote it again, which can fail on "
             "an instance already promoted")
        if update_config:
            old = set_stack_value(stack_file, change.key, change.value)
            _say(f"  updated {stack_file}: {change.key}: {change.value} (was {old or 'unset'}); "
                 f"see it with pgha plan --stack {stack}, then pulumi up --refresh --stack {stack}")
        else:
            _say("  or run this drill with --update-config to write it into " + str(stack_file))
    if drill.advice:
        result.notes.append("\n".join(drill.advice))
        for line in drill.advice:
            _say(line)
        if update_config:
            _say("--update-config: no stack config change for promote-replica (see above)")
    _finish_drill(result, report)


@app.callback()
def main() -> None:
    """pgha: highly-available PostgreSQL on AWS, and the operations around it."""
