"""The bench/*.py entry points, without a lab or a database: the machine they report. The measurements
are stubbed; timings live in the benchmarks, not here."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

BENCH_DIR = Path(__file__).resolve().parents[1] / "bench"


def bench_module(name: str) -> ModuleType:
    """bench/<name>.py imported as a module (bench/ is scripts, not a package)."""
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCH_DIR / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_ha_bench_reports_the_postgres_the_lab_runs(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The version comes from the binaries pgha.local finds (any major version), not from a fixed path."""
    postgres = tmp_path / "postgres"
    postgres.write_text("#!/bin/sh\necho 'postgres (PostgreSQL) 99.1'\n")
    postgres.chmod(0o755)
    ha = bench_module("ha")
    monkeypatch.setattr(ha, "postgres_bindir", lambda: tmp_path)
    assert ha.machine()["postgres"] == "postgres (PostgreSQL) 99.1"
