"""The write probe against a real PostgreSQL that stops answering (SIGSTOP), as a frozen leader does."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator

import psutil
import pytest

from pgha.drill.probe import Commit, WriteProbe, lost_seconds, missing_acknowledged
from pgha.local import PostgresServer


@pytest.fixture
def server() -> Iterator[PostgresServer]:
    server = PostgresServer().start()
    yield server
    server.stop()


def freeze(server: PostgresServer, sig: signal.Signals) -> None:
    postmaster = psutil.Process(int((server.datadir / "postmaster.pid").read_text().split()[0]))
    for proc in [postmaster, *postmaster.children(recursive=True)]:
        os.kill(proc.pid, sig)


def test_a_frozen_server_is_an_outage_not_a_hung_probe(server: PostgresServer) -> None:
    probe = WriteProbe(server.settings(), timeout=2)
    probe.prepare()
    probe.start()
    deadline = time.monotonic() + 30
    while len(probe.report.commits) < 10 and time.monotonic() < deadline:
        time.sleep(0.1)
    freeze(server, signal.SIGSTOP)
    try:
        deadline = time.monotonic() + 30
        while not probe.report.errors and time.monotonic() < deadline:
            time.sleep(0.2)
        errors_while_frozen = list(probe.report.errors)
    finally:
        freeze(server, signal.SIGCONT)
    frozen_at = len(probe.report.commits)
    deadline = time.monotonic() + 30
    while len(probe.report.commits) < frozen_at + 10 and time.monotonic() < deadline:
        time.sleep(0.1)
    report = probe.stop()
    assert errors_while_frozen, "a write on a frozen server must fail (read timeout), not wait for the thaw"
    assert "timed out" in errors_while_frozen[0][1]
    assert len(report.commits) >= frozen_at + 10, "writes resume once the server answers again"
    assert missing_acknowledged(server.settings(), report.acknowledged) == []
    gap = report.longest_gap()
    assert gap is not None and gap[0] < errors_while_frozen[0][0] < gap[1]


def test_lost_seconds_spans_from_the_last_surviving_commit_to_the_newest_lost() -> None:
    commits = [Commit(i, 100.0 + i, "a") for i in range(1, 11)]
    assert lost_seconds(commits, []) == 0.0
    assert lost_seconds(commits, [8, 9, 10]) == 3.0  # commit 7 (t=107) survived; 10 (t=110) was lost
    assert lost_seconds(commits, [1]) == 0.0  # nothing survived before it: the span of what was lost
