"""`python -m pgha plan`: the readable tree, the JSON list, and config errors without a traceback."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from pgha.ci.harness import PROJECT_DIR


def pgha(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pgha", *args], cwd=PROJECT_DIR, capture_output=True, text=True, timeout=120
    )


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_plan_prints_the_resource_tree(stack: str) -> None:
    result = pgha("plan", "--stack", stack)
    assert result.returncode == 0, result.stderr
    assert f"stack {stack}" in result.stdout
    assert f"pgha-{stack}-primary" in result.stdout
    assert "aws:rds/instance:Instance" in result.stdout
    assert "writerEndpoint" in result.stdout


def test_plan_prints_arns_verbatim() -> None:
    # rich reads ":secret:" in a secret's ARN as an emoji code unless told not to
    result = pgha("plan", "--stack", "dev")
    assert result.returncode == 0, result.stderr
    assert ":123456789012:secret:rds!db-" in result.stdout
    assert "\N{CIRCLED IDEOGRAPH SECRET}" not in result.stdout


def test_plan_json_lists_every_resource() -> None:
    result = pgha("plan", "--stack", "prod", "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert {"type", "name", "inputs"} <= set(data["resources"][0])
    types = {r["type"] for r in data["resources"]}
    assert {"aws:rds/instance:Instance", "aws:kms/key:Key", "pgha:dr:DrReplica"} <= types
    assert len(data["resources"]) > 50


def test_plan_set_overrides_config() -> None:
    data = json.loads(pgha("plan", "--stack", "dev", "--json", "--set", "replicas=3").stdout)
    replicas = [r for r in data["resources"] if r["inputs"].get("replicateSourceDb")]
    assert len(replicas) == 3


def test_invalid_config_prints_errors_and_exits_nonzero_without_traceback() -> None:
    result = pgha("plan", "--stack", "dev", "--set", "replicas=many", "--set", "multiAz=yes")
    assert result.returncode == 2
    assert "pgha:replicas" in result.stderr and "pgha:multiAz" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_unknown_stack_is_a_clear_error() -> None:
    result = pgha("plan", "--stack", "staging")
    assert result.returncode == 2
    assert "Pulumi.staging.yaml does not exist" in result.stderr


def test_plan_prints_the_patroni_cluster_of_prod() -> None:
    result = pgha("plan", "--stack", "prod", "--set", "engine=patroni")
    assert result.returncode == 0, result.stderr
    assert "warning: engine patroni ignores the RDS-only pgha:instanceClass" in result.stderr
    assert "pgha-prod-patroni pgha:patroni:PatroniCluster" in result.stdout
    assert "aws:lb/loadBalancer:LoadBalancer" in result.stdout
    assert "backupBucket" in result.stdout


def test_plan_json_shows_secrets_as_secret() -> None:
    result = pgha("plan", "--stack", "dev", "--set", "engine=patroni", "--json")
    assert result.returncode == 0, result.stderr
    assert "mock-password" not in result.stdout
    version = next(r for r in json.loads(result.stdout)["resources"] if r["name"] == "pgha-dev-patroni-credentials-v")
    assert version["inputs"]["secretString"] == "[secret]"


def test_errors_print_brackets_verbatim_one_line_per_problem() -> None:
    result = pgha("plan", "--stack", "dev", "--set", 'allowedCidrs=["0.0.0.0/0"]', "--set", 'tags={"aws:x": "[bold]"}')
    assert result.returncode == 2
    lines = result.stderr.splitlines()
    assert any(
        line.startswith("  - pgha:allowedCidrs = '[\"0.0.0.0/0\"]'") and "whole internet" in line for line in lines
    )
    assert any('"[bold]"' in line and "reserved by AWS" in line for line in lines)


def test_the_tree_shows_a_secret_as_secret_not_as_nothing() -> None:
    from rich.console import Console

    from pgha.ci.harness import Plan, RegisteredResource, Secret
    from pgha.ci.plan import outputs_tree, plan_tree

    key = RegisteredResource("aws:kms/key:Key", "k", "urn:k", "", "", True, {"enableKeyRotation": Secret(True)}, [])
    console = Console(width=200, record=True)
    plan = Plan("dev", [key], {"password": Secret("hunter2")})
    console.print(plan_tree(plan), outputs_tree(plan))
    text = console.export_text()
    assert "enableKeyRotation=[secret]" in text and 'password: "[secret]"' in text
    assert "hunter2" not in text
