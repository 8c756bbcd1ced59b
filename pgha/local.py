"""Running PostgreSQL tooling on this machine: binaries, an unprivileged user, free ports.

Shared by the local HA lab and the test suite's throwaway servers. PostgreSQL refuses to run
as root, so when we are root every server process runs as the ``postgres`` system user.
"""

from __future__ import annotations

import glob
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path

from pgha.connect import ConnectionSettings, connect

SERVICE_USER = "postgres"
#: The Python venvs for the service user are made from: its files are readable by every user.
SYSTEM_PYTHON = "/usr/bin/python3"
#: What such a venv installs: Patroni and the lab's other needs.
LAB_REQUIREMENTS = Path(__file__).resolve().parents[1] / "requirements-lab.txt"


class PrerequisiteError(RuntimeError):
    """Something this machine must provide is missing; the message says what to install or free."""


def postgres_bindir() -> Path:
    """Directory of the PostgreSQL server binaries (initdb, postgres, pg_ctl), newest major first."""
    candidates = []
    pg_config = shutil.which("pg_config")
    if pg_config:
        out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, check=False).stdout.strip()
        if out:
            candidates.append(out)
    candidates += sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(p.split("/")[-2]), reverse=True)
    for candidate in candidates:
        if (Path(candidate) / "postgres").exists() and (Path(candidate) / "initdb").exists():
            return Path(candidate)
    raise PrerequisiteError(
        "PostgreSQL server binaries not found (looked via pg_config and /usr/lib/postgresql/*/bin): "
        "install them, e.g. `apt-get install postgresql-15`"
    )


def running_as_root() -> bool:
    """True when this process is root, so servers must be started as the service user."""
    return os.geteuid() == 0


def service_user_ids() -> tuple[int, int]:
    """(uid, gid) of the unprivileged user that runs PostgreSQL when we are root."""
    try:
        entry = pwd.getpwnam(SERVICE_USER)
    except KeyError:
        raise PrerequisiteError(
            f"running as root needs an unprivileged '{SERVICE_USER}' user to run PostgreSQL "
            "(the postgresql package creates it)"
        ) from None
    return entry.pw_uid, entry.pw_gid


def as_service_user(command: list[str]) -> list[str]:
    """The command, run as the service user when we are root (PostgreSQL refuses root)."""
    if not running_as_root():
        return command
    service_user_ids()
    return ["runuser", "-u", SERVICE_USER, "--", *command]


def service_user_can_run(command: list[str]) -> bool:
    """True when the service user can run ``command`` (always true when we are not root)."""
    return _service_user_run(command).returncode == 0


def _service_user_run(command: list[str]) -> subprocess.CompletedProcess[str]:
    """``command`` run as the service user (as we are, when not root), its output captured."""
    return subprocess.run(as_service_user(command), capture_output=True, text=True, check=False)


def service_user_python(venv: Path, report: Callable[[str], None] = print) -> str:
    """A Python with Patroni that the service user can run.

    This process's own when the service user can run it; otherwise (the project, and so its venv, sits
    where that user cannot traverse: under /root, in a 0700 ``mktemp -d``) ``venv``, made from the system
    Python with requirements-lab.txt unless a working one is already there. The service user must be able
    to reach ``venv``'s parent.
    """
    needed = "import patroni, psycopg"
    if service_user_can_run([sys.executable, "-c", needed]):
        return sys.executable
    python = venv / "bin" / "python"
    if not service_user_can_run([str(python), "-c", needed]):
        report(f"the {SERVICE_USER} user cannot read {sys.executable}: installing Patroni into {venv}")
        subprocess.run([SYSTEM_PYTHON, "-m", "venv", "--clear", str(venv)], check=True, capture_output=True)
        subprocess.run(
            [
                str(python),
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "-r",
                str(LAB_REQUIREMENTS),
            ],
            check=True,
            capture_output=True,
        )
        check = _service_user_run([str(python), "-c", needed])
        if check.returncode != 0:
            said = (check.stderr.strip().splitlines() or ["no output"])[-1]
            raise PrerequisiteError(
                f"the {SERVICE_USER} user cannot run {python} -c {needed!r} ({said}): is "
                f"{venv.parent} out of its reach?"
            )
    return str(python)


