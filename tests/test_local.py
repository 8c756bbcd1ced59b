"""pgha/local.py: a throwaway server that cannot start says why."""

from __future__ import annotations

import pytest

from pgha.local import PostgresServer


def test_a_server_that_cannot_start_names_the_setting() -> None:
    server = PostgresServer(extra_settings={"shared_buffers": "lots"})
    try:
        with pytest.raises(RuntimeError, match=r'pg_ctl failed .*invalid value for parameter "shared_buffers"'):
            server.start()
    finally:
        server.stop()
