"""Tenant isolation on a real PostgreSQL: no table application_role can read shows another organization's rows.

The readable tables are found in the catalog, not listed here, so a new table cannot slip by:
it must hold seeded rows of both organizations and say which column names its tenant.
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pg8000.native
import pytest

from pgha.connect import ConnectionSettings, connect
from pgha.schema.migrate import MigrationError, migrate
from pgha.schema.migrations import MIGRATIONS_DIR, discover

#: Relations application_role may read (any column), outside the catalogs and extensions' own objects.
READABLE = """
    SELECT c.oid::regclass::text
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f')
      AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%'
      AND has_any_column_privilege('application_role', c.oid, 'SELECT')
      AND NOT EXISTS (SELECT FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid
                      AND d.deptype = 'e')
    ORDER BY 1"""

#: The one table whose tenant column is not organization_id.
TENANT_COLUMN = {"organizations": "id"}


def seed_tenant(db: pg8000.native.Connection, name: str) -> dict[str, str]:
    """An organization with a user, projects and activity (organization_id left to the trigger)."""
    org = str(db.run("INSERT INTO organizations (name) VALUES (:n) RETURNING id", n=name)[0][0])
    user = str(
        db.run(
            "INSERT INTO users (organization_id, email, role) VALUES (:o, :e, 'member') RETURNING id",
            o=org,
            e=f"{uuid.uuid4().hex}@{name}.example",
        )[0][0]
    )
    db.run("INSERT INTO projects (organization_id, name) VALUES (:o, 'p1'), (:o, 'p2')", o=org)
    db.run(
        "INSERT INTO activity_logs (user_id, action, created_at) "
        "SELECT :u, 'login', now() - g * interval '20 days' FROM generate_series(0, 8) g",
        u=user,
    )
    return {"org": org, "user": user}


@pytest.fixture
def tenants(fresh_db: ConnectionSettings) -> Iterator[tuple[pg8000.native.Connection, dict, dict]]:
    db = connect(fresh_db)
    migrate(db)
    a, b = seed_tenant(db, "alpha"), seed_tenant(db, "bravo")
    role = f"tenant_{uuid.uuid4().hex[:10]}"
    db.run(f"CREATE ROLE {role} NOLOGIN IN ROLE application_role")
    a["role"] = role
    yield db, a, b
    db.run("RESET ROLE")
    db.run(f"DROP ROLE {role}")
    db.close()


def as_tenant(db: pg8000.native.Connection, role: str, org: str | None) -> None:
    db.run("RESET ROLE")
    db.run("SELECT set_config('app.current_organization_id', :o, false)", o=org or "")
    db.run(f"SET ROLE {role}")


def test_every_table_application_role_reads_shows_only_its_organization(tenants: tuple) -> None:
    db, a, b = tenants
    tables = [r[0] for r in db.run(READABLE)]
    assert {"organizations", "users", "projects", "activity_logs"} <= set(tables)
    problems = []
    for table in tables:
        column = TENANT_COLUMN.get(table, "organization_id")
        has_column = db.run(
            "SELECT count(*) FROM pg_attribute WHERE attrelid = to_regclass(:t) AND attname = :c AND NOT attisdropped",
            t=table,
            c=column,
        )[0][0]
        if not has_column:
            problems.append(f"{table}: readable by application_role but has no {column} column")
            continue
        count = (
            f"SELECT count(*) FILTER (WHERE {column} = :a), count(*) FILTER (WHERE {column} = :b), "  # noqa: S608
            f"count(*) FROM {table}"
        )  # names from the catalog
        owner_a, owner_b, _ = db.run(count, a=a["org"], b=b["org"])[0]
        if not (owner_a and owner_b):
            problems.append(f"{table}: seed rows of both organizations to test it (has {owner_a} / {owner_b})")
            continue
        as_tenant(db, a["role"], a["org"])
        seen_a, seen_b, seen_all = db.run(count, a=a["org"], b=b["org"])[0]
        as_tenant(db, a["role"], None)
        unset = db.run(f"SELECT count(*) FROM {table}")[0][0]  # noqa: S608 - names from the catalog
        db.run("RESET ROLE")
        if seen_b or seen_all != seen_a or seen_a != owner_a:
            problems.append(
                f"{table}: organization A sees {seen_b} rows of B and {seen_all} in all "
                f"(its own: {owner_a}, seen {seen_a})"
            )
        if unset:
            problems.append(f"{table}: {unset} rows visible with no organization set")
    assert not problems, "\n".join(problems)


def test_activity_takes_the_users_organization_and_rls_refuses_another(tenants: tuple) -> None:
    db, a, b = tenants
    as_tenant(db, a["role"], a["org"])
    db.run("INSERT INTO activity_logs (user_id, action) VALUES (:u, 'mine')", u=a["user"])
    with pytest.raises(pg8000.native.DatabaseError, match="row-level security"):
        db.run("INSERT INTO activity_logs (user_id, action) VALUES (:u, 'theirs')", u=b["user"])
    assert [str(r[0]) for r in db.run("SELECT organization_id FROM activity_logs WHERE action = 'mine'")] == [a["org"]]
    db.run("RESET ROLE")
    with pytest.raises(pg8000.native.DatabaseError, match="is not a user of organization") as refused:
        db.run(
            "INSERT INTO activity_logs (organization_id, user_id, action) VALUES (:o, :u, 'mixed')",
            o=a["org"],
            u=b["user"],
        )
    assert b["org"] not in str(refused.value), "the error must not name the other tenant's organization"
    with pytest.raises(pg8000.native.DatabaseError, match="not-null"):
        db.run("INSERT INTO activity_logs (action) VALUES ('nobody')")


def test_partitions_created_later_get_the_tenant_index_and_trigger(tenants: tuple) -> None:
    db, a, _b = tenants
    assert db.run("SELECT create_monthly_partitions('activity_logs', '2035-01-01', '2035-01-01')") == [[1]]
    indexes = db.run(
        "SELECT indexrelid::regclass::text, indisvalid FROM pg_index "
        "WHERE indrelid = 'activity_logs_2035_01'::regclass AND pg_get_indexdef(indexrelid) "
        "LIKE '%(organization_id, created_at DESC)'"
    )
    assert len(indexes) == 1 and indexes[0][1]
    parent = db.run("SELECT indisvalid FROM pg_index WHERE indexrelid = 'activity_logs_org_created_idx'::regclass")
    assert parent == [[True]]
    db.run("INSERT INTO activity_logs (user_id, action, created_at) VALUES (:u, 'later', '2035-01-05')", u=a["user"])
    assert [str(r[0]) for r in db.run("SELECT organization_id FROM activity_logs_2035_01")] == [a["org"]]


def test_tenant_read_uses_the_organization_index(tenants: tuple) -> None:
    db, a, _b = tenants
    db.run("ANALYZE activity_logs")
    as_tenant(db, a["role"], a["org"])
    db.run("SET enable_seqscan = off")
    plan = "\n".join(r[0] for r in db.run("EXPLAIN SELECT * FROM activity_logs ORDER BY created_at DESC LIMIT 50"))
    db.run("RESET enable_seqscan")
    db.run("RESET ROLE")
    assert "_org_created_idx" in plan, plan


def previous_migrations(tmp_path: Path) -> Path:
    directory = tmp_path / "migrations"
    directory.mkdir()
    for migration in discover():
        if migration.number < 12:
            shutil.copy(MIGRATIONS_DIR / migration.name, directory / migration.name)
    return directory


def test_0012_backfills_existing_rows_and_stops_on_rows_without_a_user(
    fresh_db: ConnectionSettings, tmp_path: Path
) -> None:
    directory = previous_migrations(tmp_path)
    db = connect(fresh_db)
    migrate(db, directory)
    orgs = {}
    for name in ("one", "two"):
        org = str(db.run("INSERT INTO organizations (name) VALUES (:n) RETURNING id", n=name)[0][0])
        user = db.run(
            "INSERT INTO users (organization_id, email, role) VALUES (:o, :e, 'member') RETURNING id",
            o=org,
            e=f"{name}@example.com",
        )[0][0]
        # rows in the default partition (a year back) and in this month's
        db.run(
            "INSERT INTO activity_logs (user_id, action, created_at) "
            "SELECT :u, 'x', now() - g * interval '1 month' FROM generate_series(0, 13) g",
            u=user,
        )
        orgs[org] = 14
    db.run("INSERT INTO activity_logs (user_id, action) VALUES (NULL, 'user deleted')")
    shutil.copy(MIGRATIONS_DIR / "0012_activity_logs_tenant.sql", directory)
    with pytest.raises(MigrationError, match="1 activity_logs rows have no user"):
        migrate(db, directory)
    assert db.run("SELECT count(*) FROM pgha_schema_migrations WHERE name LIKE '0012%'") == [[0]]
    db.run("DELETE FROM activity_logs WHERE user_id IS NULL")
    assert migrate(db, directory).applied == ["0012_activity_logs_tenant.sql"]
    counts = {str(org): n for org, n in db.run("SELECT organization_id, count(*) FROM activity_logs GROUP BY 1")}
    assert counts == orgs
    assert db.run(
        "SELECT attnotnull FROM pg_attribute WHERE attrelid = 'activity_logs'::regclass AND attname = 'organization_id'"
    ) == [[True]]
    assert db.run("SELECT count(*) FROM pg_constraint WHERE conname = 'activity_logs_org_not_null'") == [[0]]
    db.close()


def test_application_logins_cannot_create_in_public_even_where_postgresql_14_lets_everyone(
    fresh_db: ConnectionSettings,
) -> None:
    # PostgreSQL 14's default, which 0013 revokes: otherwise a login could shadow a function the
    # scheduled jobs call (public.date_trunc(text, date)) and have it run as the schema owner
    db = connect(fresh_db)
    db.run("GRANT CREATE ON SCHEMA public TO PUBLIC")
    migrate(db)
    role = f"tenant_{uuid.uuid4().hex[:10]}"
    db.run(f"CREATE ROLE {role} NOLOGIN IN ROLE application_role")
    try:
        db.run(f"SET ROLE {role}")
        with pytest.raises(pg8000.native.DatabaseError, match="permission denied for schema public"):
            db.run("CREATE FUNCTION public.date_trunc(text, date) RETURNS date LANGUAGE sql AS 'SELECT $2'")
        db.run("RESET ROLE")
        # and a job run with a hostile search_path still calls pg_catalog's date_trunc, not a closer match
        db.run("CREATE SCHEMA hostile")
        db.run(
            "CREATE FUNCTION hostile.date_trunc(text, date) RETURNS date LANGUAGE plpgsql AS "
            "$$BEGIN RAISE EXCEPTION 'hostile date_trunc ran'; END$$"
        )
        db.run("SET search_path = hostile, public")
        assert db.run("SELECT public.create_monthly_partitions('activity_logs', '2036-01-01', '2036-01-01')") == [[1]]
    finally:
        db.run("RESET ROLE")
        db.run("RESET search_path")
        db.run("DROP SCHEMA IF EXISTS hostile CASCADE")
        db.run(f"DROP ROLE {role}")
        db.close()
