"""The ``pgha`` command line: ``python -m pgha <command>``."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.console import Console

app = typer.Typer(help="pgha: highly-available PostgreSQL on AWS, and the operations around it.", no_args_is_help=True)
console = Console()
err_console = Console(stderr=True)


def _parse_overrides(pairs: list[str]) -> dict[str, str]:
    overrides = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise typer.BadParameter(f"{pair!r}: expected KEY=VALUE, e.g. replicas=2")
        overrides[key] = value
    return overrides


@app.command()
def plan(
    stack: Annotated[str, typer.Option(help="Stack whose Pulumi.<stack>.yaml config to use.")] = "dev",
    as_json: Annotated[bool, typer.Option("--json", help="Print every resource as JSON.")] = False,
    set_: Annotated[
        list[str] | None, typer.Option("--set", help="Override a config key: KEY=VALUE (repeatable).")
    ] = None,
) -> None:
    """Show what `pulumi up` would register for a stack, offline (the program runs under mocks)."""
    from components.config import ConfigError
    from pgha.harness import run_program
    from pgha.plan import outputs_tree, plan_json, plan_tree

    try:
        result = run_program(stack, _parse_overrides(set_ or []), check=False)
    except FileNotFoundError as err:
        err_console.print(f"[red]error:[/red] {err}")
        raise typer.Exit(2) from None
    if isinstance(result.error, ConfigError):
        err_console.print(f"[red]{result.error}[/red]", highlight=False)
        raise typer.Exit(2)
    if result.error is not None:
        err_console.print(f"[red]the program failed:[/red] {type(result.error).__name__}: {result.error}")
        raise typer.Exit(1)
    if as_json:
        print(json.dumps(plan_json(result), indent=2))
    else:
        console.print(plan_tree(result), highlight=False)
        console.print(outputs_tree(result), highlight=False)


@app.callback()
def main() -> None:
    """pgha: highly-available PostgreSQL on AWS, and the operations around it."""
