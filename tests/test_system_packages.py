"""scripts/system-packages: the set-up step both README commands run first."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from pgha.ci.harness import PROJECT_DIR
from pgha.local import running_as_root

SCRIPT = PROJECT_DIR / "scripts" / "system-packages"


@pytest.fixture
def tmp_path() -> Iterator[Path]:
    """A temporary directory the unprivileged user can reach too (pytest's own sits under a 0700 parent)."""
    path = Path(tempfile.mkdtemp(prefix="pgha-system-packages-"))
    yield path
    shutil.rmtree(path)


def fake_dpkg(tmp_path: Path, missing: str) -> dict[str, str]:
    """A PATH whose dpkg-query reports ``missing`` as not installed and every other package as installed."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    query = bin_dir / "dpkg-query"
    query.write_text(
        f'#!/bin/sh\nfor last; do :; done\n[ "$last" = "{missing}" ] && exit 1\nprintf "install ok installed"\n'
    )
    for path in (query, bin_dir, tmp_path):  # whatever the umask, the unprivileged user can run it
        path.chmod(0o755)
    return {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}


def test_nothing_missing_changes_nothing(tmp_path: Path) -> None:
    result = subprocess.run(
        [str(SCRIPT)], env=fake_dpkg(tmp_path, "none-missing"), capture_output=True, text=True, timeout=30, check=False
    )
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")


def test_check_names_the_missing_package_and_the_one_command_to_run(tmp_path: Path) -> None:
    result = subprocess.run(
        [str(SCRIPT), "--check"],
        env=fake_dpkg(tmp_path, "etcd-server"),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 1
    assert "missing system packages: etcd-server" in result.stderr
    assert "apt-get update && apt-get install -y --no-install-recommends etcd-server" in result.stderr


@pytest.mark.skipif(not running_as_root(), reason="needs root to run the script as an unprivileged user")
def test_an_unprivileged_user_is_told_what_to_run_and_nothing_is_installed(tmp_path: Path) -> None:
    env = fake_dpkg(tmp_path, "cloud-init")
    script = tmp_path / SCRIPT.name  # a copy where that user can read it: the checkout may be out of its reach
    shutil.copyfile(SCRIPT, script)
    script.chmod(0o755)
    result = subprocess.run(
        ["runuser", "-u", "postgres", "--", "env", f"PATH={env['PATH']}", str(script)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
        cwd="/",
    )
    assert result.returncode == 1, result.stderr
    assert "missing system packages: cloud-init" in result.stderr and "run as root:" in result.stderr
    assert "installing" not in result.stdout
