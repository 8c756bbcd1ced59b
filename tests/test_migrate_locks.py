"""Long statements, lock timeouts and interrupted concurrent index builds, on a real PostgreSQL."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import pg8000.native
import pytest
from test_migrate import dsn, pgha, recorded

from pgha.ci.harness import PROJECT_DIR
from pgha.connect import ConnectionSettings, connect
from pgha.schema.migrate import MigrationError, Timeouts, migrate

BASE = (
    "CREATE TABLE accounts (id int PRIMARY KEY, balance int NOT NULL DEFAULT 0);\n"
    "INSERT INTO accounts SELECT g FROM generate_series(1, 1000) g;\n"
)


def migrations(tmp_path: Path, **files: str) -> Path:
    directory = tmp_path / "migrations"
    directory.mkdir(exist_ok=True)
    (directory / "0001_base.sql").write_text(BASE)
    for name, sql in files.items():
        (directory / f"{name}.sql").write_text(sql)
    return directory


def base_applied(
    fresh_db: ConnectionSettings, tmp_path: Path, name: str, sql: str
) -> tuple[pg8000.native.Connection, Path]:
    """A connection to a database with 0001_base applied, and the directory with ``name`` pending."""
    directory = migrations(tmp_path)
    conn = connect(fresh_db)
    migrate(conn, directory)
    (directory / f"{name}.sql").write_text(sql)
    return conn, directory


def open_transaction(fresh_db: ConnectionSettings, sql: str) -> pg8000.native.Connection:
    """A session inside a transaction that ran ``sql`` (and holds its locks until ROLLBACK)."""
    session = connect(fresh_db)
    session.run("BEGIN")
    session.run(sql)
    return session


def columns(conn: pg8000.native.Connection, table: str) -> list[str]:
    return [
        r[0]
        for r in conn.run(
            "SELECT attname FROM pg_attribute WHERE attrelid = to_regclass(:t) "
            "AND attnum > 0 AND NOT attisdropped ORDER BY attnum",
            t=table,
        )
    ]


def wait_until_waiting(watcher: pg8000.native.Connection, query: str, timeout: float = 30) -> int:
    """The pid of the backend running ``query`` once it waits on a lock."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rows = watcher.run(
            "SELECT pid FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE :q "
            "AND pid <> pg_backend_pid()",
            q=f"%{query}%",
        )
        if rows:
            return rows[0][0]
        time.sleep(0.05)
    raise AssertionError(f"no backend started waiting on a lock in {query!r}")


def test_a_15_second_migration_succeeds_with_the_default_settings(fresh_db: ConnectionSettings, tmp_path: Path) -> None:
    # the connect timeout (10 s by default) must not bound a statement
    directory = migrations(tmp_path, **{"0002_slow": "SELECT pg_sleep(15);\nCREATE TABLE after_sleep (id int);\n"})
    result = pgha("migrate", "--dsn", dsn(fresh_db), "--migrations", str(directory))
    assert result.returncode == 0, result.stderr
    assert recorded(fresh_db) == ["0001_base.sql", "0002_slow.sql"]


def test_statement_timeout_cancels_a_long_migration_and_rolls_it_back(
    fresh_db: ConnectionSettings, tmp_path: Path
) -> None:
    directory = migrations(tmp_path, **{"0002_slow": "CREATE TABLE half (id int);\nSELECT pg_sleep(5);\n"})
    result = pgha("migrate", "--dsn", dsn(fresh_db), "--migrations", str(directory), "--statement-timeout", "1s")
    assert result.returncode == 1
    assert "0002_slow.sql failed and was rolled back" in result.stderr
    assert "statement timeout" in result.stderr
    assert recorded(fresh_db) == ["0001_base.sql"]


