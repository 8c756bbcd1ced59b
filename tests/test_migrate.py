"""The migration runner against a real PostgreSQL: once, in order, serialized, all or nothing."""

from __future__ import annotations

import json
import select
import shutil
import socket
import struct
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import replace
from pathlib import Path

import boto3
import pg8000.native
import pytest
from moto.server import ThreadedMotoServer

from pgha.ci.harness import PROJECT_DIR
from pgha.connect import ConnectionSettings, close_quietly, connect
from pgha.local import PostgresServer, free_port
from pgha.schema.migrate import MAX_TIMEOUT_MS, MigrationError, Timeouts, migrate
from pgha.schema.migrations import (
    MIGRATIONS_DIR,
    MigrationFileError,
    discover,
    split_statements,
    transaction_control,
)

ALL = [m.name for m in discover()]


def dsn(settings: ConnectionSettings, with_password: bool = True) -> str:
    host, port = settings.hosts[0]
    auth = f"{settings.user}:{settings.password}" if with_password else settings.user
    return f"postgresql://{auth}@{host}:{port}/{settings.database}?sslmode=disable"


def pgha(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pgha", *args], cwd=PROJECT_DIR, capture_output=True, text=True, timeout=120, env=env
    )


def recorded(settings: ConnectionSettings) -> list[str]:
    conn = connect(settings)
    try:
        return [row[0] for row in conn.run("SELECT name FROM pgha_schema_migrations ORDER BY name")]
    finally:
        conn.close()


def migrations_dir(tmp_path: Path, files: dict[str, str]) -> Path:
    """A migrations directory holding ``name -> SQL``: a scenario the shipped migrations do not cover."""
    directory = tmp_path / "migrations"
    directory.mkdir()
    for name, sql in files.items():
        (directory / name).write_text(sql)
    return directory


def copy_migrations(tmp_path: Path, names: list[str]) -> Path:
    target = tmp_path / "migrations"
    target.mkdir()
    for name in names:
        shutil.copy(MIGRATIONS_DIR / name, target / name)
    return target


def test_apply_on_empty_database_then_rerun_is_a_noop(fresh_db: ConnectionSettings) -> None:
    conn = connect(fresh_db)
    first = migrate(conn)
    assert first.applied == ALL
    next_xid_before = conn.run("SELECT pg_snapshot_xmax(pg_current_snapshot())::text")[0][0]
    second = migrate(conn)
    next_xid_after = conn.run("SELECT pg_snapshot_xmax(pg_current_snapshot())::text")[0][0]
    conn.close()
    assert second.applied == [] and second.already_applied == ALL
    assert next_xid_after == next_xid_before, "a run with nothing pending wrote something"
    assert recorded(fresh_db) == ALL


def test_tracking_row_has_checksum_and_duration(fresh_db: ConnectionSettings) -> None:
    conn = connect(fresh_db)
    migrate(conn)
    rows = conn.run("SELECT name, checksum, applied_at IS NOT NULL, duration_ms FROM pgha_schema_migrations")
    conn.close()
    by_name = {m.name: m.checksum for m in discover()}
    assert len(rows) == len(ALL)
    for name, checksum, has_time, duration in rows:
        assert by_name[name] == checksum and has_time and duration >= 0


def test_dry_run_lists_pending_and_creates_nothing(fresh_db: ConnectionSettings) -> None:
    result = pgha("migrate", "--dsn", dsn(fresh_db), "--dry-run")
    assert result.returncode == 0, result.stderr
    assert f"{len(ALL)} pending, 0 applied" in result.stdout
    for name in ALL:
        assert f"pending: {name}" in result.stdout
    conn = connect(fresh_db)
    assert conn.run("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")[0][0] == 0
    conn.close()


def test_cli_applies_then_reports_nothing_to_do(fresh_db: ConnectionSettings) -> None:
    env = {"PGPASSWORD": fresh_db.password or "", "PATH": "/usr/bin:/bin"}
    first = pgha("migrate", "--dsn", dsn(fresh_db, with_password=False), env=env)
    assert first.returncode == 0, first.stderr
    assert f"applied {len(ALL)} migration(s)" in first.stdout
    assert fresh_db.password not in first.stdout + first.stderr
    second = pgha("migrate", "--dsn", dsn(fresh_db, with_password=False), env=env)
    assert second.returncode == 0 and "nothing to do" in second.stdout


