"""The ``pgha`` command line (``python -m pgha <command>``), assembled from each domain's own commands.

Each domain owns its commands in ``pgha/<domain>/cli.py``; the console helpers they share are in
:mod:`pgha.console`. A domain CLI imports only light modules at start-up (typer, rich, the scenario names,
the migrations directory) and the heavy ones (Pulumi, boto3, moto, pg8000) inside its commands: ``pgha diff``
starts fast.
"""

from __future__ import annotations

import typer

from pgha.ci.cli import app as ci_app
from pgha.drill.cli import app as drill_app
from pgha.lab.cli import app as lab_app
from pgha.node.cli import app as node_app
from pgha.schema.cli import app as schema_app

app = typer.Typer(help="pgha: highly-available PostgreSQL on AWS, and the operations around it.", no_args_is_help=True)
# In this order in `pgha --help`: plan, diff, preview-check, policy, migrate, maintain, lab, node, drill.
app.add_typer(ci_app)  # no name: top-level commands
app.add_typer(schema_app)
app.add_typer(lab_app, name="lab")
app.add_typer(node_app, name="node")
app.add_typer(drill_app, name="drill")


@app.callback()
def main() -> None:
    """pgha: highly-available PostgreSQL on AWS, and the operations around it."""
