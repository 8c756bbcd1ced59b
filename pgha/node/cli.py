"""``pgha node``: what runs on a database node (EC2 or a lab node)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from pgha.console import fail, say

#: Added to the root app by :mod:`pgha.cli` as ``pgha node``.
app = typer.Typer(help="What runs on a database node (EC2 or a lab node).", no_args_is_help=True)


@app.command("bootstrap")
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
        fail(err, 2)
    try:
        bootstrap(node, start=start, report=say)
    except BootstrapError as err:
        fail(err, 1)
