"""Physical names (components/names.py): the derived-name table follows the program, and a stack name that would
make a name AWS refuses is refused before anything is registered, naming the stack, the name and the limit."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from components.config import ConfigError, longest_stack_name, parse_config
from components.names import DERIVED_NAMES, NAME_RULES, autoname, longest_derived, physical_name
from pgha.ci.harness import PROJECT_DIR, run_program

#: Every count at its maximum, the DR region and the proxy on: the longest names each engine makes.
LONGEST = {"rds": {"replicas": 5, "proxy": "true"}, "patroni": {"engine": "patroni", "patroni": {"nodes": 7}}}


def _length(type_: str, template: str, autonamed: bool, prefix: str) -> int:
    name = template.replace("{prefix}", prefix)
    return len(autoname(NAME_RULES[type_], name) if autonamed else name)


@pytest.mark.parametrize("engine", ["rds", "patroni"])
def test_the_derived_names_table_is_what_the_program_registers(engine: str) -> None:
    plan = run_program("prod", LONGEST[engine])
    found = longest_derived([(r.type, r.name, r.inputs) for r in plan.resources], "pgha-prod")
    table = DERIVED_NAMES[engine]
    assert [row[0] for row in found] == [row[0] for row in table], "a type was added or removed"
    for (type_, template, autonamed), (_, kept, kept_auto) in zip(found, table, strict=True):
        assert autonamed == kept_auto, type_
        assert _length(type_, template, autonamed, "pgha-prod") == _length(type_, kept, kept_auto, "pgha-prod"), (
            f"{type_}: the program's longest name is now {template!r}; update DERIVED_NAMES"
        )


def _project(tmp_path: Path, stack: str, engine: str) -> Path:
    """A copy of the project with one more stack: prod's config under another name."""
    directory = tmp_path / "project"
    directory.mkdir(parents=True)
    shutil.copy(PROJECT_DIR / "Pulumi.yaml", directory / "Pulumi.yaml")
    text = (PROJECT_DIR / "Pulumi.prod.yaml").read_text().replace("pgha:engine: rds", f"pgha:engine: {engine}")
    (directory / f"Pulumi.{stack}.yaml").write_text(text)
    for name in ("__main__.py", "components", "schema", "patroni"):
        (directory / name).symlink_to(PROJECT_DIR / name)
    return directory


@pytest.mark.parametrize("engine, longest", [("rds", 29), ("patroni", 15)])
def test_the_longest_stack_name_passes_every_rule_and_one_more_character_is_refused(
    tmp_path: Path, engine: str, longest: int
) -> None:
    assert longest_stack_name("pgha", engine) == longest
    fits = "p" * longest
    overrides: dict[str, Any] = {k: v for k, v in LONGEST[engine].items() if k != "engine"}
    plan = run_program(fits, overrides, check=False, project_dir=_project(tmp_path / "a", fits, engine))
    assert plan.error is None, plan.error
    too_long = fits + "p"
    plan = run_program(too_long, overrides, check=False, project_dir=_project(tmp_path / "b", too_long, engine))
    assert isinstance(plan.error, ConfigError) and plan.resources == []
    [problem] = plan.error.problems
    assert problem.startswith(f"stack {too_long!r} (project 'pgha') names resources pgha-{too_long}-...: AWS refuses")
    assert f"use at most {longest} lowercase letters, digits and single hyphens (engine {engine})" in problem


def test_a_stack_name_that_makes_two_hyphens_is_refused_naming_the_rds_identifier() -> None:
    with pytest.raises(ConfigError) as refused:
        parse_config({}, project="pgha", stack="prod_", region="eu-west-1")
    [problem] = refused.value.problems
    assert "stack 'prod_'" in problem and "'pgha-prod--" in problem
    assert "no two hyphens in a row" in problem


def test_the_error_names_the_limit_and_the_derived_name() -> None:
    with pytest.raises(ConfigError) as refused:
        parse_config({"engine": "patroni"}, project="pgha", stack="staging-eu-west1", region="eu-west-1")
    [problem] = refused.value.problems
    assert "'pgha-staging-eu-west1-nlb-xxxxxxx' (lb/loadBalancer name): 33 characters, AWS allows 1 to 32" in problem


def test_autonamed_and_explicit_names() -> None:
    assert physical_name("aws:iam/role:Role", "pgha-prod-schema-role", {}) == ("pgha-prod-schema-role-xxxxxxx", True)
    assert physical_name("aws:rds/instance:Instance", "x", {"identifier": "pgha-prod-primary"}) == (
        "pgha-prod-primary",
        False,
    )
    assert physical_name("aws:s3/bucket:Bucket", "Pgha-Backups", {}) == ("pgha-backups-xxxxxxx", True)
    assert physical_name("aws:kms/alias:Alias", "pgha-prod-key-alias", {}) == (None, False)
    assert physical_name("aws:ec2/vpc:Vpc", "pgha-prod-net-vpc", {}) == (None, False)
