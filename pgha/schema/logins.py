"""Application login roles, created or updated by the schema hook with passwords from Secrets Manager.

Each login is a LOGIN role that is a member of one group role of the schema (e.g. ``pgha_app``
in ``application_role``). Idempotent: a missing role is created, an existing one gets its
password reset to the secret's and its membership granted again (a no-op when held).

The password never reaches the server or its logs in plaintext: like psql's ``\\password``,
the SCRAM-SHA-256 verifier is computed here and sent instead (``log_statement = ddl`` logs
``ALTER ROLE`` statements verbatim).
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import pg8000.native
import scramp

from pgha.connect import run_quietly

IDENTIFIER = re.compile(r"[a-z_][a-z0-9_]{0,62}")
SCRAM_ITERATIONS = 4096  # PostgreSQL's default scram_iterations


@dataclass(frozen=True)
class LoginSpec:
    """A login role to ensure: its name, password and the group role it joins."""

    username: str
    password: str
    member_of: str

    def __repr__(self) -> str:
        return f"LoginSpec(username={self.username!r}, member_of={self.member_of!r}, password=[secret])"


@dataclass(frozen=True)
class Login:
    """One application login role and the group role (from the schema) it is a member of."""

    username: str
    member_of: str


#: pgha_app writes and reads under row-level security; pgha_exec reads across organizations. The program
#: makes one secret per login (components/logins.py); whoever applies the schema creates the roles.
DEFAULT_LOGINS = (Login("pgha_app", "application_role"), Login("pgha_exec", "executive_role"))


def login_from_secret(username: str, password: str, logins: Sequence[Login] = DEFAULT_LOGINS) -> LoginSpec:
    """The login a stack's login secret (``{"username", "password"}``) stands for, with its group role.

    For ``pgha migrate --login-secret`` (``schemaRunner: off``): the secret names the user, the schema
    decides the group, so a secret for a user the schema does not know is refused.
    """
    groups = {login.username: login.member_of for login in logins}
    if username not in groups:
        raise ValueError(
            f"the secret's user {username!r} is not one of the stack's logins ({', '.join(sorted(groups))})"
        )
    if not password:
        raise ValueError(f"the secret of {username!r} has an empty password")
    return LoginSpec(username, password, groups[username])


def scram_verifier(password: str, salt: bytes | None = None) -> str:
    """The ``SCRAM-SHA-256$iterations:salt$StoredKey:ServerKey`` form PostgreSQL stores for ``password``."""
    mechanism = scramp.ScramMechanism("SCRAM-SHA-256")
    salt, stored_key, server_key, iterations = mechanism.make_auth_info(
        password, iteration_count=SCRAM_ITERATIONS, salt=salt
    )
    b64 = lambda raw: base64.b64encode(raw).decode()
    return f"SCRAM-SHA-256${iterations}:{b64(salt)}${b64(stored_key)}:{b64(server_key)}"


def _identifier(name: str, what: str) -> str:
    if not IDENTIFIER.fullmatch(name):
        raise ValueError(f"{what} {name!r} is not a plain lower-case SQL identifier")
    return f'"{name}"'


def ensure_logins(
    conn: pg8000.native.Connection, logins: Sequence[LoginSpec], report: Callable[[str], None] = lambda _line: None
) -> list[str]:
    """Create or update each login role (LOGIN, password, membership); return their names.

    Runs in one transaction: either every login is in place or none changed.
    """
    statements = []
    for login in logins:
        role, group = _identifier(login.username, "login"), _identifier(login.member_of, "group role")
        if not login.password:
            raise ValueError(f"login {login.username!r} has an empty password")
        verifier = scram_verifier(login.password)
        statements.append(
            (
                login.username,
                [
                    # CREATE ROLE cannot take a parameter; the verifier is base64 and '$', never a quote
                    f"DO $$BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{login.username}') "
                    f"THEN CREATE ROLE {role} LOGIN; END IF; END$$",
                    # no attribute beyond LOGIN: naming SUPERUSER at all (even NOSUPERUSER) needs a real superuser,
                    # which the RDS master user is not; CREATE ROLE's defaults (NOSUPERUSER, NOCREATEDB, ...) stand
                    f"ALTER ROLE {role} WITH LOGIN PASSWORD '{verifier}'",
                    f"GRANT {group} TO {role}",
                ],
            )
        )
    conn.run("BEGIN")
    try:
        for username, sqls in statements:
            for sql in sqls:
                conn.run(sql)
            report(f"login {username} is in place")
        conn.run("COMMIT")
    except Exception:
        run_quietly(conn, "ROLLBACK")  # on a lost connection, raise what failed, not the ROLLBACK's error
        raise
    return [username for username, _ in statements]
