"""stanza-create.sh: waits out pgBackRest's archive lock (exit 50), never any other failure.

Runs the rendered script with a stand-in ``pgbackrest`` first on PATH that answers from a list of exit
statuses; the real lock, taken by a real pgBackRest, is in tests/test_lab.py.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from pgha.lab.cluster import Lab
from pgha.node.render import render_stanza_create


def run_script(tmp_path: Path, statuses: list[int], attempts: int) -> tuple[int, list[str]]:
    """Run stanza-create.sh against a pgbackrest that exits with ``statuses`` in turn; (status, its calls)."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    calls = tmp_path / "calls"
    fake = bindir / "pgbackrest"
    fake.write_text(f"""#!/bin/sh
echo "$*" >> {calls}
n=$(wc -l < {calls})
set -- {" ".join(map(str, statuses))}
shift $((n - 1))
exit "$1"
""")
    fake.chmod(0o755)
    cluster = Lab(root=tmp_path / "lab", addresses=("127.0.3.1", "127.0.3.2", "127.0.3.3")).cluster()
    script = tmp_path / "stanza-create.sh"
    script.write_text(render_stanza_create(cluster, cluster.nodes[0], attempts=attempts))
    script.chmod(0o755)
    result = subprocess.run(
        [str(script)],
        env={**os.environ, "PATH": f"{bindir}:{os.environ['PATH']}"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return result.returncode, calls.read_text().splitlines()


def test_a_held_archive_lock_is_waited_out(tmp_path: Path) -> None:
    status, calls = run_script(tmp_path, [50, 50, 0], attempts=5)
    assert status == 0
    assert len(calls) == 3
    assert all(c.endswith("--stanza=pgha-lab stanza-create") and "--config=" in c for c in calls)


@pytest.mark.parametrize("failure", [1, 28, 82])
def test_any_other_failure_is_final(tmp_path: Path, failure: int) -> None:
    status, calls = run_script(tmp_path, [failure, 0], attempts=5)
    assert (status, len(calls)) == (failure, 1)


def test_a_lock_held_past_the_attempts_fails_with_its_status(tmp_path: Path) -> None:
    status, calls = run_script(tmp_path, [50, 50, 50, 0], attempts=2)
    assert (status, len(calls)) == (50, 2)
