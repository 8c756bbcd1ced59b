"""The drills' dispatch tables: every scenario runs a method of its drill, and the CLI offers exactly those."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from pgha.cli import app
from pgha.drill.lab import SCENARIOS as LAB_SCENARIOS
from pgha.drill.lab import LabDrill
from pgha.drill.rds import SCENARIOS as RDS_SCENARIOS
from pgha.drill.rds import RdsDrill
from pgha.drill.scenarios import LAB_ROUNDS, RDS_ROUNDS, one_of


@pytest.mark.parametrize(("drill", "rounds"), [(LabDrill, LAB_ROUNDS), (RdsDrill, RDS_ROUNDS)])
def test_every_scenario_runs_a_method_of_its_drill(drill: type, rounds: dict[str, str]) -> None:
    assert all(callable(getattr(drill, method, None)) for method in rounds.values())


def test_the_drills_accept_exactly_the_scenarios_of_their_tables() -> None:
    assert tuple(LAB_ROUNDS) == LAB_SCENARIOS and tuple(RDS_ROUNDS) == RDS_SCENARIOS


@pytest.mark.parametrize(("target", "rounds"), [("lab", LAB_ROUNDS), ("rds", RDS_ROUNDS)])
def test_the_cli_offers_exactly_the_drills_scenarios(target: str, rounds: dict[str, str]) -> None:
    result = CliRunner().invoke(app, ["drill", target, "--help"], env={"COLUMNS": "400"})
    assert result.exit_code == 0
    assert one_of(rounds) in " ".join(result.output.split())
