"""The GitHub Actions workflows: actionlint passes, actions are pinned, permissions are the least
each job needs, and the jobs run what docs/ci.md says they run."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from pgha.ci.harness import PROJECT_DIR

WORKFLOWS = PROJECT_DIR / ".github" / "workflows"
ACTIONLINT = Path(sys.executable).parent / "actionlint"
PINNED = re.compile(r"^[\w.-]+/[\w./-]+@(v\d+\.\d+\.\d+|[0-9a-f]{40})$")


def load(name: str) -> dict[str, Any]:
    return yaml.safe_load((WORKFLOWS / name).read_text())


def actionlint(*paths: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(ACTIONLINT), "-no-color", *map(str, paths)], cwd=PROJECT_DIR, capture_output=True, text=True, timeout=120
    )


def test_actionlint_passes_every_workflow() -> None:
    files = sorted(WORKFLOWS.glob("*.yml"))
    assert [f.name for f in files] == ["deploy-dev.yml", "pull-request.yml"]
    result = actionlint(*files)
    assert result.returncode == 0, result.stdout + result.stderr


def test_actionlint_catches_a_broken_workflow(tmp_path: Path) -> None:
    broken = tmp_path / ".github" / "workflows" / "broken.yml"
    broken.parent.mkdir(parents=True)
    broken.write_text(
        "on: push\njobs:\n  x:\n    runs-on: ubuntu-24.04\n    steps:\n"
        "      - run: echo ${{ github.event.no_such_thing.x }}\n        if: ${{ nope( }}\n"
    )
    assert actionlint(broken).returncode != 0


@pytest.mark.parametrize("name", ["pull-request.yml", "deploy-dev.yml"])
def test_actions_are_pinned_and_permissions_are_per_job(name: str) -> None:
    workflow = load(name)
    assert workflow["permissions"] == {}, "nothing by default; each job asks for what it needs"
    for job_id, job in workflow["jobs"].items():
        assert "permissions" in job, job_id
        assert "write-all" not in str(job["permissions"]) and "read-all" not in str(job["permissions"])
        for step in job["steps"]:
            if "uses" in step:
                assert PINNED.match(step["uses"]), f"{job_id}: {step['uses']} is not pinned to a version"


def test_only_the_jobs_that_must_write_can() -> None:
    jobs = load("pull-request.yml")["jobs"]
    writers = {job_id: sorted(k for k, v in job["permissions"].items() if v == "write") for job_id, job in jobs.items()}
    assert writers == {"test": [], "checks": [], "comment": ["pull-requests"], "preview": ["id-token", "pull-requests"]}
    # the job that writes runs no code from the pull request, and never for forks
    assert [s.get("uses", "").split("@")[0] for s in jobs["comment"]["steps"]] == [
        "actions/download-artifact",
        "actions/github-script",
    ]
    assert "github.event.pull_request.head.repo.full_name == github.repository" in jobs["comment"]["if"]


def variants(script: str) -> list[str]:
    """The argument sets a step's `for args in "..." "..."; do` loop runs its command with."""
    (loop,) = re.findall(r"^\s*for args in (.*); do$", script, re.MULTILINE)
    return shlex.split(loop)


def test_pull_requests_run_tests_diff_policy_and_one_edited_comment() -> None:
    workflow = load("pull-request.yml")
    assert set(workflow[True]) == {"pull_request"}  # YAML 1.1 reads the key `on` as true
    jobs = workflow["jobs"]
    assert jobs["test"]["steps"][-1]["run"].strip().endswith(".ci/run")
    steps = {s.get("id"): s.get("run", "") for s in jobs["checks"]["steps"]}
    assert 'pgha diff $args --base "$BASE" --markdown' in steps["diff"]
    assert "pgha policy $args" in steps["policy"]
    # both committed stacks run engine=rds: the Patroni path is diffed and checked only with --set
    for step in ("diff", "policy"):
        assert variants(steps[step]) == ["--stack dev", "--stack prod", "--stack prod --set engine=patroni"], step
    script = jobs["comment"]["steps"][-1]["with"]["script"]
    assert "<!-- pgha-ci -->" in script and "updateComment" in script and "createComment" in script


def test_preview_runs_per_stack_only_with_credentials_and_is_checked() -> None:
    preview = load("pull-request.yml")["jobs"]["preview"]
    assert preview["strategy"]["matrix"]["stack"] == ["dev", "prod"]
    steps = preview["steps"]
    assert steps[0]["if"] == "env.HAS_CLOUD != 'true'" and "::notice" in steps[0]["run"]
    assert all(s["if"] == "env.HAS_CLOUD == 'true'" for s in steps[1:])
    action = next(s for s in steps if s.get("uses", "").startswith("pulumi/actions@"))
    assert action["with"] | {"stack-name": None} == {
        "command": "preview",
        "stack-name": None,
        "diff": True,
        "refresh": True,
        "comment-on-pr": True,
        "edit-pr-comment": True,
        "policyPacks": "policy",
    }
    assert "pgha preview-check preview.json" in steps[-1]["run"] and "--json" in steps[-1]["run"]


def test_main_deploys_dev_only_behind_an_environment() -> None:
    workflow = load("deploy-dev.yml")
    assert workflow[True] == {"push": {"branches": ["main"]}}
    (job,) = workflow["jobs"].values()
    assert job["environment"] == "dev"
    action = next(s for s in job["steps"] if s.get("uses", "").startswith("pulumi/actions@"))
    assert action["with"]["command"] == "up" and action["with"]["stack-name"] == "dev"
    assert "prod" not in yaml.safe_dump(job["steps"])


def test_the_diff_step_posts_one_section_per_variant(tmp_path: Path) -> None:
    """The step's own shell loop, run against HEAD: the Patroni variant reaches `pgha diff` as separate words."""
    (step,) = [s for s in load("pull-request.yml")["jobs"]["checks"]["steps"] if s.get("id") == "diff"]
    out = tmp_path / "pgha-ci"
    script = (
        step["run"]
        .replace(".venv/bin/python", sys.executable)
        .replace("mkdir -p pgha-ci", f"mkdir -p {out}")
        .replace("pgha-ci/", f"{out}/")
    )
    output = tmp_path / "github-output"
    env = {**os.environ, "BASE": "HEAD", "GITHUB_OUTPUT": str(output)}
    result = subprocess.run(
        ["bash", "-e", "-c", script], cwd=PROJECT_DIR, env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stdout + result.stderr
    comment = (out / "comment.md").read_text()
    headers = re.findall(r"^### `pgha diff` — stack (.*) vs `HEAD`", comment, re.MULTILINE)
    assert headers == ["`dev`", "`prod`", "`prod` with `--set engine=patroni`"], comment
    assert comment.startswith("<!-- pgha-ci -->\n## pgha CI")
    # 0, or 3 when uncommitted work holds a dangerous change; never a failed run
    assert "failed (exit" not in comment and output.read_text() in ("exit=0\n", "exit=3\n")
