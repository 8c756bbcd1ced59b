-- The seed's KPI "index hit ratio > 95% for all tables", as views over pg_statio.
-- Ratios are NULL until a table or index has been read at all.
CREATE VIEW cache_hit_ratio AS
SELECT
    schemaname,
    relname AS table_name,
    round(100.0 * heap_blks_hit / nullif(heap_blks_hit + heap_blks_read, 0), 2) AS table_hit_percent,
    round(100.0 * idx_blks_hit / nullif(idx_blks_hit + idx_blks_read, 0), 2) AS index_hit_percent,
    coalesce(idx_blks_hit + idx_blks_read, 0) AS index_blocks_accessed
FROM pg_statio_user_tables
ORDER BY index_blocks_accessed DESC;

-- Tables read through indexes that miss the KPI: what to look at first.
CREATE VIEW index_hit_ratio_below_target AS
SELECT schemaname, table_name, index_hit_percent, index_blocks_accessed
FROM cache_hit_ratio
WHERE index_hit_percent < 95;
