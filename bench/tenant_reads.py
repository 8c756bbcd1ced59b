"""Benchmark: tenant reads through row-level security at scale (p50/p95 latency in ms).

Starts a throwaway PostgreSQL (pgha.local.PostgresServer), applies the schema with the real
runner, and generates in SQL (generate_series) 1,000,000 activity rows over the last 6 months
in two shapes: many small organizations (2,000 x 25 users) and few large ones (200 x 250
users). Then, as a login member of application_role with app.current_organization_id set to a
random organization, it times

- activity:  the 50 most recent activity rows of my organization   (target p95 <= 20 ms)
- projects:  my organization's projects                            (target p95 <= 5 ms)
- dashboard: my organization's executive_dashboard_metrics row     (target p95 <= 5 ms)

(the dashboard is a materialized view: no policy applies to it and application_role has no
grant on it, so it is read by the owner, filtered by organization). Each time is the client's
round trip over loopback. Prints a Markdown table, writes JSON and Markdown; exits 1 when a
target is missed. Timings live here, not in the pass/fail tests.

    .venv/bin/python bench/tenant_reads.py --json reports/tenant_reads.json --markdown reports/tenant_reads.md
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import secrets
import statistics
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pgha.connect import connect
from pgha.drill.compare import summarize
from pgha.local import PostgresServer
from pgha.schema.migrate import migrate


@dataclass(frozen=True)
class Shape:
    """How the activity rows are spread over tenants."""

    name: str
    organizations: int
    users_per_org: int
    projects_per_org: int


SHAPES = (Shape("many small", 2000, 25, 10), Shape("few large", 200, 250, 100))

QUERIES = {
    "activity": (
        "application_role",
        "SELECT id, user_id, action, resource_type, resource_id, created_at "
        "FROM activity_logs ORDER BY created_at DESC LIMIT 50",
        20.0,
    ),
    "projects": (
        "application_role",
        "SELECT id, name, status, metadata, created_at, updated_at FROM projects ORDER BY created_at DESC",
        5.0,
    ),
    "dashboard": ("owner", "SELECT * FROM executive_dashboard_metrics WHERE organization_id = :org", 5.0),
}

GENERATE = [
    # six months back and the current month (+3 ahead from the schema), so rows land in month partitions
    "SELECT create_monthly_partitions('activity_logs', (now() - interval '6 months')::date, now()::date)",
    "SET session_replication_role = replica",  # bulk load: rows are generated consistent; skip triggers and FKs
    """INSERT INTO organizations (name, industry, size_category)
       SELECT 'org ' || g, (ARRAY['saas', 'retail', 'health', 'finance'])[1 + g % 4], 'size ' || g % 5
       FROM generate_series(1, :orgs) g""",
    """CREATE TEMP TABLE bench_users AS
       SELECT row_number() OVER () AS n, id, organization_id FROM (
           SELECT gen_random_uuid() AS id, o.id AS organization_id
           FROM organizations o CROSS JOIN generate_series(1, :users) u) x""",
    """INSERT INTO users (id, organization_id, email, role, last_login)
       SELECT id, organization_id, 'user' || n || '@example.com',
              (ARRAY['admin', 'executive', 'manager', 'member', 'viewer'])[1 + n % 5],
              now() - random() * interval '60 days'
       FROM bench_users""",
    """INSERT INTO projects (organization_id, name, status, metadata, created_at, updated_at)
       SELECT o.id, 'project ' || p,
              (ARRAY['active', 'pending', 'on_hold', 'completed', 'cancelled'])[1 + p % 5],
              jsonb_build_object('priority', p % 3), now() - random() * interval '365 days', now()
       FROM organizations o CROSS JOIN generate_series(1, :projects) p""",
    """INSERT INTO activity_logs (user_id, organization_id, action, resource_type, resource_id, metadata, created_at)
       SELECT u.id, u.organization_id, (ARRAY['login', 'view', 'update', 'comment'])[1 + a.g % 4], 'project',
              gen_random_uuid(), '{}'::jsonb, a.at
       FROM (SELECT g, 1 + floor(random() * :user_count)::bigint AS n,
                    now() - random() * interval '182 days' AS at
             FROM generate_series(1, :rows) g) a
       JOIN bench_users u USING (n)""",
    "SET session_replication_role = DEFAULT",
    "VACUUM ANALYZE",
    "REFRESH MATERIALIZED VIEW executive_dashboard_metrics",
]


def load(server: PostgresServer, shape: Shape, rows: int, report) -> str:
    """A database of its own with the schema and the generated data; returns its name."""
    database = "bench_" + shape.name.replace(" ", "_")
    admin = connect(server.settings("postgres"))
    admin.run(f'DROP DATABASE IF EXISTS "{database}"')
    admin.run(f'CREATE DATABASE "{database}"')
    admin.close()
    conn = connect(server.settings(database))
    migrate(conn)
    started = time.monotonic()
    params = {
        "orgs": shape.organizations,
        "users": shape.users_per_org,
        "projects": shape.projects_per_org,
        "user_count": shape.organizations * shape.users_per_org,
        "rows": rows,
    }
    for statement in GENERATE:
        conn.run(statement, **{k: v for k, v in params.items() if f":{k}" in statement})
    counted = conn.run("SELECT count(*), count(DISTINCT organization_id) FROM activity_logs")[0]
    report(
        f"{shape.name}: {counted[0]} activity rows of {counted[1]} organizations loaded in "
        f"{time.monotonic() - started:.0f} s"
    )
    conn.close()
    return database


def measure(server: PostgresServer, database: str, role: tuple[str, str], iterations: int, seed: int) -> dict:
    """p50/p95/max of each query over ``iterations`` random organizations (after a warm-up)."""
    owner = connect(server.settings(database))
    tenant = connect(replace(server.settings(database), user=role[0], password=role[1]))
    orgs = [str(r[0]) for r in owner.run("SELECT id FROM organizations")]
    rng = random.Random(seed)
    results = {}
    for name, (who, sql, target) in QUERIES.items():
        conn = tenant if who == "application_role" else owner
        timings, returned = [], []
        for index in range(iterations + iterations // 10):
            org = rng.choice(orgs)
            tenant.run("SELECT set_config('app.current_organization_id', :org, false)", org=org)
            kwargs = {"org": org} if ":org" in sql else {}
            started = time.perf_counter()
            rows = conn.run(sql, **kwargs)
            elapsed = (time.perf_counter() - started) * 1000
            if index >= iterations // 10:  # the first tenth warms the cache
                timings.append(elapsed)
                returned.append(len(rows))
        plan = "\n".join(r[0] for r in conn.run("EXPLAIN " + sql, **({"org": orgs[0]} if ":org" in sql else {})))
        figures = summarize(timings)  # iterations >= 10: never empty
        results[name] = {
            "as": who,
            "p50_ms": figures["p50"],
            "p95_ms": figures["p95"],
            "max_ms": figures["max"],
            "target_p95_ms": target,
            "met": figures["p95"] <= target,
            "rows_returned_median": statistics.median(returned),
            "iterations": len(timings),
            "plan": plan,
        }
    tenant.close()
    owner.close()
    return results


def machine(server: PostgresServer) -> dict:
    """What the numbers were measured on."""
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    memory_kb = next(
        int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines() if line.startswith("MemTotal")
    )
    conn = connect(server.settings("postgres"))
    version = conn.run("SHOW server_version")[0][0]
    conn.close()
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": round(memory_kb / 2**20, 1),
        "postgres": version,
        "settings": server.extra_settings,
        "python": platform.python_version(),
    }


def markdown(results: dict, info: dict, rows: int) -> str:
    """The results as a Markdown table with the machine they ran on."""
    lines = [
        f"Tenant reads through RLS, {rows:,} activity rows over 6 months "
        f"({info['cpu']}, {info['cores']} cores, {info['memory_gib']} GiB, PostgreSQL {info['postgres']}):",
        "",
        "| shape | read | as | p50 (ms) | p95 (ms) | target p95 (ms) | met | rows |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for shape, queries in results.items():
        for name, r in queries.items():
            lines.append(
                f"| {shape} | {name} | {r['as']} | {r['p50_ms']:.2f} | {r['p95_ms']:.2f} | "
                f"{r['target_p95_ms']:g} | {'yes' if r['met'] else '**no**'} | "
                f"{r['rows_returned_median']:g} |"
            )
    return "\n".join(lines) + "\n"


def main() -> int:
    """Load each shape, time the reads, print and write the report; 1 when a target is missed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--iterations", type=int, default=1000, help="timed reads per query and shape")
    parser.add_argument("--json", type=Path, help="write the raw results (with plans) here")
    parser.add_argument("--markdown", type=Path, help="write the Markdown table here")
    args = parser.parse_args()
    if args.rows < 1 or args.iterations < 10:
        parser.error("--rows must be >= 1 and --iterations >= 10")
    server = PostgresServer(
        database="bench",
        extra_settings={
            "shared_buffers": "512MB",
            "work_mem": "16MB",
            "maintenance_work_mem": "256MB",
            "effective_cache_size": "2GB",
            "random_page_cost": "1.1",
            "max_wal_size": "4GB",
        },
    )
    results: dict[str, dict] = {}
    try:
        server.start()
        info = machine(server)
        role = (f"bench_app_{secrets.token_hex(4)}", secrets.token_urlsafe(16))
        for shape in SHAPES:
            database = load(server, shape, args.rows, lambda line: print(line, file=sys.stderr))
            admin = connect(server.settings(database))
            if not admin.run("SELECT 1 FROM pg_roles WHERE rolname = :r", r=role[0]):
                admin.run(f"CREATE ROLE {role[0]} LOGIN PASSWORD '{role[1]}' IN ROLE application_role")
            admin.close()
            results[shape.name] = measure(server, database, role, args.iterations, seed=len(results))
    finally:
        server.stop()
    table = markdown(results, info, args.rows)
    print(table)
    report = {
        "rows": args.rows,
        "machine": info,
        "shapes": {
            s.name: {
                "organizations": s.organizations,
                "users_per_org": s.users_per_org,
                "projects_per_org": s.projects_per_org,
            }
            for s in SHAPES
        },
        "results": results,
    }
    for path, text in ((args.json, json.dumps(report, indent=2)), (args.markdown, table)):
        if path:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
    return 0 if all(r["met"] for queries in results.values() for r in queries.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
