"""A checkout the service user cannot traverse (a clone under /root, in a 0700 `mktemp -d`): what the suite runs as
that user still runs, from places it can read."""

from __future__ import annotations

import os
import shutil
import site
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from pgha.ci.harness import PROJECT_DIR
from pgha.local import running_as_root, service_user_can_run

#: The suite's tests that run something as the service user without a lab (the lab tests take minutes).
SERVICE_USER_TESTS = (
    "tests/test_node_bootstrap.py::test_patroni_as_the_service_user_can_write_beside_the_pgpass_of_an_ec2_node",
    "tests/test_system_packages.py::test_an_unprivileged_user_is_told_what_to_run_and_nothing_is_installed",
)


@pytest.mark.skipif(not running_as_root(), reason="only root's checkout can be out of the service user's reach")
def test_the_service_user_tests_pass_from_a_checkout_under_a_0700_directory() -> None:
    private = Path(tempfile.mkdtemp(prefix="pgha-private-"))  # 0700, as `mktemp -d` makes it
    try:
        checkout = private / "pgha"
        shutil.copytree(
            PROJECT_DIR,
            checkout,
            symlinks=True,
            ignore=shutil.ignore_patterns(
                ".git", ".venv", ".lab", "reports", "__pycache__", ".pytest_cache", ".ruff_cache"
            ),
        )
        # the checkout's own venv, as `make test` builds it: inside the tree (this one's packages through a .pth
        # rather than a 30 s pip install; what matters is where the interpreter sits)
        venv = checkout / ".venv"
        subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, capture_output=True)
        python = venv / "bin" / "python"
        purelib = subprocess.run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        Path(purelib, "pgha-test-parent.pth").write_text("\n".join(site.getsitepackages()) + "\n")
        assert oct(private.stat().st_mode & 0o777) == "0o700"
        assert not service_user_can_run([str(python), "-c", "pass"]), "the service user must not reach this venv"

        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
        result = subprocess.run(
            [str(python), "-m", "pytest", "-q", "-p", "no:cacheprovider", *SERVICE_USER_TESTS],
            cwd=checkout,
            env=env,
            capture_output=True,
            text=True,
            timeout=540,
            check=False,
        )
        assert result.returncode == 0, (result.stdout + result.stderr)[-2000:]
        assert "2 passed" in result.stdout, result.stdout[-1000:]
    finally:
        shutil.rmtree(private, ignore_errors=True)
