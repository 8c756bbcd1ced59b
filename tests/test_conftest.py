"""tests/conftest.py: the `postgres` marker is applied to exactly the tests that use the server fixtures."""

from __future__ import annotations

import subprocess
import sys

from pgha.ci.harness import PROJECT_DIR

# a module with both kinds: tests on a real server and tests of the Lambda bundle and the plan
MODULE = "tests/test_schema_hook.py"


def collected(marker: str) -> set[str]:
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", "-m", marker, MODULE],
        cwd=PROJECT_DIR,
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    return {line for line in result.stdout.splitlines() if "::" in line}


def test_the_postgres_marker_selects_the_tests_that_use_the_server_fixtures() -> None:
    on_server, without = collected("postgres"), collected("not postgres")
    assert on_server and without and not on_server & without
    assert any("ensure_logins" in test or "handler" in test for test in on_server)
    assert not any("bundle" in test or "reserves_no_concurrency" in test for test in on_server)
