"""Shared fixtures: plans of the committed stacks, run once per session."""

from __future__ import annotations

import pytest

from pgha.harness import Plan, run_program


@pytest.fixture(scope="session")
def dev_plan() -> Plan:
    return run_program("dev")


@pytest.fixture(scope="session")
def prod_plan() -> Plan:
    return run_program("prod")


@pytest.fixture(scope="session", params=["dev", "prod"])
def any_plan(request: pytest.FixtureRequest, dev_plan: Plan, prod_plan: Plan) -> Plan:
    return {"dev": dev_plan, "prod": prod_plan}[request.param]
