"""``pgha drill``: the DR drills' commands: check the targets and the report directory, run, print the verdict.

The drills (psutil, pg8000, boto3) are imported inside each command: only their scenario names are read
at start-up, from :mod:`pgha.drill.scenarios`.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer
from rich.markup import escape

from pgha.console import console, err_console, fail, say
from pgha.drill.scenarios import LAB_ROUNDS, RDS_ROUNDS, one_of
from pgha.lab.cli import open_lab
from pgha.schema.cli import SecretOption

if TYPE_CHECKING:
    from collections.abc import Callable

    from rich.status import Status

    from pgha.drill.engine import DrillResult

#: Added to the root app by :mod:`pgha.cli` as ``pgha drill``.
app = typer.Typer(
    help="DR drills: fail over, promote and restore; measure RTO/RPO; write a report.", no_args_is_help=True
)


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
MaxRtoOption = Annotated[
    float, typer.Option("--max-rto", callback=_drill_target, help="RTO target in seconds, 0 or more (seed KPI: 300).")
]
MaxRpoOption = Annotated[
    float, typer.Option("--max-rpo", callback=_drill_target, help="RPO target in seconds, 0 or more (seed KPI: 60).")
]
MaxLostOption = Annotated[
    int,
    typer.Option("--max-lost", callback=_drill_target, help="Acknowledged commits that may be lost, 0 or more (0)."),
]


def _check_report_dir(report_dir: Path) -> None:
    """Exit 2 naming --report when the reports could not be written there: called before a drill touches
    anything, so a bad directory never costs a drill whose RTO and verdict are then lost."""
    from pgha.drill.report import report_dir_problem

    problem = report_dir_problem(report_dir)
    if problem is not None:
        fail(f"--report {problem}; nothing was started", 2)


def _finish_drill(result: DrillResult, report_dir: Path) -> NoReturn:
    """Print each round's RTO/RPO, write the reports, print the verdict; exit 0 only when the drill passed,
    everything was restored and the reports were written. A report that cannot be written (the disk filled
    during the drill) is an error line: the measurements and the verdict are printed all the same."""
    from pgha.drill.report import rto_text, write_report

    passed, reasons = result.verdict()
    for rnd in result.rounds:
        rto = rto_text(rnd)
        rpo = "not measured" if rnd.rpo_s is None else f"{rnd.rpo_s:.2f} s"
        say(f"round {rnd.number}: RTO {rto}, RPO {rpo}, {len(rnd.lost)} acknowledged commits lost")
    try:
        paths = write_report(result, report_dir)
    except (OSError, ValueError) as err:
        paths, unwritten = {}, f"the reports were not written into {report_dir}: {err}"
    else:
        unwritten = None
    for kind, path in paths.items():
        say(f"report ({kind}): {path}")
    for change in result.left_changed:
        say(f"left changed (not put back, by design): {change}")
    if passed:
        console.print("[green]drill passed[/green]")
    else:
        for reason in reasons:
            say(f"  - {reason}")
        err_console.print("[red]drill failed[/red]")
    if unwritten is not None:
        fail(unwritten, 1)
    raise typer.Exit(0 if passed else 1)


def _progress() -> tuple[Status, Callable[[str], None]]:
    """A rich status line that shows the latest step while each step is also printed."""
    status = console.status("starting the drill", spinner="dots")

    def step(line: str) -> None:
        status.update(escape(line))
        say(line)

    return status, step


@app.command("lab")
def drill_lab(
    scenario: Annotated[str, typer.Argument(help=f"{one_of(LAB_ROUNDS)}.")],
    rounds: Annotated[int, typer.Option(min=1, max=20, help="How many times to run it.")] = 1,
    rejoin: Annotated[
        str,
        typer.Option(
            help="kill-leader only: how the old leader comes back: rewind (pg_rewind) "
            "or reclone (its data directory deleted, Patroni re-clones it)."
        ),
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
    lab = open_lab()
    try:
        drill = LabDrill(lab, scenario, rejoin=rejoin)
        drill.prepare()
    except (DrillRefused, LabError) as err:
        fail(err, 2)
    status, step = _progress()
    try:
        with status, lab.drill_lock():
            result = run_drill(
                drill,
                rounds,
                Targets(max_rto, max_rpo, max_lost),
                say=step,
                settings={"lab": str(lab.root), "rounds": rounds},
            )
    except LabError as err:  # another drill took the lock first
        fail(err, 2)
    _finish_drill(result, report)


@app.command("rds")
def drill_rds(
    scenario: Annotated[str, typer.Argument(help=f"{one_of(RDS_ROUNDS)}.")],
    stack: Annotated[str, typer.Option(help="Stack whose Pulumi.<stack>.yaml names the instances.")],
    yes: Annotated[bool, typer.Option("--yes", help="Really run on a stack with deletion protection.")] = False,
    replica: Annotated[str | None, typer.Option(help="promote-replica: N or the replica's identifier.")] = None,
    to: Annotated[str | None, typer.Option(help="restore-pitr: ISO 8601 time with zone, or 'latest'.")] = None,
    keep: Annotated[bool, typer.Option("--keep", help="restore-pitr: keep the scratch instance.")] = False,
    dsn: Annotated[
        str | None,
        typer.Option(
            "--dsn",
            envvar="PGHA_DSN",
            help="The writer (as for `pgha migrate`): a heartbeat every second measures "
            "RTO/RPO. Without it: RTO from status and events, RPO not measured.",
        ),
    ] = None,
    secret_arn: SecretOption = None,
    max_lag: Annotated[float, typer.Option("--max-lag", help="Refuse to promote a replica lagging more (s).")] = 1.0,
    allow_missing_lag: Annotated[
        bool,
        typer.Option("--allow-missing-lag", help="Promote even when CloudWatch has no ReplicaLag for the replica."),
    ] = False,
    allow_pending_reboot: Annotated[
        bool,
        typer.Option(
            "--allow-pending-reboot", help="failover: reboot even though changes wait for a reboot (it applies them)."
        ),
    ] = False,
    update_config: Annotated[
        bool,
        typer.Option("--update-config", help="After promote-dr, write the config change into Pulumi.<stack>.yaml."),
    ] = False,
    report: ReportOption = Path("reports/drills"),
    max_rto: Annotated[
        float | None,
        typer.Option(
            "--max-rto",
            callback=_drill_target,
            help="RTO target in seconds, 0 or more (seed KPI: 300; restore-pitr: 3600, the whole restore).",
        ),
    ] = None,
    max_rpo: MaxRpoOption = 60.0,
    max_lost: MaxLostOption = 0,
    project_dir: Annotated[
        Path | None, typer.Option(help="Directory of Pulumi.yaml and the stack files (default: this project).")
    ] = None,
    poll_seconds: Annotated[float, typer.Option(hidden=True)] = 5.0,
) -> None:
    """Drill a deployed RDS stack with boto3 (AWS_ENDPOINT_URL is honoured); report RTO, RPO and events."""
    from dataclasses import replace

    from pgha.ci.harness import PROJECT_DIR
    from pgha.connect import ConnectError, parse_dsn, resolve
    from pgha.drill.engine import DEFAULT_MAX_RTO_S, DrillRefused, Targets, run_drill
    from pgha.drill.rds import RESTORE_PITR_MAX_RTO_S, DryRun, RdsDrill, RdsOptions, load_stack

    _check_report_dir(report)
    project_dir = project_dir or PROJECT_DIR
    status, step = _progress()
    try:
        settings = resolve(replace(parse_dsn(dsn), application_name="pgha-drill"), secret_arn) if dsn else None
        drill = RdsDrill(
            load_stack(stack, project_dir),
            scenario,
            RdsOptions(
                yes=yes,
                replica=replica,
                to=to,
                keep=keep,
                max_lag_s=max_lag,
                allow_missing_lag=allow_missing_lag,
                settings=settings,
                poll_s=poll_seconds,
                allow_pending_reboot=allow_pending_reboot,
                project_dir=project_dir,
            ),
            say=step,
        )
        drill.prepare()
    except (DrillRefused, ConnectError) as err:
        fail(err, 2)
    except DryRun as plan_only:
        for line in plan_only.lines:
            say(line)
        raise typer.Exit(3) from None
    if max_rto is None:
        max_rto = RESTORE_PITR_MAX_RTO_S if scenario == "restore-pitr" else DEFAULT_MAX_RTO_S
    with status:
        result = run_drill(
            drill,
            1,
            Targets(max_rto, max_rpo, max_lost),
            say=step,
            settings={"stack": stack, "instance": drill.subject_id, "region": drill.subject_region},
        )
    drill.conclude(result, project_dir / f"Pulumi.{stack}.yaml", update_config=update_config, say=say)
    _finish_drill(result, report)
