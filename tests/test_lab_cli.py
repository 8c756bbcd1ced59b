"""`pgha lab ...` where no lab runs: what the CLI refuses or reports before (or instead of) touching a lab.

None of these start a lab: each points PGHA_LAB_DIR at an empty directory of its own.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from pgha.lab.cluster import PROJECT_DIR


def pgha(*args: str, lab_dir: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """Run ``python -m pgha ARGS`` from the project directory with the lab in ``lab_dir``."""
    return subprocess.run(
        [sys.executable, "-m", "pgha", *args],
        cwd=PROJECT_DIR,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, "PGHA_LAB_DIR": str(lab_dir), **env},
    )


def test_lab_up_refuses_a_ttl_beyond_the_bound_and_starts_nothing(tmp_path: Path) -> None:
    """etcd refuses so long a lease ("too large lease TTL"): Patroni ran with no leader while `lab up`
    reported success and remembered the value."""
    lab_dir = tmp_path / "lab"
    up = pgha("lab", "up", "--ttl", "10000000000", lab_dir=lab_dir)
    assert up.returncode == 2, up.stdout + up.stderr
    assert "--ttl = 10000000000: must be at most 3600" in up.stderr
    assert not (lab_dir / "timing.json").exists(), "a refused timing is not remembered"


@pytest.mark.parametrize(
    "command",
    [
        ["lab", "status"],
        ["lab", "up"],
        ["lab", "down"],
        ["lab", "password"],
        ["lab", "kill", "node1"],
        ["lab", "switchover"],
        ["drill", "lab", "switchover"],
    ],
)
def test_bad_lab_addresses_are_one_error_line(command: list[str], tmp_path: Path) -> None:
    result = pgha(*command, lab_dir=tmp_path / "lab", PGHA_LAB_ADDRESSES="1.2.3.4")
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: PGHA_LAB_ADDRESSES = '1.2.3.4': expected three"), lines


def test_lab_password_where_there_is_no_lab_is_an_error_and_creates_nothing(tmp_path: Path) -> None:
    """A mistyped PGHA_LAB_DIR printed a freshly generated password that no lab uses."""
    lab_dir = tmp_path / "no-lab-here"
    result = pgha("lab", "password", lab_dir=lab_dir)
    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stdout == ""
    assert f"error: no lab in {lab_dir}: run make up / pgha lab up first" in result.stderr
    assert not lab_dir.exists()


def test_lab_status_of_a_stopped_lab_says_it_is_not_running(tmp_path: Path) -> None:
    """It printed an empty table and the DSNs, exit 3 the only sign."""
    lab_dir = tmp_path / "lab"
    status = pgha("lab", "status", lab_dir=lab_dir)
    assert status.returncode == 3
    assert status.stdout.startswith(f"lab is not running ({lab_dir}): start it with make up")
    assert "member" not in status.stdout and "DSN" not in status.stdout


def test_lab_kill_of_an_unknown_node_names_the_labs_nodes(tmp_path: Path) -> None:
    """It printed "killed node9: ..." and exited 0."""
    result = pgha("lab", "kill", "node9", lab_dir=tmp_path / "lab")
    assert result.returncode == 1
    assert "error: unknown node 'node9': the lab's nodes are node1, node2, node3" in result.stderr
    assert "killed" not in result.stdout


def test_lab_kill_of_a_node_that_is_not_running_says_so(tmp_path: Path) -> None:
    result = pgha("lab", "kill", "node2", lab_dir=tmp_path / "lab")
    assert result.returncode == 1
    assert "error: node2 is not running" in result.stderr
    assert "killed" not in result.stdout
