"""Running PostgreSQL tooling on this machine: binaries, an unprivileged user, free ports.

Shared by the local HA lab and the test suite's throwaway servers. PostgreSQL refuses to run
as root, so when we are root every server process runs as the ``postgres`` system user.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
from pathlib import Path

SERVICE_USER = "postgres"


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
    if not running_as_root():
        return True
    service_user_ids()
    return subprocess.run(["runuser", "-u", SERVICE_USER, "--", *command], capture_output=True,
                          check=False).returncode == 0


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
