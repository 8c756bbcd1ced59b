-- Executive dashboard metrics, refreshable without blocking readers.
-- Seed fixes: REFRESH ... CONCURRENTLY needs a unique index on the view; joining projects and
-- users in one query multiplied rows (skewing the average duration), so each is aggregated
-- on its own; EXTRACT(DAYS ...) truncated to whole days, the epoch gives fractional days.
CREATE MATERIALIZED VIEW executive_dashboard_metrics AS
SELECT
    o.id   AS organization_id,
    o.name AS organization_name,
    coalesce(p.total_projects, 0)  AS total_projects,
    coalesce(p.active_projects, 0) AS active_projects,
    coalesce(u.total_users, 0)     AS total_users,
    p.avg_project_duration_days,
    p.last_project_update
FROM organizations o
LEFT JOIN (
    SELECT organization_id,
           count(*) AS total_projects,
           count(*) FILTER (WHERE status = 'active') AS active_projects,
           avg(extract(epoch FROM updated_at - created_at) / 86400.0)
               FILTER (WHERE status = 'completed') AS avg_project_duration_days,
           max(updated_at) AS last_project_update
    FROM projects GROUP BY organization_id
) p ON p.organization_id = o.id
LEFT JOIN (
    SELECT organization_id, count(*) AS total_users FROM users GROUP BY organization_id
) u ON u.organization_id = o.id;

CREATE UNIQUE INDEX executive_dashboard_metrics_org_idx ON executive_dashboard_metrics (organization_id);

CREATE FUNCTION refresh_executive_dashboard() RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    REFRESH MATERIALIZED VIEW CONCURRENTLY executive_dashboard_metrics;
END
$$;
