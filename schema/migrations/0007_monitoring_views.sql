-- Monitoring views, on PostgreSQL 13+ column names.
-- Seed fixes: pg_stat_statements has total_exec_time / mean_exec_time (not total_time /
-- mean_time) since PG13; pg_stat_user_indexes has relname / indexrelname (not tablename /
-- indexname); sizes are taken by relid, so mixed-case or odd table names work.
CREATE VIEW slow_queries AS
SELECT
    query,
    calls,
    total_exec_time,
    mean_exec_time,
    rows,
    100.0 * shared_blks_hit / nullif(shared_blks_hit + shared_blks_read, 0) AS hit_percent
FROM pg_stat_statements
WHERE calls > 100
ORDER BY total_exec_time DESC;

CREATE VIEW index_usage AS
SELECT
    schemaname,
    relname AS table_name,
    indexrelname AS index_name,
    idx_scan,
    idx_tup_read,
    idx_tup_fetch,
    pg_size_pretty(pg_relation_size(indexrelid)) AS size
FROM pg_stat_user_indexes
ORDER BY idx_tup_read DESC;

CREATE VIEW table_sizes AS
SELECT
    schemaname,
    relname AS table_name,
    pg_size_pretty(pg_total_relation_size(relid)) AS total_size,
    pg_size_pretty(pg_relation_size(relid)) AS table_size,
    pg_size_pretty(pg_total_relation_size(relid) - pg_relation_size(relid)) AS index_and_toast_size,
    n_live_tup,
    n_dead_tup,
    round(100.0 * n_dead_tup / nullif(n_live_tup + n_dead_tup, 0), 1) AS dead_tuple_percent
FROM pg_stat_user_tables
ORDER BY pg_total_relation_size(relid) DESC;