def test_migration_blocked_by_an_open_transaction_fails_naming_the_lock_and_applies_nothing(
    fresh_db: ConnectionSettings, tmp_path: Path
) -> None:
    conn, directory = base_applied(
        fresh_db,
        tmp_path,
        "0002_alter",
        "CREATE TABLE ledger (id int);\nALTER TABLE accounts ADD COLUMN currency text;\n",
    )
    blocker = open_transaction(fresh_db, "SELECT count(*) FROM accounts")  # holds AccessShareLock
    lines: list[str] = []
    try:
        with pytest.raises(MigrationError) as caught:
            migrate(
                conn,
                directory,
                report=lines.append,
                timeouts=Timeouts(lock=1, lock_retries=2, backoff=0.2),
                observer=lambda: connect(fresh_db),
            )
    finally:
        blocker.run("ROLLBACK")
        blocker.close()
    message = str(caught.value)
    assert "0002_alter.sql failed and was rolled back" in message
    assert "gave up after 3 attempts" in message
    assert "relation accounts (AccessExclusiveLock)" in message
    assert "held by pid" in message and "idle in transaction" in message
    assert "SQLSTATE 55P03" in message
    assert sum("retrying" in line for line in lines) == 2
    assert conn.run("SELECT to_regclass('ledger') IS NULL")[0][0]
    assert columns(conn, "accounts") == ["id", "balance"]
    conn.close()
    assert recorded(fresh_db) == ["0001_base.sql"]


def test_a_lock_released_during_the_backoff_lets_the_retry_succeed(
    fresh_db: ConnectionSettings, tmp_path: Path
) -> None:
    conn, directory = base_applied(fresh_db, tmp_path, "0002_alter", "ALTER TABLE accounts ADD COLUMN currency text;\n")
    blocker = open_transaction(fresh_db, "SELECT count(*) FROM accounts")
    lines: list[str] = []

    def release_after_first_retry() -> None:
        while not any("retrying" in line for line in lines):
            time.sleep(0.05)
        blocker.run("ROLLBACK")

    releaser = threading.Thread(target=release_after_first_retry)
    releaser.start()
    try:
        result = migrate(conn, directory, report=lines.append, timeouts=Timeouts(lock=1, lock_retries=3, backoff=0.5))
    finally:
        releaser.join(timeout=30)
        blocker.close()
    assert result.applied == ["0002_alter.sql"]
    assert "currency" in columns(conn, "accounts")
    conn.close()


def test_cli_lock_timeout_fails_with_exit_1_and_the_lock_named(fresh_db: ConnectionSettings, tmp_path: Path) -> None:
    conn, directory = base_applied(fresh_db, tmp_path, "0002_alter", "ALTER TABLE accounts ADD COLUMN currency text;\n")
    conn.close()
    blocker = open_transaction(fresh_db, "SELECT count(*) FROM accounts")
    try:
        # default retries and backoff: 4 attempts of 0.5 s, waits of 2 + 4 + 8 s
        result = pgha("migrate", "--dsn", dsn(fresh_db), "--migrations", str(directory), "--lock-timeout", "500ms")
    finally:
        blocker.run("ROLLBACK")
        blocker.close()
    assert result.returncode == 1, result.stdout + result.stderr
    assert "relation accounts (AccessExclusiveLock)" in result.stderr
    assert "Traceback" not in result.stderr
    assert recorded(fresh_db) == ["0001_base.sql"]


NOWAIT_CASES = {
    # a transactional migration: LOCK TABLE ... NOWAIT against the test's AccessShareLock
    "transactional": (
        "CREATE TABLE ledger (id int);\nLOCK TABLE accounts IN ACCESS EXCLUSIVE MODE NOWAIT;\n",
        "SELECT count(*) FROM accounts",
        "0002_nowait.sql failed and was rolled back",
    ),
    # a non-transactional one (LOCK TABLE needs a transaction block): a row lock taken NOWAIT
    "non-transactional": (
        "-- pgha:no-transaction\nSELECT id FROM accounts WHERE id = 1 FOR UPDATE NOWAIT;\n",
        "UPDATE accounts SET balance = 1 WHERE id = 1",
        "failed at statement 1 of 1",
    ),
}


