"""`pulumi up` builds its venv from requirements.txt alone: the program must run with nothing else.

A venv is built from requirements.txt only (cached under /var/tmp, keyed by the file's hash, so
only the first run pays for it) and the real program runs in it under the harness's mocks for
every engine. A deploy-time import of a lab or dev requirement fails here.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from pgha.ci.harness import PROJECT_DIR
from pgha.node.render import node_requirement_pins

REQUIREMENTS = PROJECT_DIR / "requirements.txt"
SYSTEM_PYTHON = "/usr/bin/python3"
CACHE_ROOT = Path(os.environ.get("PGHA_REQ_VENV_CACHE", "/var/tmp/pgha-requirements-venv"))

#: Run in the requirements-only venv: the project on sys.path, nothing else of ours.
PROGRAM = """
import base64, importlib.metadata, json, re, sys
sys.path.insert(0, sys.argv[1])
from pgha.ci.harness import run_program
installed = {d.metadata["Name"].lower() for d in importlib.metadata.distributions()}
out = {"lab_packages": sorted(installed & {"patroni", "psycopg", "psutil", "pytest", "moto"})}
runs = (("dev", "dev", {}), ("prod", "prod", {}), ("prod-patroni", "prod", {"engine": "patroni"}))
for label, stack, overrides in runs:
    plan = run_program(stack, overrides, check=False)
    out[label] = {
        "error": None if plan.error is None else f"{type(plan.error).__name__}: {plan.error}",
        "types": sorted({r.type for r in plan.resources}),
        "count": len(plan.resources),
        "hashed_node_installs": sorted({bool(re.search(r"--require-hashes .*-r \\S*node-requirements.txt",
                                                        base64.b64decode(r.inputs["userData"]).decode(), re.S))
                                        for r in plan.resources if "userData" in r.inputs}),
    }
print(json.dumps(out))
"""


def requirements_venv() -> Path:
    """A venv with exactly requirements.txt installed, built once per content of that file."""
    digest = hashlib.sha256(REQUIREMENTS.read_bytes()).hexdigest()[:16]
    venv = CACHE_ROOT / digest
    python = venv / "bin" / "python"
    CACHE_ROOT.mkdir(parents=True, exist_ok=True)
    with open(CACHE_ROOT / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # two suites at once build it once
        if (venv / ".complete").exists():
            return python
        shutil.rmtree(venv, ignore_errors=True)  # a build that was interrupted
        subprocess.run([SYSTEM_PYTHON, "-m", "venv", str(venv)], check=True, capture_output=True)
        install = subprocess.run(
            [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "-r", str(REQUIREMENTS)],
            capture_output=True,
            text=True,
        )
        assert install.returncode == 0, f"pip install -r requirements.txt failed:\n{install.stderr[-3000:]}"
        (venv / ".complete").touch()
    return python


@pytest.fixture(scope="module")
def requirements_only_run() -> dict:
    python = requirements_venv()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    proc = subprocess.run(
        [str(python), "-c", PROGRAM, str(PROJECT_DIR)],
        capture_output=True,
        text=True,
        cwd=PROJECT_DIR,
        env=env,
        timeout=600,
    )
    assert proc.returncode == 0, f"the program crashed in a requirements.txt-only venv:\n{proc.stderr[-4000:]}"
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_the_venv_holds_no_lab_or_dev_package(requirements_only_run: dict) -> None:
    assert requirements_only_run["lab_packages"] == []


@pytest.mark.parametrize(
    ("label", "component"),
    [
        ("dev", "pgha:rds:RdsPostgres"),
        ("prod", "pgha:rds:RdsPostgres"),
        ("prod-patroni", "pgha:patroni:PatroniCluster"),
    ],
)
def test_program_registers_its_resources_from_requirements_txt_alone(
    requirements_only_run: dict, label: str, component: str
) -> None:
    run = requirements_only_run[label]
    assert run["error"] is None, run["error"]
    assert component in run["types"]
    assert run["count"] > 10


def test_patroni_nodes_install_the_lab_pins_from_hashes(requirements_only_run: dict) -> None:
    """Nodes install the hashed node requirements, which pin the Patroni and psycopg the lab runs and tests."""
    pins = dict(
        line.split("==", 1)
        for line in (PROJECT_DIR / "requirements-lab.txt").read_text().splitlines()
        if "==" in line and not line.startswith("#")
    )
    node = node_requirement_pins()
    assert (node["patroni"], node["psycopg"]) == (pins["patroni[etcd3]"], pins["psycopg[binary]"])
    assert requirements_only_run["prod-patroni"]["hashed_node_installs"] == [True]


def test_the_pull_request_checks_run_from_requirements_txt_alone() -> None:
    """The PR workflow's checks job installs requirements.txt only, then runs `pgha policy` (pulumi-policy is
    pinned there for this) and `pgha diff`."""
    python = requirements_venv()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    commands = (["policy", "--stack", "prod", "--set", "engine=patroni"], ["diff", "--stack", "dev", "--base", "HEAD"])
    for command in commands:
        proc = subprocess.run(
            [str(python), "-m", "pgha", *command], capture_output=True, text=True, cwd=PROJECT_DIR, env=env, timeout=600
        )
        assert proc.returncode == 0, f"pgha {' '.join(command)}: {proc.stderr[-2000:]}"
