"""The application schema's behaviour on a real PostgreSQL: partitions, RLS, dashboard, monitoring."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator

import pg8000.native
import pytest

from pgha.ci.harness import PROJECT_DIR
from pgha.connect import ConnectionSettings, connect
from pgha.local import PostgresServer
from pgha.schema.migrate import migrate


@pytest.fixture
def db(schema_db: ConnectionSettings) -> Iterator[pg8000.native.Connection]:
    conn = connect(schema_db)
    yield conn
    conn.close()


def login_role(db: pg8000.native.Connection, group: str) -> tuple[str, str]:
    """A login role that is a member of ``group``; returns (name, password)."""
    name, password = f"u_{uuid.uuid4().hex[:10]}", uuid.uuid4().hex
    db.run(f"CREATE ROLE {name} LOGIN PASSWORD '{password}' IN ROLE {group}")
    return name, password


def as_role(settings: ConnectionSettings, role: tuple[str, str]) -> pg8000.native.Connection:
    return connect(
        ConnectionSettings(
            hosts=settings.hosts, database=settings.database, user=role[0], password=role[1], sslmode="disable"
        )
    )


def new_org(db: pg8000.native.Connection, name: str) -> str:
    return str(db.run("INSERT INTO organizations (name) VALUES (:n) RETURNING id", n=name)[0][0])


def test_activity_log_inserts_for_any_time_succeed(db: pg8000.native.Connection) -> None:
    stamps = {
        "last year": "now() - interval '1 year'",
        "this month": "now()",
        "next year": "now() + interval '1 year'",
        "far past": "'1999-12-31 23:59:59+00'::timestamptz",
    }
    org = new_org(db, "Stamps")
    for label, expression in stamps.items():
        db.run(
            f"INSERT INTO activity_logs (organization_id, action, created_at) VALUES (:o, :label, {expression})",  # noqa: S608 - fixed expressions
            o=org,
            label=label,
        )
    found = {r[0] for r in db.run("SELECT action FROM activity_logs")}
    assert set(stamps) <= found


def test_partitions_exist_ahead(db: pg8000.native.Connection) -> None:
    partitions = {
        r[0]
        for r in db.run(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = 'activity_logs'::regclass"
        )
    }
    months = [
        r[0]
        for r in db.run(
            "SELECT to_char(date_trunc('month', now() AT TIME ZONE 'UTC') + make_interval(months => m), 'YYYY_MM') "
            "FROM generate_series(0, 3) m"
        )
    ]
    assert {f"activity_logs_{m}" for m in months} <= partitions
    assert "activity_logs_default" in partitions


def test_creating_a_partition_moves_rows_out_of_default(db: pg8000.native.Connection) -> None:
    db.run(
        "INSERT INTO activity_logs (organization_id, action, created_at) VALUES (:o, 'future', '2031-05-10 12:00+00')",
        o=new_org(db, "Future"),
    )
    assert db.run("SELECT count(*) FROM activity_logs_default WHERE action = 'future'")[0][0] == 1
    created = db.run("SELECT create_monthly_partitions('activity_logs', '2031-05-01', '2031-05-01')")[0][0]
    assert created == 1
    assert db.run("SELECT count(*) FROM activity_logs_2031_05 WHERE action = 'future'")[0][0] == 1
    assert db.run("SELECT count(*) FROM activity_logs_default WHERE action = 'future'")[0][0] == 0
    assert db.run("SELECT count(*) FROM activity_logs WHERE action = 'future'")[0][0] == 1
    assert db.run("SELECT create_monthly_partitions('activity_logs', '2031-05-01', '2031-05-01')")[0][0] == 0


def test_rls_application_role_sees_only_its_organization(
    db: pg8000.native.Connection, schema_db: ConnectionSettings
) -> None:
    org_a, org_b = new_org(db, "A"), new_org(db, "B")
    db.run("INSERT INTO projects (organization_id, name) VALUES (:a, 'pa'), (:b, 'pb')", a=org_a, b=org_b)
    app = as_role(schema_db, login_role(db, "application_role"))
    try:
        assert app.run("SELECT count(*) FROM projects")[0][0] == 0, "no organization set: nothing visible"
        app.run(f"SET app.current_organization_id = '{org_a}'")
        assert {r[0] for r in app.run("SELECT name FROM projects")} == {"pa"}
        assert {r[0] for r in app.run("SELECT name FROM organizations")} == {"A"}
        with pytest.raises(pg8000.native.DatabaseError, match="row-level security"):
            app.run("INSERT INTO projects (organization_id, name) VALUES (:b, 'sneaky')", b=org_b)
        app.run("RESET app.current_organization_id")
        assert app.run("SELECT count(*) FROM projects")[0][0] == 0
    finally:
        app.close()


def test_rls_executive_reads_its_users_organizations_only(
    db: pg8000.native.Connection, schema_db: ConnectionSettings
) -> None:
    org_a, org_b = new_org(db, "ExecA"), new_org(db, "ExecB")
    db.run("INSERT INTO projects (organization_id, name) VALUES (:a, 'exec-pa'), (:b, 'exec-pb')", a=org_a, b=org_b)
    boss = db.run(
        "INSERT INTO users (organization_id, email, role) VALUES (:a, :e, 'executive') RETURNING id",
        a=org_a,
        e=f"{uuid.uuid4().hex}@example.com",
    )[0][0]
    member = db.run(
        "INSERT INTO users (organization_id, email, role) VALUES (:a, :e, 'member') RETURNING id",
        a=org_a,
        e=f"{uuid.uuid4().hex}@example.com",
    )[0][0]
    exec_conn = as_role(schema_db, login_role(db, "executive_role"))
    try:
        assert exec_conn.run("SELECT count(*) FROM projects")[0][0] == 0
        exec_conn.run(f"SET app.current_user_id = '{boss}'")
        assert {r[0] for r in exec_conn.run("SELECT name FROM projects")} == {"exec-pa"}
        exec_conn.run(f"SET app.current_user_id = '{member}'")
        assert exec_conn.run("SELECT count(*) FROM projects")[0][0] == 0, "a plain member is no executive"
        with pytest.raises(pg8000.native.DatabaseError, match="permission denied"):
            exec_conn.run("UPDATE projects SET name = 'x'")
    finally:
        exec_conn.close()


def test_constraints_reject_unknown_roles_and_statuses(db: pg8000.native.Connection) -> None:
    org = new_org(db, "C")
    with pytest.raises(pg8000.native.DatabaseError, match="users_role_check"):
        db.run("INSERT INTO users (organization_id, email, role) VALUES (:o, 'x@example.com', 'emperor')", o=org)
    with pytest.raises(pg8000.native.DatabaseError, match="projects_status_check"):
        db.run("INSERT INTO projects (organization_id, name, status) VALUES (:o, 'p', 'done-ish')", o=org)


def test_dashboard_refreshes_concurrently_while_a_reader_reads(
    db: pg8000.native.Connection, schema_db: ConnectionSettings
) -> None:
    org = new_org(db, "Dash")
    db.run("SELECT refresh_executive_dashboard()")
    reader = connect(schema_db)
    reader.run("BEGIN ISOLATION LEVEL REPEATABLE READ")
    before = reader.run("SELECT total_projects FROM executive_dashboard_metrics WHERE organization_id = :o", o=org)
    db.run("INSERT INTO projects (organization_id, name) VALUES (:o, 'p1'), (:o, 'p2')", o=org)
    db.run("SET lock_timeout = '10s'")
    db.run("SELECT refresh_executive_dashboard()")  # must not wait for the open reader
    db.run("RESET lock_timeout")
    still = reader.run("SELECT total_projects FROM executive_dashboard_metrics WHERE organization_id = :o", o=org)
    reader.run("COMMIT")
    after = reader.run("SELECT total_projects FROM executive_dashboard_metrics WHERE organization_id = :o", o=org)
    reader.close()
    assert before == still == [[0]]
    assert after == [[2]]


def test_sensitive_data_round_trip_needs_the_session_key(db: pg8000.native.Connection) -> None:
    with pytest.raises(pg8000.native.DatabaseError, match=r"app\.encryption_key is not set"):
        db.run("SELECT encrypt_sensitive_data('secret')")
    db.run("SET app.encryption_key = 'a-session-key-of-32-characters!!'")
    cipher = db.run("SELECT encrypt_sensitive_data('tax id 123')")[0][0]
    assert b"tax id" not in cipher
    assert db.run("SELECT decrypt_sensitive_data(:c)", c=cipher)[0][0] == "tax id 123"
    db.run("RESET app.encryption_key")


def test_monitoring_views_return_rows(db: pg8000.native.Connection) -> None:
    for _ in range(120):
        db.run("SELECT count(*) FROM organizations WHERE name = 'nobody'")
    assert db.run("SELECT count(*) FROM slow_queries")[0][0] > 0
    assert db.run("SELECT count(*) FROM index_usage")[0][0] > 0
    assert db.run("SELECT count(*) FROM table_sizes WHERE table_name = 'projects'")[0][0] == 1


def test_pg_cron_jobs_are_scheduled_when_available(db: pg8000.native.Connection, postgres: PostgresServer) -> None:
    if not postgres.has_pg_cron:
        pytest.skip("pg_cron is not installed (Debian: postgresql-15-cron)")
    jobs = {r[0] for r in db.run("SELECT jobname FROM cron.job")}
    assert {"activity-log-partitions", "refresh-dashboard", "analyze-changed-tables"} <= jobs


def test_schema_applies_without_pg_cron_and_says_so(fresh_db: ConnectionSettings) -> None:
    conn = connect(fresh_db)  # not cron.database_name, so pg_cron cannot be created here
    result = migrate(conn)
    conn.close()
    assert "0010_dashboard_indexes.sql" in result.applied
    assert any("scheduled jobs not created" in notice for notice in result.notices)


def test_maintain_vacuums_a_table_with_dead_tuples(db: pg8000.native.Connection, postgres: PostgresServer) -> None:
    db.run("CREATE TABLE churn (id int PRIMARY KEY, payload text)")
    db.run("ALTER TABLE churn SET (autovacuum_enabled = false)")
    db.run("INSERT INTO churn SELECT g, repeat('x', 100) FROM generate_series(1, 5000) g")
    db.run("DELETE FROM churn WHERE id <= 4000")
    db.run("SELECT pg_stat_force_next_flush()")
    deadline = time.monotonic() + 15
    while db.run("SELECT n_dead_tup FROM pg_stat_user_tables WHERE relname = 'churn'")[0][0] < 4000:
        assert time.monotonic() < deadline, "statistics never showed the dead tuples"
        time.sleep(0.2)
    dry = subprocess.run(
        [sys.executable, "-m", "pgha", "maintain", "--dsn", postgres.dsn(), "--dry-run"],
        cwd=PROJECT_DIR,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "would run: VACUUM (ANALYZE) churn" in dry.stdout
    assert db.run("SELECT last_vacuum FROM pg_stat_user_tables WHERE relname = 'churn'")[0][0] is None
    result = subprocess.run(
        [sys.executable, "-m", "pgha", "maintain", "--dsn", postgres.dsn()],
        cwd=PROJECT_DIR,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "running: VACUUM (ANALYZE) churn" in result.stdout
    db.run("SELECT pg_stat_clear_snapshot()")
    deadline = time.monotonic() + 15
    while db.run("SELECT last_vacuum FROM pg_stat_user_tables WHERE relname = 'churn'")[0][0] is None:
        assert time.monotonic() < deadline, "VACUUM never recorded"
        time.sleep(0.2)
        db.run("SELECT pg_stat_clear_snapshot()")
    assert db.run("SELECT n_dead_tup FROM pg_stat_user_tables WHERE relname = 'churn'")[0][0] == 0
    db.run("DROP TABLE churn")


def test_concurrent_refresh_in_a_thread_does_not_block_readers(
    db: pg8000.native.Connection, schema_db: ConnectionSettings
) -> None:
    errors: list[Exception] = []

    def read_many() -> None:
        conn = connect(schema_db)
        try:
            for _ in range(50):
                conn.run("SELECT count(*) FROM executive_dashboard_metrics")
        except Exception as err:  # asserted below
            errors.append(err)
        finally:
            conn.close()

    reader = threading.Thread(target=read_many)
    reader.start()
    for _ in range(5):
        db.run("SELECT refresh_executive_dashboard()")
    reader.join(timeout=60)
    assert not errors


def test_cache_hit_ratio_view_reports_the_index_hit_kpi(db: pg8000.native.Connection) -> None:
    org = new_org(db, "Hits")
    for _ in range(20):
        db.run("SELECT * FROM organizations WHERE id = :o", o=org)
    db.run("SELECT pg_stat_force_next_flush()")
    query = "SELECT index_hit_percent FROM cache_hit_ratio WHERE table_name = 'organizations'"
    deadline = time.monotonic() + 15
    while (ratio := db.run(query)[0][0]) is None:
        assert time.monotonic() < deadline, "index reads never reached the statistics"
        db.run("SELECT pg_stat_clear_snapshot()")
        time.sleep(0.2)
    assert 0 <= ratio <= 100
    db.run("SELECT count(*) FROM index_hit_ratio_below_target")  # the KPI view runs