def test_cli_login_secrets_create_the_application_logins_after_the_migrations(fresh_db: ConnectionSettings) -> None:
    """schemaRunner: off leaves the stack's login secrets to `pgha migrate --login-secret`: the same roles the
    schema hook makes, after the migrations that create their groups; a secret for a user the schema does not
    know stops the run before anything is applied. Secrets Manager is moto's server on loopback."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=(port := free_port()), verbose=False)
    server.start()
    try:
        aws = {
            "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}",
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "eu-west-1",
        }
        secrets = boto3.client(
            "secretsmanager",
            endpoint_url=aws["AWS_ENDPOINT_URL"],
            region_name="eu-west-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
        password = f"app-{uuid.uuid4().hex}"
        app = secrets.create_secret(
            Name="app", SecretString=json.dumps({"username": "pgha_app", "password": password})
        )["ARN"]
        stranger = secrets.create_secret(
            Name="stranger", SecretString=json.dumps({"username": "mallory", "password": "pw"})
        )["ARN"]
        env = {"PATH": "/usr/bin:/bin", **aws}

        refused = pgha("migrate", "--dsn", dsn(fresh_db), "--login-secret", app, "--login-secret", stranger, env=env)
        assert refused.returncode == 2, refused.stdout + refused.stderr
        assert "'mallory' is not one of the stack's logins (pgha_app, pgha_exec)" in refused.stderr
        conn = connect(fresh_db)
        try:
            assert conn.run("SELECT to_regclass('pgha_schema_migrations')")[0][0] is None, "nothing may run"
        finally:
            conn.close()

        done = pgha("migrate", "--dsn", dsn(fresh_db), "--login-secret", app, env=env)
        assert done.returncode == 0, done.stderr
        assert "login pgha_app is in place" in done.stdout and password not in done.stdout + done.stderr
        assert recorded(fresh_db) == ALL
        as_app = connect(replace(fresh_db, user="pgha_app", password=password))
        try:
            assert as_app.run("SELECT pg_has_role('pgha_app', 'application_role', 'member')")[0][0] is True
        finally:
            as_app.close()
    finally:
        server.stop()


def test_concurrent_runs_serialize_and_apply_each_migration_once(fresh_db: ConnectionSettings) -> None:
    results: list[object] = []

    def run() -> None:
        conn = connect(fresh_db)
        try:
            results.append(migrate(conn))
        except Exception as err:  # collected and asserted below
            results.append(err)
        finally:
            conn.close()

    threads = [threading.Thread(target=run) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert all(not isinstance(r, Exception) for r in results), results
    applied = sorted(name for r in results for name in r.applied)
    assert applied == ALL, "every migration applied exactly once across the runs"
    assert recorded(fresh_db) == ALL


def test_failed_migration_leaves_nothing_and_names_the_file(fresh_db: ConnectionSettings, tmp_path: Path) -> None:
    directory = copy_migrations(tmp_path, ALL[:2])
    (directory / "0003_broken.sql").write_text(
        "CREATE TABLE half_done (id int);\nINSERT INTO half_done VALUES (1);\nSELECT 1 / 0;\n"
    )
    (directory / "0004_after.sql").write_text("CREATE TABLE never_reached (id int);\n")
    conn = connect(fresh_db)
    with pytest.raises(MigrationError, match=r"(?s)0003_broken\.sql failed and was rolled back.*division by zero"):
        migrate(conn, directory)
    tables = {r[0] for r in conn.run("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
    conn.close()
    assert "half_done" not in tables and "never_reached" not in tables
    assert recorded(fresh_db) == ALL[:2]


def test_failed_migration_exits_nonzero_from_the_cli(fresh_db: ConnectionSettings, tmp_path: Path) -> None:
    bad = copy_migrations(tmp_path, ALL[:1])
    (bad / "0002_typo.sql").write_text("CREATE TABLE ok_table (id int);\nCREAT TABLE typo (id int);\n")
    result = pgha("migrate", "--dsn", dsn(fresh_db), "--migrations", str(bad))
    assert result.returncode == 1
    assert "0002_typo.sql" in result.stderr and "syntax error" in result.stderr
    assert "Traceback" not in result.stderr


def test_changed_applied_migration_is_refused(fresh_db: ConnectionSettings, tmp_path: Path) -> None:
    directory = copy_migrations(tmp_path, ALL[:2])
    conn = connect(fresh_db)
    migrate(conn, directory)
    (directory / ALL[1]).write_text((directory / ALL[1]).read_text() + "\n-- edited after applying\n")
    (directory / "0003_new.sql").write_text("CREATE TABLE brand_new (id int);\n")
    with pytest.raises(MigrationError, match=ALL[1]):
        migrate(conn, directory)
    assert conn.run("SELECT to_regclass('brand_new') IS NULL")[0][0], "nothing may be applied"
    conn.close()
    assert recorded(fresh_db) == ALL[:2]


def test_renamed_applied_migration_is_refused_as_a_rename(fresh_db: ConnectionSettings, tmp_path: Path) -> None:
    directory = copy_migrations(tmp_path, ALL[:3])
    conn = connect(fresh_db)
    migrate(conn, directory)
    assert ALL[2] == "0003_activity_logs.sql"
    (directory / ALL[2]).rename(directory / "0003_activity_log.sql")
    (directory / "0004_new.sql").write_text("CREATE TABLE brand_new (id int);\n")
    rename = r"(?s)0003_activity_logs\.sql.*looks like a rename of it to 0003_activity_log\.sql"
    with pytest.raises(MigrationError, match=rename):
        migrate(conn, directory)
    with pytest.raises(MigrationError, match=rename):
        migrate(conn, directory, dry_run=True)
    assert conn.run("SELECT to_regclass('brand_new') IS NULL")[0][0], "nothing may be applied"
    conn.close()
    assert recorded(fresh_db) == ALL[:3]
    dry = pgha("migrate", "--dsn", dsn(fresh_db), "--migrations", str(directory), "--dry-run")
    assert dry.returncode == 1, dry.stdout + dry.stderr
    assert "0003_activity_logs.sql" in dry.stderr and "rename" in dry.stderr
    assert "Traceback" not in dry.stderr


def test_deleted_applied_migration_is_refused_until_its_removal_is_recorded(
    fresh_db: ConnectionSettings, tmp_path: Path
) -> None:
    directory = copy_migrations(tmp_path, ALL[:3])
    conn = connect(fresh_db)
    migrate(conn, directory)
    (directory / ALL[1]).unlink()
    (directory / ALL[2]).unlink()
    (directory / "0004_new.sql").write_text("CREATE TABLE brand_new (id int);\n")
    with pytest.raises(MigrationError, match=f"no file any more: {ALL[1]}, {ALL[2]}") as caught:
        migrate(conn, directory, dry_run=True)
    assert "looks like a rename" not in str(caught.value)
    with pytest.raises(MigrationError, match=ALL[1]):
        migrate(conn, directory)
    assert conn.run("SELECT to_regclass('brand_new') IS NULL")[0][0], "nothing may be applied"
    # the deliberate removal docs/schema.md describes: delete the tracking rows by hand
    conn.run("DELETE FROM pgha_schema_migrations WHERE name IN (:a, :b)", a=ALL[1], b=ALL[2])
    assert migrate(conn, directory).applied == ["0004_new.sql"]
    conn.close()


def test_pending_migration_numbered_below_an_applied_one_is_refused(
    fresh_db: ConnectionSettings, tmp_path: Path
) -> None:
    # two branches each added a migration; the one numbered lower arrives after the other was applied
    directory = migrations_dir(
        tmp_path,
        {
            "0001_base.sql": "CREATE TABLE base (id int);\n",
            "0003_theirs.sql": "CREATE TABLE theirs (id int);\n",
        },
    )
    conn = connect(fresh_db)
    migrate(conn, directory)
    (directory / "0002_ours.sql").write_text("CREATE TABLE ours (id int);\n")
    behind = r"(?s)numbered below 0003_theirs\.sql, which is already applied: 0002_ours\.sql.*above 0003"
    with pytest.raises(MigrationError, match=behind):
        migrate(conn, directory, dry_run=True)
    with pytest.raises(MigrationError, match=behind):
        migrate(conn, directory)
    conn.close()
    assert recorded(fresh_db) == ["0001_base.sql", "0003_theirs.sql"]
    result = pgha("migrate", "--dsn", dsn(fresh_db), "--migrations", str(directory))
    assert result.returncode == 1 and "0002_ours.sql" in result.stderr and "Traceback" not in result.stderr
    (directory / "0002_ours.sql").rename(directory / "0004_ours.sql")
    conn = connect(fresh_db)
    assert migrate(conn, directory).applied == ["0004_ours.sql"]
    conn.close()


def test_what_a_migration_sets_for_its_session_does_not_reach_the_next(
    fresh_db: ConnectionSettings, tmp_path: Path
) -> None:
    role = f"pgha_test_{uuid.uuid4().hex[:8]}"
    directory = migrations_dir(
        tmp_path,
        {
            "0001_audit.sql": (
                "CREATE SCHEMA audit;\nSET search_path = audit, public;\nCREATE TABLE audit_events (id int);\n"
                f"CREATE ROLE {role} NOLOGIN;\nGRANT CREATE ON SCHEMA public TO {role};\nSET ROLE {role};\n"
            ),
            "0002_things.sql": "CREATE TABLE things (id int);\n",
        },
    )
    conn = connect(fresh_db)
    try:
        migrate(conn, directory)
        placed = conn.run("SELECT schemaname, tableowner FROM pg_tables WHERE tablename = 'things'")
        assert placed == [["public", fresh_db.user]], "0002 ran with 0001's search_path or role"
        assert conn.run("SELECT schemaname FROM pg_tables WHERE tablename = 'audit_events'") == [["audit"]]
    finally:
        conn.run("DROP SCHEMA IF EXISTS audit CASCADE")
        conn.run(f"DROP OWNED BY {role}")
        conn.run(f"DROP ROLE IF EXISTS {role}")
        conn.close()


def test_non_transactional_migration_runs_statement_by_statement(fresh_db: ConnectionSettings, tmp_path: Path) -> None:
    directory = copy_migrations(tmp_path, ALL[:2])
    (directory / "0003_concurrent.sql").write_text(
        "-- pgha:no-transaction\nCREATE INDEX CONCURRENTLY IF NOT EXISTS a_idx ON users (last_login);\n"
        "CREATE INDEX CONCURRENTLY IF NOT EXISTS b_idx ON projects (updated_at);\n"
    )
    conn = connect(fresh_db)
    result = migrate(conn, directory)
    assert "0003_concurrent.sql" in result.applied
    valid = dict(
        conn.run(
            "SELECT indexrelid::regclass::text, indisvalid FROM pg_index "
            "WHERE indexrelid::regclass::text IN ('a_idx', 'b_idx')"
        )
    )
    conn.close()
    assert valid == {"a_idx": True, "b_idx": True}


def test_failed_non_transactional_migration_is_not_recorded_and_reruns(
    fresh_db: ConnectionSettings, tmp_path: Path
) -> None:
    directory = copy_migrations(tmp_path, ALL[:2])
    path = directory / "0003_concurrent.sql"
    path.write_text(
        "-- pgha:no-transaction\nCREATE INDEX CONCURRENTLY IF NOT EXISTS a_idx ON users (last_login);\n"
        "CREATE INDEX CONCURRENTLY IF NOT EXISTS b_idx ON no_such_table (x);\n"
    )
    conn = connect(fresh_db)
    with pytest.raises(MigrationError, match=r"0003_concurrent\.sql \(non-transactional\) failed at statement 2"):
        migrate(conn, directory)
    assert recorded(fresh_db) == ALL[:2]
    path.write_text(path.read_text().replace("no_such_table (x)", "projects (updated_at)"))
    assert migrate(conn, directory).applied == ["0003_concurrent.sql"]
    conn.close()


def test_badly_named_or_duplicate_files_are_refused(tmp_path: Path) -> None:
    (tmp_path / "0001_a.sql").write_text("SELECT 1;")
    (tmp_path / "0001_b.sql").write_text("SELECT 1;")
    with pytest.raises(MigrationFileError, match="share the number 0001"):
        discover(tmp_path)
    (tmp_path / "0001_b.sql").unlink()
    (tmp_path / "2-bad.sql").write_text("SELECT 1;")
    with pytest.raises(MigrationFileError, match=r"NNNN_lowercase_name\.sql"):
        discover(tmp_path)
    (tmp_path / "2-bad.sql").unlink()
    (tmp_path / "000\u0662_b.sql").write_text("SELECT 1;")  # 0002 with an Arabic-Indic two: another spelling
    with pytest.raises(MigrationFileError, match=r"NNNN_lowercase_name\.sql"):
        discover(tmp_path)
    (tmp_path / "000\u0662_b.sql").unlink()
    (tmp_path / "0002_latin1.sql").write_bytes("SELECT 'caf\u00e9';".encode("latin-1"))
    with pytest.raises(MigrationFileError, match=r"0002_latin1\.sql is not UTF-8 text \(byte 0xe9 at offset 11\)"):
        discover(tmp_path)
    (tmp_path / "0002_latin1.sql").unlink()
    (tmp_path / "0002_folder.sql").mkdir()
    with pytest.raises(MigrationFileError, match=r"0002_folder\.sql is not a file"):
        discover(tmp_path)


def test_a_migration_file_that_is_not_utf8_is_one_error_line_from_the_cli(tmp_path: Path) -> None:
    (tmp_path / "0001_latin1.sql").write_bytes("SELECT 'caf\u00e9';".encode("latin-1"))
    result = pgha(
        "migrate", "--dsn", "postgresql://nobody@127.0.0.1:9/none", "--migrations", str(tmp_path), "--dry-run"
    )
    assert result.returncode == 1 and "0001_latin1.sql is not UTF-8 text" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr


def test_a_timeout_is_written_in_ascii_digits() -> None:
    import typer

    from pgha.schema.cli import _seconds

    assert _seconds("--lock-timeout", "500ms") == 0.5
    for value in ("\uff15s", "\u0665"):  # 5 full-width, 5 Arabic-Indic: float() would take both
        with pytest.raises(typer.Exit):
            _seconds("--lock-timeout", value)


def test_statement_splitting_respects_dollar_quotes_and_comments() -> None:
    sql = (
        "-- pgha:no-transaction\nCREATE FUNCTION f() RETURNS int LANGUAGE plpgsql AS $$ BEGIN RETURN 1; END $$;\n"
        "-- a comment; with a semicolon\nSELECT ';';\n"
    )
    statements = split_statements(sql)
    assert len(statements) == 2
    assert statements[0].endswith("END $$;") and statements[1].endswith("SELECT ';';")


def test_password_never_printed_on_connection_failure() -> None:
    result = pgha("migrate", "--dsn", "postgresql://u:SuperSecret123@127.0.0.1:1/db?sslmode=disable")
    assert result.returncode == 2
    assert "cannot connect" in result.stderr
    assert "SuperSecret123" not in result.stderr + result.stdout


def test_a_misspelled_dsn_setting_is_refused_before_connecting(fresh_db: ConnectionSettings) -> None:
    """sslmdoe=verify-full was ignored: the run connected with sslmode=prefer, verifying nothing."""
    result = pgha("migrate", "--dsn", dsn(fresh_db) + "&sslmdoe=verify-full", "--dry-run")
    assert result.returncode == 2, result.stdout
    assert "unknown DSN setting 'sslmdoe'" in result.stderr and "pending" not in result.stdout
    assert fresh_db.password not in result.stderr + result.stdout


@pytest.mark.parametrize(
    ("option", "value", "problem"),
    [
        ("--statement-timeout", "0.0004", "is below 1 ms, the smallest timeout PostgreSQL keeps"),
        ("--lock-timeout", "0.5ms", "is below 1 ms"),
        ("--lock-timeout", "99999999999min", "exceeds PostgreSQL's maximum, 2147483647 ms"),
        ("--statement-timeout", "2147483648ms", "exceeds PostgreSQL's maximum"),
    ],
)
def test_a_timeout_postgresql_would_take_as_no_limit_or_refuse_is_refused_up_front(
    fresh_db: ConnectionSettings, option: str, value: str, problem: str
) -> None:
    """0.0004 s became "0ms", which PostgreSQL takes as no limit: the run went ahead with none. 99999999999min
    failed only once connected with a migration pending, and passed silently when nothing was."""
    for command in ("migrate", "maintain"):
        result = pgha(command, "--dsn", dsn(fresh_db), option, value)
        assert result.returncode == 2, result.stdout + result.stderr
        assert result.stderr.strip().count("\n") == 0 and f"error: {option} {value!r} {problem}" in result.stderr
    conn = connect(fresh_db)
    assert conn.run("SELECT to_regclass('pgha_schema_migrations') IS NULL")[0][0], "nothing was applied"
    conn.close()


def test_timeouts_take_postgresqls_whole_range_and_refuse_what_is_outside(fresh_db: ConnectionSettings) -> None:
    conn = connect(fresh_db)
    try:
        Timeouts(statement=MAX_TIMEOUT_MS / 1000, lock=0.001).apply(conn)
        assert conn.run("SHOW lock_timeout") == [["1ms"]]
        assert conn.run("SELECT setting::bigint FROM pg_settings WHERE name = 'statement_timeout'") == [
            [MAX_TIMEOUT_MS]
        ]
    finally:
        conn.close()
    with pytest.raises(ValueError, match=r"statement timeout 0.0004 s is below 1 ms"):
        Timeouts(statement=0.0004)
    with pytest.raises(ValueError, match=r"lock timeout 2147483.648 s exceeds PostgreSQL's maximum"):
        Timeouts(lock=(MAX_TIMEOUT_MS + 1) / 1000)
    with pytest.raises(ValueError, match="lock timeout nan s must be a finite number"):
        Timeouts(lock=float("nan"))


def public_tables(conn: pg8000.native.Connection) -> set[str]:
    return {r[0] for r in conn.run("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}


def test_transaction_control_statements_are_found_and_bodies_are_not() -> None:
    refused = (
        "BEGIN;",
        "begin transaction isolation level serializable;",
        "START TRANSACTION;",
        "COMMIT;",
        "commit and chain;",
        "END;",
        "END TRANSACTION;",
        "ROLLBACK;",
        "ROLLBACK AND CHAIN;",
        "ABORT;",
        "PREPARE TRANSACTION 'x';",
        "COMMIT PREPARED 'x';",
        "ROLLBACK PREPARED 'x';",
        "-- leading comment\nCOMMIT;",
        "/* block; comment */ COMMIT;",
    )
    for statement in refused:
        assert [c.statement for c in transaction_control(f"SELECT 1;\n{statement}\n")], statement
    allowed = (
        "SAVEPOINT s;",
        "RELEASE SAVEPOINT s;",
        "RELEASE s;",
        "ROLLBACK TO SAVEPOINT s;",
        "ROLLBACK TO s;",
        "ROLLBACK WORK TO s;",
        "PREPARE transaction AS SELECT 1;",
        "SELECT 'BEGIN; COMMIT;';",
        "-- BEGIN;\nSELECT 1;",
        "/* COMMIT; */ SELECT 1;",
        "DO $$ BEGIN PERFORM 1; END $$;",
        "CREATE FUNCTION f() RETURNS int LANGUAGE plpgsql AS $f$ BEGIN RETURN 1; END $f$;",
        "CREATE FUNCTION g() RETURNS int LANGUAGE plpgsql AS 'BEGIN RETURN 1; END;';",
        "CREATE FUNCTION h() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT 1; END;",
    )
    for statement in allowed:
        assert transaction_control(f"SELECT 1;\n{statement}\n") == [], statement
    found = transaction_control("-- header\nBEGIN;\nCREATE TABLE a (id int);\nCOMMIT;\n")
    assert [(c.line, c.statement) for c in found] == [(2, "BEGIN;"), (4, "COMMIT;")]


def test_transactional_migration_with_its_own_commit_is_refused_before_anything_runs(
    fresh_db: ConnectionSettings, tmp_path: Path
) -> None:
    directory = copy_migrations(tmp_path, ALL[:1])
    conn = connect(fresh_db)
    migrate(conn, directory)
    before = public_tables(conn)
    (directory / "0002_first_pending.sql").write_text("CREATE TABLE first_pending (id int);\n")
    (directory / "0003_own_transaction.sql").write_text(
        "-- accounts\nBEGIN;\nCREATE TABLE accounts (id int PRIMARY KEY);\nCOMMIT;\n"
        "CREATE TABLE broken (account int REFERENCES no_such_table);\n"
    )
    refused = (
        r"(?s)nothing was applied.*0003_own_transaction\.sql line 2: BEGIN;\n"
        r"  0003_own_transaction\.sql line 4: COMMIT;\n.*pgha:no-transaction"
    )
    with pytest.raises(MigrationError, match=refused):
        migrate(conn, directory, dry_run=True)
    with pytest.raises(MigrationError, match=refused):
        migrate(conn, directory)
    assert public_tables(conn) == before, "nothing of any pending file may run"
    conn.close()
    assert recorded(fresh_db) == ALL[:1]
    result = pgha("migrate", "--dsn", dsn(fresh_db), "--migrations", str(directory))
    assert result.returncode == 1, result.stdout + result.stderr
    assert "0003_own_transaction.sql line 2: BEGIN;" in result.stderr and "Traceback" not in result.stderr
    assert recorded(fresh_db) == ALL[:1]


def test_plpgsql_bodies_do_blocks_and_savepoints_are_applied(fresh_db: ConnectionSettings, tmp_path: Path) -> None:
    directory = migrations_dir(
        tmp_path,
        {
            "0001_bodies.sql": (
                "CREATE FUNCTION answer() RETURNS int LANGUAGE plpgsql AS $$\nBEGIN\n  RETURN 42;\nEND\n$$;\n"
                "CREATE FUNCTION quoted() RETURNS text LANGUAGE plpgsql AS 'BEGIN RETURN ''COMMIT;''; END;';\n"
                "DO $$\nBEGIN\n  EXECUTE 'CREATE TABLE made_by_do (id int)';\nEND\n$$;\n"
                "DO $body$ BEGIN PERFORM 1; END $body$;\n"
                "-- BEGIN; in a comment\nSELECT 'ROLLBACK;';\n"
                "SAVEPOINT s;\nCREATE TABLE kept_after_savepoint (id int);\nRELEASE SAVEPOINT s;\n"
            ),
            "0002_outside.sql": "-- pgha:no-transaction\nBEGIN;\nCREATE TABLE in_own_transaction (id int);\nCOMMIT;\n",
        },
    )
    conn = connect(fresh_db)
    assert migrate(conn, directory).applied == ["0001_bodies.sql", "0002_outside.sql"]
    assert conn.run("SELECT answer(), quoted()") == [[42, "COMMIT;"]]
    assert {"made_by_do", "kept_after_savepoint", "in_own_transaction"} <= public_tables(conn)
    conn.close()


def test_login_without_create_on_public_fails_naming_the_step(
    postgres: PostgresServer, fresh_db: ConnectionSettings, tmp_path: Path
) -> None:
    directory = migrations_dir(tmp_path, {"0001_t.sql": "CREATE TABLE t (id int);\n"})
    role, password = f"r_{uuid.uuid4().hex[:12]}", uuid.uuid4().hex
    admin = connect(fresh_db)
    admin.run(f"CREATE ROLE {role} LOGIN PASSWORD '{password}'")
    admin.run("REVOKE CREATE ON SCHEMA public FROM PUBLIC")  # the default before PostgreSQL 15
    try:
        login = postgres.settings(fresh_db.database, user=role, password=password)
        conn = connect(login)
        with pytest.raises(
            MigrationError,
            match=r"(?s)creating the tracking table public\.pgha_schema_migrations "
            r"failed; no migration was applied.*SQLSTATE 42501",
        ):
            migrate(conn, directory)
        conn.close()
        result = pgha("migrate", "--dsn", dsn(login), "--migrations", str(directory))
        assert result.returncode == 1, result.stdout + result.stderr
        assert "creating the tracking table" in result.stderr and "permission denied for schema public" in result.stderr
        assert "Traceback" not in result.stderr
        migrate(admin, tmp_path / "migrations")  # now the table exists, owned by the admin and not readable
        (directory / "0002_u.sql").write_text("CREATE TABLE u (id int);\n")
        result = pgha("migrate", "--dsn", dsn(login), "--migrations", str(directory), "--dry-run")
        assert result.returncode == 1, result.stdout + result.stderr
        assert "reading the applied migrations from public.pgha_schema_migrations failed" in result.stderr
        assert "42501" in result.stderr and "Traceback" not in result.stderr
    finally:
        admin.run(f"DROP OWNED BY {role}")
        admin.close()
        other = connect(postgres.settings("postgres"))
        other.run(f"DROP ROLE {role}")
        other.close()


def test_connection_lost_mid_migration_is_a_clear_error_and_leaves_nothing(
    fresh_db: ConnectionSettings, tmp_path: Path
) -> None:
    directory = migrations_dir(
        tmp_path,
        {
            "0001_ok.sql": "CREATE TABLE kept (id int);\n",
            "0002_killed.sql": "CREATE TABLE half_done (id int);\nSELECT pg_terminate_backend(pg_backend_pid());\n",
            "0003_after.sql": "CREATE TABLE never_reached (id int);\n",
        },
    )
    conn = connect(fresh_db)
    with pytest.raises(
        MigrationError,
        match=r"(?s)0002_killed\.sql was interrupted and not committed.*"
        r"nothing of it remains.*connection to the server was lost",
    ):
        migrate(conn, directory)
    close_quietly(conn)
    check = connect(fresh_db)
    tables = public_tables(check)
    check.close()
    assert "kept" in tables and "half_done" not in tables and "never_reached" not in tables
    assert recorded(fresh_db) == ["0001_ok.sql"]
    result = pgha("migrate", "--dsn", dsn(fresh_db), "--migrations", str(directory))
    assert result.returncode == 1, result.stdout + result.stderr
    assert "0002_killed.sql was interrupted" in result.stderr and "Traceback" not in result.stderr
    assert recorded(fresh_db) == ["0001_ok.sql"]


def test_connection_lost_during_commit_says_the_outcome_is_unknown_and_a_rerun_settles_it(
    fresh_db: ConnectionSettings, tmp_path: Path
) -> None:
    # A deferred constraint trigger runs inside COMMIT: terminating its own backend there loses the
    # connection after COMMIT was sent, which a client cannot tell from a lost commit acknowledgement.
    directory = migrations_dir(
        tmp_path,
        {
            "0001_dies_at_commit.sql": (
                "CREATE TABLE settled (id int);\n"
                "CREATE FUNCTION end_my_backend() RETURNS trigger LANGUAGE plpgsql AS $$\n"
                "BEGIN PERFORM pg_terminate_backend(pg_backend_pid()); RETURN NULL; END $$;\n"
                "CREATE CONSTRAINT TRIGGER at_commit AFTER INSERT ON settled DEFERRABLE INITIALLY DEFERRED\n"
                "  FOR EACH ROW EXECUTE FUNCTION end_my_backend();\n"
                "INSERT INTO settled VALUES (1);\n"
            )
        },
    )
    migration = directory / "0001_dies_at_commit.sql"
    result = pgha("migrate", "--dsn", dsn(fresh_db), "--migrations", str(directory))
    assert result.returncode == 1, result.stdout + result.stderr
    assert "0001_dies_at_commit.sql was interrupted while committing: whether it committed is unknown" in (
        result.stderr
    ), result.stderr
    assert "Traceback" not in result.stderr
    check = connect(fresh_db)
    tables = public_tables(check)
    check.close()
    assert "settled" not in tables and recorded(fresh_db) == []  # the server aborted it: it had not committed
    migration.write_text(migration.read_text().replace("INSERT INTO settled VALUES (1);\n", ""))
    rerun = pgha("migrate", "--dsn", dsn(fresh_db), "--migrations", str(directory))
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert recorded(fresh_db) == ["0001_dies_at_commit.sql"]


class ResettingProxy:
    """A loopback TCP proxy that resets (RST) the client's connection right after forwarding a query that
    contains ``marker``: the server is then busy with it, and the client learns of the loss while it
    waits for the reply, as when a load balancer or a failover drops a connection."""

    def __init__(self, target: tuple[str, int], marker: bytes):
        self.target, self.marker = target, marker
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.create_connection(self.target)
            threading.Thread(target=self._relay, args=(client, server), daemon=True).start()

    def _relay(self, client: socket.socket, server: socket.socket) -> None:
        peers = {client: server, server: client}
        with client, server:
            while True:
                for sock in select.select(list(peers), [], [])[0]:
                    data = sock.recv(65536)
                    if not data:
                        return
                    peers[sock].sendall(data)
                    if sock is client and self.marker in data:
                        client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                        return

    def close(self) -> None:
        self.listener.close()


def test_a_connection_reset_mid_migration_is_a_clear_error_and_leaves_nothing(
    fresh_db: ConnectionSettings, tmp_path: Path
) -> None:
    directory = migrations_dir(
        tmp_path,
        {
            "0001_reset.sql": "CREATE TABLE reset_midway (id int);\nSELECT pg_sleep(0.5);\n",
        },
    )
    proxy = ResettingProxy(fresh_db.hosts[0], marker=b"pg_sleep")
    try:
        via_proxy = replace(fresh_db, hosts=[("127.0.0.1", proxy.port)])
        result = pgha("migrate", "--dsn", dsn(via_proxy), "--migrations", str(directory))
    finally:
        proxy.close()
    assert result.returncode == 1, result.stdout + result.stderr
    assert "0001_reset.sql was interrupted and not committed" in result.stderr, result.stderr
    assert "the connection to the server was lost" in result.stderr and "Traceback" not in result.stderr
    check = connect(fresh_db)
    try:  # the server rolls back once its sleep ends and it finds the client gone
        deadline = time.monotonic() + 30
        while check.run("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'pgha-migrate'")[0][0]:
            assert time.monotonic() < deadline, "the reset session never ended"
            time.sleep(0.1)
        assert "reset_midway" not in public_tables(check)
    finally:
        check.close()
    assert recorded(fresh_db) == []


def test_connection_lost_in_a_non_transactional_migration_says_what_stays(
    fresh_db: ConnectionSettings, tmp_path: Path
) -> None:
    directory = migrations_dir(
        tmp_path,
        {
            "0001_killed.sql": (
                "-- pgha:no-transaction\nCREATE TABLE first (id int);\nSELECT pg_terminate_backend(pg_backend_pid());\n"
                "CREATE TABLE third (id int);\n"
            ),
        },
    )
    result = pgha("migrate", "--dsn", dsn(fresh_db), "--migrations", str(directory))
    assert result.returncode == 1, result.stdout + result.stderr
    assert "0001_killed.sql (non-transactional) was interrupted at statement 2 of 3" in result.stderr
    assert "statement 1 stays applied" in result.stderr and "Traceback" not in result.stderr
    check = connect(fresh_db)
    tables = public_tables(check)
    check.close()
    assert "first" in tables and "third" not in tables
    assert recorded(fresh_db) == []
