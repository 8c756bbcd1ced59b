from collections import deque
from socket import socket
from ssl import SSLContext
from typing import Any

from pg8000.exceptions import DatabaseError as DatabaseError
from pg8000.exceptions import Error as Error
from pg8000.exceptions import InterfaceError as InterfaceError

class Connection:
    notices: deque[dict[bytes, bytes]]
    _usock: socket
    def __init__(
        self,
        user: str,
        host: str = "localhost",
        database: str | None = None,
        port: int = 5432,
        password: str | bytes | None = None,
        source_address: tuple[str, int] | None = None,
        unix_sock: str | None = None,
        ssl_context: SSLContext | bool | None = None,
        timeout: float | None = None,
        tcp_keepalive: bool = True,
        application_name: str | None = None,
        replication: str | None = None,
        startup_params: dict[str, str] | None = None,
        sock: socket | None = None,
    ) -> None: ...
    # The rows of a statement that returns rows (pg8000 gives None for one that does not: pgha uses the
    # result only of queries).
    def run(self, sql: str, stream: Any = None, types: dict[str, int] | None = None, **params: Any) -> list[Any]: ...
    def close(self) -> None: ...
