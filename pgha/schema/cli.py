"""The commands that act on the application schema: ``pgha migrate`` and ``pgha maintain``.

The database options (``--dsn``, ``--secret-arn``) are defined here once; ``pgha drill rds`` takes the same.
pg8000 and the runner are imported inside each command: the other commands never load them.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from pgha.console import console, fail, say
from pgha.schema.migrations import MIGRATIONS_DIR

if TYPE_CHECKING:
    from collections.abc import Callable

    import pg8000.native

    from pgha.schema.logins import LoginSpec
    from pgha.schema.migrate import Timeouts

#: Merged into the root app by :mod:`pgha.cli` (no group name): these are top-level commands.
app = typer.Typer()


DsnOption = Annotated[
    str,
    typer.Option(
        "--dsn",
        envvar="PGHA_DSN",
        help="postgresql://user[:password]@host[:port][,host2...]/db?sslmode=... or libpq key=value. "
        "Without a password in it, --secret-arn supplies one (and its username), else PGPASSWORD. "
        "sslmode: prefer (default: TLS when offered), disable, require, verify-ca, verify-full. "
        "An unknown setting (e.g. a misspelled sslmode) is refused.",
    ),
]
SecretOption = Annotated[
    str | None, typer.Option("--secret-arn", help="Secrets Manager secret with username/password (RDS master).")
]


def _connect(
    dsn: str, secret_arn: str | None, application_name: str
) -> tuple[pg8000.native.Connection, Callable[[], pg8000.native.Connection]]:
    """A connection to the writable host of the DSN (or a clean exit naming why not), and a way to
    open another one to that same host."""
    from dataclasses import replace

    from pgha.connect import ConnectError, connect, connect_pinned, parse_dsn, resolve

    try:
        settings = resolve(replace(parse_dsn(dsn), application_name=application_name), secret_arn)
        conn, pinned = connect_pinned(settings, writable=True)
    except ConnectError as err:
        fail(err, 2)
    return conn, lambda: connect(replace(pinned, application_name=f"{application_name}-watch"))


def _logins(secret_arns: list[str]) -> list[LoginSpec]:
    """The application logins of ``--login-secret`` secrets, or a clean exit naming the secret that is wrong."""
    from pgha.connect import ConnectError, secret_credentials
    from pgha.schema.logins import login_from_secret

    logins = []
    for arn in secret_arns:
        try:
            logins.append(login_from_secret(*secret_credentials(arn)))
        except (ConnectError, ValueError) as err:
            fail(f"--login-secret {arn}: {err}", 2)
    return logins


def _seconds(option: str, value: str | None) -> float | None:
    """A timeout option's seconds (:func:`pgha.schema.migrate.parse_timeout`), or exit 2 naming the option
    before anything connects."""
    from pgha.schema.migrate import parse_timeout

    try:
        return parse_timeout(value, option)
    except ValueError as err:
        fail(err, 2)


StatementTimeoutOption = Annotated[
    str | None,
    typer.Option("--statement-timeout", help="Cancel any statement running longer (e.g. 10min); default: no limit."),
]
LockTimeoutOption = Annotated[
    str,
    typer.Option(
        "--lock-timeout",
        help="Give up waiting for a lock after this long (default 5s) instead of "
        "queueing behind a long transaction and blocking traffic; 'none' waits forever.",
    ),
]


def _timeouts(statement_timeout: str | None, lock_timeout: str) -> Timeouts:
    """The session limits the timeout options ask for, or exit 2 naming the option that is wrong."""
    from pgha.schema.migrate import Timeouts

    return Timeouts(
        statement=_seconds("--statement-timeout", statement_timeout), lock=_seconds("--lock-timeout", lock_timeout)
    )


@app.command()
def migrate(
    dsn: DsnOption,
    secret_arn: SecretOption = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="List pending migrations; apply nothing.")] = False,
    migrations: Annotated[
        Path, typer.Option(help="Directory of NNNN_name.sql files.", exists=True, file_okay=False)
    ] = MIGRATIONS_DIR,
    statement_timeout: StatementTimeoutOption = None,
    lock_timeout: LockTimeoutOption = "5s",
    login_secrets: Annotated[
        list[str] | None,
        typer.Option(
            "--login-secret",
            help="After the migrations, create or update the application login of this "
            "Secrets Manager secret (the stack's appSecretArns; repeat for each), as the schema hook does. "
            "For schemaRunner: off.",
        ),
    ] = None,
) -> None:
    """Apply the schema migrations (schema/migrations) to the database, each exactly once."""
    from pgha.connect import QUERY_ERRORS, close_quietly
    from pgha.schema.logins import ensure_logins
    from pgha.schema.migrate import MigrationError, error_text
    from pgha.schema.migrate import migrate as run_migrations
    from pgha.schema.migrations import MigrationFileError, discover

    timeouts = _timeouts(statement_timeout, lock_timeout)
    try:
        discover(migrations)  # a file that cannot be read stops the run before it connects
    except MigrationFileError as err:
        fail(err, 1)
    logins = _logins(login_secrets or [])  # read first: a wrong secret stops the run before anything is applied
    conn, observer = _connect(dsn, secret_arn, "pgha-migrate")
    try:
        result = run_migrations(conn, migrations, dry_run=dry_run, report=say, timeouts=timeouts, observer=observer)
        if logins and not dry_run:  # after the migrations: they create the group roles the logins join
            ensure_logins(conn, logins, report=say)
    except (MigrationError, MigrationFileError) as err:
        fail(err, 1)
    except QUERY_ERRORS as err:  # the runner wraps these; a backstop so the user never sees a traceback
        fail(f"pgha migrate failed: {error_text(err)}", 1)
    finally:
        close_quietly(conn)  # a lost connection is the error above, not a second one from close()
    if dry_run:
        console.print(f"{len(result.pending)} pending, {len(result.already_applied)} applied")
        for name in result.pending:
            say(f"  pending: {name}")
        for login in logins:
            say(f"  login to create or update: {login.username} (member of {login.member_of})")
    elif result.applied:
        console.print(f"applied {len(result.applied)} migration(s); schema hash {result.hash[:12]}")
    else:
        console.print(f"nothing to do: all {len(result.already_applied)} migrations applied")


@app.command()
def maintain(
    dsn: DsnOption,
    secret_arn: SecretOption = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="List what would run.")] = False,
    statement_timeout: StatementTimeoutOption = None,
    lock_timeout: LockTimeoutOption = "5s",
) -> None:
    """ANALYZE tables with many changes and VACUUM tables with many dead tuples."""
    from pgha.connect import QUERY_ERRORS, close_quietly
    from pgha.schema.maintain import run_maintenance
    from pgha.schema.migrate import error_text

    timeouts = _timeouts(statement_timeout, lock_timeout)
    conn, _observer = _connect(dsn, secret_arn, "pgha-maintain")
    try:
        result = run_maintenance(conn, dry_run=dry_run, report=say, timeouts=timeouts)
    except QUERY_ERRORS as err:  # a server error, or the connection lost
        fail(f"pgha maintain failed: {error_text(err)}".replace("\n", " "), 1)
    finally:
        close_quietly(conn)  # after a lost connection, close() would raise a second error
    if not result.actions:
        console.print("nothing needs maintenance")
    if result.skipped:
        fail(f"{len(result.skipped)} table(s) skipped: their locks were not granted in time; run again later", 1)