@pytest.mark.parametrize("case", NOWAIT_CASES)
def test_nowait_lock_with_the_lock_timeout_off_fails_cleanly_and_changes_nothing(
    fresh_db: ConnectionSettings, tmp_path: Path, case: str
) -> None:
    sql, held, failed = NOWAIT_CASES[case]
    conn, directory = base_applied(fresh_db, tmp_path, "0002_nowait", sql)
    blocker = open_transaction(fresh_db, held)
    lines: list[str] = []
    try:
        with pytest.raises(MigrationError) as caught:
            migrate(
                conn,
                directory,
                report=lines.append,
                timeouts=Timeouts(lock=None, lock_retries=1, backoff=0.1),
                observer=lambda: connect(fresh_db),
            )
    finally:
        blocker.run("ROLLBACK")
        blocker.close()
    message = str(caught.value)
    assert failed in message and "SQLSTATE 55P03" in message and "could not obtain lock" in message
    assert "gave up after 2 attempts with --lock-timeout off" in message and "None" not in message
    retries = [line for line in lines if "retrying" in line]
    assert len(retries) == 1 and "lock not available with the lock timeout off, retrying" in retries[0], lines
    assert conn.run("SELECT to_regclass('ledger') IS NULL")[0][0]
    assert conn.run("SELECT balance FROM accounts WHERE id = 1") == [[0]]
    conn.close()
    assert recorded(fresh_db) == ["0001_base.sql"]


@pytest.mark.parametrize("option", ["--lock-timeout", "--statement-timeout"])
def test_bad_timeouts_are_one_line_errors_that_change_nothing(fresh_db: ConnectionSettings, option: str) -> None:
    for command in ("migrate", "maintain"):
        result = pgha(command, "--dsn", dsn(fresh_db), option, "5 minutes")
        assert result.returncode == 2
        assert result.stderr.strip().count("\n") == 0, result.stderr
        assert option in result.stderr and "5 minutes" in result.stderr
    conn = connect(fresh_db)
    assert conn.run("SELECT to_regclass('pgha_schema_migrations') IS NULL")[0][0]
    conn.close()


def churn_locked(settings: ConnectionSettings) -> tuple[pg8000.native.Connection, pg8000.native.Connection]:
    """The schema applied, a table ``churn`` full of dead tuples (so maintain wants to VACUUM it), and a second
    connection holding a lock on it that VACUUM must wait for: (admin connection, the lock holder)."""
    from pgha.schema.migrations import MIGRATIONS_DIR

    conn = connect(settings)
    migrate(conn, MIGRATIONS_DIR)
    conn.run("CREATE TABLE churn (id int)")
    conn.run("INSERT INTO churn SELECT generate_series(1, 5000)")
    conn.run("DELETE FROM churn")
    conn.run("SELECT pg_stat_force_next_flush()")
    blocker = connect(settings)
    blocker.run("BEGIN")
    blocker.run("LOCK TABLE churn IN SHARE UPDATE EXCLUSIVE MODE")
    return conn, blocker


def test_maintain_skips_a_table_whose_lock_is_held_and_says_so(fresh_db: ConnectionSettings, tmp_path: Path) -> None:
    conn, blocker = churn_locked(fresh_db)
    try:
        result = pgha("maintain", "--dsn", dsn(fresh_db), "--lock-timeout", "0.5")
    finally:
        blocker.run("ROLLBACK")
        blocker.close()
        conn.close()
    assert result.returncode == 1, result.stdout + result.stderr
    assert "skipped churn" in result.stdout
    assert "1 table(s) skipped" in result.stderr


