"""Entry point for ``python -m pgha``."""

from pgha.cli import app

app(prog_name="pgha")