def give_to_service_user(*paths: Path) -> None:
    """Make directories we created owned by the service user (when we are root)."""
    if not running_as_root():
        return
    uid, gid = service_user_ids()
    for path in paths:
        os.chown(path, uid, gid)


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def port_in_use(host: str, port: int) -> bool:
    """True when something already listens on host:port."""
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def has_extension(bindir: Path, name: str) -> bool:
    """True when the PostgreSQL installation of ``bindir`` ships the extension (e.g. pg_cron)."""
    sharedir = subprocess.run(
        [str(bindir / "pg_config"), "--sharedir"], capture_output=True, text=True, check=False
    ).stdout.strip()
    return bool(sharedir) and (Path(sharedir) / "extension" / f"{name}.control").exists()


class PostgresServer:
    """A throwaway PostgreSQL cluster (tests, benchmarks): initdb in a temp dir, free port, real extensions;
    one owned by this process, with pg_stat_statements and (if installed) pg_cron."""

    def __init__(self, database: str = "app", extra_settings: Mapping[str, str] | None = None):
        self.bindir = postgres_bindir()
        self.root = Path(tempfile.mkdtemp(prefix="pgha-test-pg-"))
        self.datadir = self.root / "data"
        self.port = free_port()
        self.database = database
        self.superuser = "pgha_admin"
        self.password = secrets.token_urlsafe(16)
        self.has_pg_cron = has_extension(self.bindir, "pg_cron")
        #: More server settings (name -> value), e.g. shared_buffers for a benchmark.
        self.extra_settings = dict(extra_settings or {})

    def start(self) -> PostgresServer:
        """initdb, start, and create the application database."""
        give_to_service_user(self.root)
        pwfile = self.root / "pw"
        pwfile.write_text(self.password)
        give_to_service_user(pwfile)
        self._run(
            "initdb",
            "-D",
            str(self.datadir),
            "-U",
            self.superuser,
            f"--pwfile={pwfile}",
            "--auth=scram-sha-256",
            "--data-checksums",
            "-E",
            "UTF8",
            "--locale=C.UTF-8",
        )
        pwfile.unlink()
        preload = "pg_stat_statements,pg_cron" if self.has_pg_cron else "pg_stat_statements"
        options = (
            f"-c listen_addresses=127.0.0.1 -c port={self.port} -c unix_socket_directories={self.root} "
            f"-c shared_preload_libraries={preload} -c cron.database_name={self.database} "
            f"-c max_connections=50 -c fsync=off"
        ) + "".join(f" -c {name}={value}" for name, value in self.extra_settings.items())
        self._run(
            "pg_ctl", "-D", str(self.datadir), "-l", str(self.root / "postgres.log"), "-w", "-o", options, "start"
        )
        admin = connect(self.settings("postgres"))
        admin.run(f'CREATE DATABASE "{self.database}"')
        admin.close()
        return self

    def stop(self) -> None:
        """Stop the server and remove its files."""
        self._run("pg_ctl", "-D", str(self.datadir), "-m", "immediate", "-w", "stop", check=False)
        shutil.rmtree(self.root, ignore_errors=True)

    def _run(self, tool: str, *args: str, check: bool = True) -> None:
        """Run a server tool; with ``check``, a failure raises naming the tool and what it printed."""
        done = subprocess.run(
            as_service_user([str(self.bindir / tool), *args]),
            capture_output=True,
            text=True,
            cwd=self.root,
            check=False,
        )
        if check and done.returncode != 0:
            said = (done.stderr or done.stdout).strip().splitlines()[-2:]
            log = self.root / "postgres.log"  # pg_ctl start only says "examine the log output"
            said += log.read_text(errors="replace").strip().splitlines()[-2:] if log.exists() else []
            raise RuntimeError(f"{tool} failed (exit {done.returncode}): {' / '.join(said) or 'no output'}")

    def settings(
        self, database: str | None = None, user: str | None = None, password: str | None = None
    ) -> ConnectionSettings:
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
