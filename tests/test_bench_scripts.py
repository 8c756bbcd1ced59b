"""The bench/*.py entry points, without a lab or a database: exit codes on a missed target, the
figures they compute and the machine they report. The measurements are stubbed; timings live in the
benchmarks, not here."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import pytest

from pgha.connect import ConnectionSettings

BENCH_DIR = Path(__file__).resolve().parents[1] / "bench"


def bench_module(name: str) -> ModuleType:
    """bench/<name>.py imported as a module (bench/ is scripts, not a package)."""
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCH_DIR / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the file runs
    spec.loader.exec_module(module)
    return module


def run_diff_bench(monkeypatch: pytest.MonkeyPatch, seconds: dict[str, float], *args: str) -> int:
    """bench/diff.py's main() with each `pgha diff` run taking ``seconds[stack]``."""
    diff = bench_module("diff")
    monkeypatch.setattr(diff, "time_diff", lambda stack, _base: (seconds[stack], 0))
    monkeypatch.setattr(sys, "argv", ["bench/diff.py", "--rounds", "2", *args])
    return diff.main()


def test_diff_bench_exits_1_when_both_stacks_take_longer_than_the_target(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    report = tmp_path / "diff.json"
    assert run_diff_bench(monkeypatch, {"dev": 4.0, "prod": 6.5}, "--json", str(report)) == 1
    assert "10.50 s at worst, OVER the 10 s target" in capsys.readouterr().out
    assert json.loads(report.read_text())["met"] is False, "the report is written before the exit"


def test_diff_bench_exits_0_within_the_target(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_diff_bench(monkeypatch, {"dev": 2.2, "prod": 2.4}) == 0
    assert "4.60 s at worst, within the 10 s target" in capsys.readouterr().out


def test_ha_bench_reports_the_postgres_the_lab_runs(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The version comes from the binaries pgha.local finds (any major version), not from a fixed path."""
    postgres = tmp_path / "postgres"
    postgres.write_text("#!/bin/sh\necho 'postgres (PostgreSQL) 99.1'\n")
    postgres.chmod(0o755)
    ha = bench_module("ha")
    monkeypatch.setattr(ha, "postgres_bindir", lambda: tmp_path)
    assert ha.machine()["postgres"] == "postgres (PostgreSQL) 99.1"


class FakeTenantDatabase:
    """Just enough of a pg8000 connection for bench/tenant_reads.py's measure(): one organization."""

    def run(self, sql: str, **_params: object) -> list[list[object]]:
        if sql.startswith("EXPLAIN"):
            return [["Index Scan on activity_logs"]]
        return [["org-1"]] if "FROM organizations" in sql else [[1], [2]]

    def close(self) -> None:
        pass


def test_tenant_reads_reports_p50_p95_and_max_in_milliseconds(monkeypatch: pytest.MonkeyPatch) -> None:
    """Timed reads of 1, 2, ..., 100 ms (after the warm-up tenth): p50 50.5, p95 95.05, max 100."""
    reads = bench_module("tenant_reads")
    clock = iter([t for query in range(3) for index in range(110) for t in (0.0, max(index - 9, 0) / 1000)])
    monkeypatch.setattr(reads, "time", type("Clock", (), {"perf_counter": staticmethod(lambda: next(clock))}))
    monkeypatch.setattr(reads, "connect", lambda _settings: FakeTenantDatabase())
    server = type(
        "Server", (), {"settings": lambda _self, db: ConnectionSettings(hosts=(("127.0.0.1", 1),), database=db)}
    )()
    results = reads.measure(server, "bench_x", ("bench_app", "pw"), iterations=100, seed=0)
    assert {name: (r["p50_ms"], r["p95_ms"], r["max_ms"], r["iterations"]) for name, r in results.items()} == {
        name: (50.5, 95.05, 100.0, 100) for name in ("activity", "projects", "dashboard")
    }
    assert [name for name, r in results.items() if r["met"]] == [], "95 ms is over every target"
