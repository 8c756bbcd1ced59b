"""Makefile: `make check` and `make lint` install nothing system-wide, `make up`/`make test` do first, `make help`."""

from __future__ import annotations

import re
import subprocess

import pytest

from pgha.ci.harness import PROJECT_DIR

SYSTEM = "scripts/system-packages"


def dry_run(target: str) -> list[str]:
    """The commands ``make target`` would run on a fresh checkout (-B: as if nothing were built yet)."""
    result = subprocess.run(
        ["make", "-n", "-B", target], cwd=PROJECT_DIR, capture_output=True, text=True, timeout=60, check=True
    )
    return result.stdout.splitlines()


@pytest.mark.parametrize("target", ["check", "lint", "types"])
def test_the_quick_targets_install_no_system_packages(target: str) -> None:
    assert not [line for line in dry_run(target) if SYSTEM in line]


def test_check_runs_lint_types_and_every_test_but_the_lab_ones() -> None:
    commands = dry_run("check")
    assert any("ruff check" in line for line in commands)
    assert any("basedpyright" in line for line in commands)
    assert any('pytest -m "not lab"' in line for line in commands)


@pytest.mark.parametrize("target", ["up", "test"])
def test_up_and_test_install_the_system_packages_before_the_venv(target: str) -> None:
    commands = dry_run(target)
    first_venv = next(i for i, line in enumerate(commands) if "-m venv" in line)
    assert next(i for i, line in enumerate(commands) if SYSTEM in line) < first_venv


def test_help_lists_every_target_with_one_line() -> None:
    phony = re.search(r"^\.PHONY:(.*?)(?<!\\)\n", (PROJECT_DIR / "Makefile").read_text(), re.M | re.S)
    assert phony
    targets = phony[1].replace("\\\n", " ").split()
    result = subprocess.run(
        ["make", "--no-print-directory", "help"],
        cwd=PROJECT_DIR,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    listed = [line.split()[0] for line in result.stdout.splitlines()]
    assert sorted(listed) == sorted(targets)
    assert all(len(line.split()) > 1 for line in result.stdout.splitlines())
