"""Shared fixtures: plans of the committed stacks, a real PostgreSQL started by the suite, a lab per module."""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from pgha.ci.harness import Plan, run_program
from pgha.connect import ConnectionSettings, connect
from pgha.lab.cluster import Lab, removed_on_exit
from pgha.local import PostgresServer, service_user_python
from pgha.schema.migrate import migrate


def _interrupt(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt("SIGTERM")


#: The fixtures that start (or use) the suite's own PostgreSQL server: a test using one is marked `postgres`.
SERVER_FIXTURES = frozenset({"postgres", "fresh_db", "schema_db"})


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark `postgres` every test that needs the real server (directly or through another fixture), so
    `-m "not postgres"` leaves out exactly those and `-m postgres` runs exactly those."""
    for item in items:
        if SERVER_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.postgres)


def pytest_configure(config: pytest.Config) -> None:
    """SIGTERM (a `timeout`, a CI job cancelled, `kill`) stops the run as Ctrl-C does, so pytest still tears
    the fixtures down: killed without this, a run left its PostgreSQL servers and lab processes behind."""
    signal.signal(signal.SIGTERM, _interrupt)


@pytest.fixture(autouse=True)
def _umask_kept() -> Iterator[None]:
    """Each test leaves the process umask as it found it. Importing Patroni's modules (patroni.validator, in a
    test) sets it to 077 for the whole process, after which every later subprocess made files only root can read:
    a venv built for the service user could not be run by it (tests/test_private_checkout.py failed that way in
    the full suite only)."""
    umask = os.umask(0o022)
    os.umask(umask)
    yield
    os.umask(umask)


@pytest.fixture(scope="session")
def dev_plan() -> Plan:
    return run_program("dev")


@pytest.fixture(scope="session")
def prod_plan() -> Plan:
    return run_program("prod")


@pytest.fixture(scope="session", params=["dev", "prod"])
def any_plan(request: pytest.FixtureRequest, dev_plan: Plan, prod_plan: Plan) -> Plan:
    return {"dev": dev_plan, "prod": prod_plan}[request.param]


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """A real PostgreSQL for the whole session (pg_stat_statements and pg_cron preloaded when installed)."""
    server = PostgresServer(database="app").start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def service_python() -> Iterator[str]:
    """A Python with Patroni the service user can run: this one, else (a checkout it cannot traverse, e.g. a
    clone under /root or a 0700 `mktemp -d`) a venv made as the lab makes its own, removed afterwards."""
    reachable = Path(tempfile.mkdtemp(prefix="pgha-service-python-"))
    reachable.chmod(0o755)
    try:
        yield service_user_python(reachable / "venv", report=lambda _line: None)
    finally:
        shutil.rmtree(reachable, ignore_errors=True)


@pytest.fixture
def fresh_db(postgres: PostgresServer) -> Iterator[ConnectionSettings]:
    """An empty database of its own for one test (not the pg_cron database)."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    admin = connect(postgres.settings("postgres"))
    admin.run(f'CREATE DATABASE "{name}"')
    yield postgres.settings(name)
    admin.run(f'DROP DATABASE "{name}" WITH (FORCE)')
    admin.close()


@pytest.fixture(scope="session")
def schema_db(postgres: PostgresServer) -> ConnectionSettings:
    """The pg_cron database with the whole application schema applied once."""
    conn = connect(postgres.settings())
    migrate(conn)
    conn.close()
    return postgres.settings()


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    """A real 3-node lab of the test module's own (on $PGHA_LAB_ADDRESSES), removed with its data afterwards."""
    root = Path(tempfile.mkdtemp(prefix="pgha-lab-test-"))
    try:
        with removed_on_exit(Lab(root=root, report=lambda _line: None)) as lab:  # also when CI kills the run
            lab.up()
            yield lab
    finally:
        shutil.rmtree(root, ignore_errors=True)
