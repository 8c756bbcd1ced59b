"""The offline commands CI runs on the program: ``pgha plan``, ``diff``, ``preview-check`` and ``policy``.

Exit codes: 3 for a dangerous change, 1 for a failed program, preview or policy, 2 for a bad stack or config.
The heavy modules (Pulumi, the harness) are imported inside each command: ``pgha diff`` starts fast.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from pgha.console import console, err_console, fail, say

if TYPE_CHECKING:
    from pgha.ci.harness import Plan

#: Merged into the root app by :mod:`pgha.cli` (no group name): these are top-level commands.
app = typer.Typer()


def _parse_overrides(pairs: list[str]) -> dict[str, str | None]:
    """KEY=VALUE pairs; KEY= (empty) removes the key, like `pulumi config rm`."""
    overrides: dict[str, str | None] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise typer.BadParameter(f"{pair!r}: expected KEY=VALUE, e.g. replicas=2")
        overrides[key] = value or None
    return overrides


def _run_stack(stack: str, set_: list[str] | None) -> Plan:
    """The program run under mocks for a stack, or a clean exit: 2 for a bad stack or config, 1 if it fails."""
    from components.config import ConfigError
    from pgha.ci.harness import run_program

    try:
        result = run_program(stack, _parse_overrides(set_ or []), check=False)
    except FileNotFoundError as err:
        fail(err, 2)
    if isinstance(result.error, ConfigError):
        fail(result.error, 2, prefix="")
    if result.error is not None:
        fail(f"{type(result.error).__name__}: {result.error}", 1, prefix="the program failed: ")
    return result


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
        fail(err, 2)
    except DiffProgramError as err:
        fail(err, 1)
    if as_json:
        print(json.dumps(result.to_json(), indent=2))
    elif markdown:
        print(render_markdown(result))
    else:
        say(render_text(result))
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
        fail(f"{file}: {err}", 2)
    say(render_findings(findings))
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
            say(f"{v.level.upper():9} {v.policy}  {v.resource}  {v.message}")
        mandatory = sum(v.mandatory for v in violations)
        say(f"stack {stack}: {len(violations)} violation(s), {mandatory} mandatory")
    if any(v.mandatory for v in violations):
        raise typer.Exit(1)
