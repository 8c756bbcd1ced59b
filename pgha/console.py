"""The console helpers every ``pgha`` command prints through: plain result lines, the error line and its exit.

Its own module, not :mod:`pgha.cli`: the domain CLIs (``pgha/*/cli.py``) import these helpers and
:mod:`pgha.cli` imports the domain CLIs to assemble them, so helpers kept there would be an import cycle.
"""

from __future__ import annotations

import contextlib
from typing import NoReturn

import typer
from rich.console import Console
from rich.markup import escape

# The CLI prints user data (ARNs, names, server messages): no emoji codes (an ARN's ":secret:" would
# become one) and no highlighting, on every path (print, Tree labels, table cells, the status line).
console = Console(emoji=False, highlight=False)
err_console = Console(stderr=True, emoji=False, highlight=False)


def say(line: str) -> None:
    """Print a progress or result line as plain text (server messages may contain brackets)."""
    console.print(line, markup=False, soft_wrap=True)


def fail(message: object, code: int, prefix: str = "error: ") -> NoReturn:
    """Print a message (never read as markup, never wrapped) to stderr and exit with ``code``."""
    err_console.print(f"[red]{prefix}[/red]{escape(str(message))}", soft_wrap=True)
    raise typer.Exit(code)


def python_command() -> str:
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