def test_maintain_whose_connection_is_lost_says_so_without_a_traceback(fresh_db: ConnectionSettings) -> None:
    conn, blocker = churn_locked(fresh_db)
    runner = subprocess.Popen(
        [sys.executable, "-m", "pgha", "maintain", "--dsn", dsn(fresh_db), "--lock-timeout", "off"],
        cwd=PROJECT_DIR,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        waiting = (
            "SELECT pid FROM pg_stat_activity WHERE application_name = 'pgha-maintain' AND wait_event_type = 'Lock'"
        )
        deadline = time.monotonic() + 60
        while not (pids := conn.run(waiting)) and time.monotonic() < deadline and runner.poll() is None:
            time.sleep(0.1)
        assert pids, "pgha maintain never waited on the held lock"
        conn.run("SELECT pg_terminate_backend(:pid)", pid=pids[0][0])  # what a failover does to its session
        out, err = runner.communicate(timeout=60)
    finally:
        runner.kill()
        blocker.run("ROLLBACK")
        blocker.close()
        conn.close()
    assert runner.returncode == 1, out + err
    assert "Traceback" not in err and err.startswith("error: pgha maintain failed:"), err
    assert "connection" in err.lower(), err


def test_cancelled_concurrent_index_build_is_dropped_and_rebuilt_on_rerun(
    fresh_db: ConnectionSettings, tmp_path: Path
) -> None:
    conn, directory = base_applied(
        fresh_db,
        tmp_path,
        "0002_index",
        "-- pgha:no-transaction\nCREATE INDEX CONCURRENTLY IF NOT EXISTS accounts_balance_idx ON accounts (balance);\n",
    )
    writer = open_transaction(fresh_db, "UPDATE accounts SET balance = 1 WHERE id = 1")  # the build waits for it
    outcome: list[object] = []

    def run() -> None:
        try:
            outcome.append(migrate(conn, directory))
        except MigrationError as err:
            outcome.append(err)

    runner = threading.Thread(target=run)
    runner.start()
    admin = connect(fresh_db)
    try:
        pid = wait_until_waiting(admin, "CREATE INDEX CONCURRENTLY")
        assert admin.run("SELECT pg_cancel_backend(:pid)", pid=pid)[0][0]
        runner.join(timeout=30)
    finally:
        writer.run("ROLLBACK")
        writer.close()
        runner.join(timeout=30)
    assert isinstance(outcome[0], MigrationError) and "canceling statement due to user request" in str(outcome[0])
    assert admin.run("SELECT indisvalid FROM pg_index WHERE indexrelid = 'accounts_balance_idx'::regclass") == [[False]]
    assert recorded(fresh_db) == ["0001_base.sql"]

    lines: list[str] = []
    assert migrate(conn, directory, report=lines.append).applied == ["0002_index.sql"]
    assert any("accounts_balance_idx is INVALID" in line for line in lines), lines
    assert admin.run("SELECT indisvalid FROM pg_index WHERE indexrelid = 'accounts_balance_idx'::regclass") == [[True]]
    admin.close()
    conn.close()
    assert recorded(fresh_db) == ["0001_base.sql", "0002_index.sql"]


def test_gexec_runs_the_statements_a_select_returns(fresh_db: ConnectionSettings, tmp_path: Path) -> None:
    directory = migrations(
        tmp_path,
        **{
            "0002_each": (
                "-- pgha:no-transaction\nCREATE TABLE a1 (x int);\nCREATE TABLE a2 (x int);\n"
                "-- pgha:gexec\n"
                "SELECT format('CREATE INDEX CONCURRENTLY IF NOT EXISTS %I ON %I (x)', t || '_x_idx', t)\n"
                "FROM unnest(ARRAY['a1', 'a2']) t;\n"
            )
        },
    )
    conn = connect(fresh_db)
    migrate(conn, directory)
    valid = dict(
        conn.run(
            "SELECT indexrelid::regclass::text, indisvalid FROM pg_index "
            "WHERE indrelid IN ('a1'::regclass, 'a2'::regclass)"
        )
    )
    conn.close()
    assert valid == {"a1_x_idx": True, "a2_x_idx": True}


def test_non_transactional_statement_retries_on_lock_timeout_then_fails_naming_it(
    fresh_db: ConnectionSettings, tmp_path: Path
) -> None:
    conn, directory = base_applied(
        fresh_db,
        tmp_path,
        "0002_steps",
        "-- pgha:no-transaction\nCREATE TABLE IF NOT EXISTS ledger (id int);\n"
        "ALTER TABLE accounts ADD COLUMN IF NOT EXISTS currency text;\n",
    )
    blocker = open_transaction(fresh_db, "SELECT count(*) FROM accounts")
    lines: list[str] = []
    try:
        with pytest.raises(MigrationError, match=r"(?s)failed at statement 2 of 2.*relation accounts \(AccessExcl"):
            migrate(
                conn,
                directory,
                report=lines.append,
                timeouts=Timeouts(lock=0.5, lock_retries=1, backoff=0.1),
                observer=lambda: connect(fresh_db),
            )
    finally:
        blocker.run("ROLLBACK")
        blocker.close()
    assert sum("retrying: ALTER TABLE accounts" in line for line in lines) == 1
    assert conn.run("SELECT to_regclass('ledger') IS NOT NULL")[0][0], "statement 1 stays applied"
    assert migrate(conn, directory).applied == ["0002_steps.sql"]
    conn.close()
