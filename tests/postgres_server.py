"""A throwaway PostgreSQL server for tests: initdb in a temp dir, free port, real extensions."""

from __future__ import annotations

import secrets
import shutil
import subprocess
import tempfile
from pathlib import Path

from pgha.connect import ConnectionSettings, connect
from pgha.local import as_service_user, free_port, give_to_service_user, has_extension, postgres_bindir


class PostgresServer:
    """One PostgreSQL cluster owned by this test session, with pg_stat_statements and (if installed) pg_cron."""

    def __init__(self, database: str = "app"):
        self.bindir = postgres_bindir()
        self.root = Path(tempfile.mkdtemp(prefix="pgha-test-pg-"))
        self.datadir = self.root / "data"
        self.port = free_port()
        self.database = database
        self.superuser = "pgha_admin"
        self.password = secrets.token_urlsafe(16)
        self.has_pg_cron = has_extension(self.bindir, "pg_cron")

    def start(self) -> PostgresServer:
        """initdb, start, and create the application database."""
        give_to_service_user(self.root)
        pwfile = self.root / "pw"
        pwfile.write_text(self.password)
        give_to_service_user(pwfile)
        self._run("initdb", "-D", str(self.datadir), "-U", self.superuser, f"--pwfile={pwfile}",
                  "--auth=scram-sha-256", "--data-checksums", "-E", "UTF8", "--locale=C.UTF-8")
        pwfile.unlink()
        preload = "pg_stat_statements,pg_cron" if self.has_pg_cron else "pg_stat_statements"
        options = (
            f"-c listen_addresses=127.0.0.1 -c port={self.port} -c unix_socket_directories={self.root} "
            f"-c shared_preload_libraries={preload} -c cron.database_name={self.database} "
            f"-c max_connections=50 -c fsync=off"
        )
        self._run("pg_ctl", "-D", str(self.datadir), "-l", str(self.root / "postgres.log"), "-w", "-o", options,
                  "start")
        admin = connect(self.settings("postgres"))
        admin.run(f'CREATE DATABASE "{self.database}"')
        admin.close()
        return self

    def stop(self) -> None:
        """Stop the server and remove its files."""
        self._run("pg_ctl", "-D", str(self.datadir), "-m", "immediate", "-w", "stop", check=False)
        shutil.rmtree(self.root, ignore_errors=True)

    def _run(self, tool: str, *args: str, check: bool = True) -> None:
        subprocess.run(as_service_user([str(self.bindir / tool), *args]), check=check, capture_output=True,
                       cwd=self.root)

    def settings(self, database: str | None = None, user: str | None = None,
                 password: str | None = None) -> ConnectionSettings:
        """Connection settings for this server (the superuser unless told otherwise)."""
        return ConnectionSettings(
            hosts=(("127.0.0.1", self.port),),
            database=database or self.database,
            user=user or self.superuser,
            password=password or self.password,
            sslmode="disable",
        )

    def dsn(self, database: str | None = None, with_password: bool = True) -> str:
        """A postgresql:// URL for this server."""
        auth = f"{self.superuser}:{self.password}" if with_password else self.superuser
        return f"postgresql://{auth}@127.0.0.1:{self.port}/{database or self.database}?sslmode=disable"
