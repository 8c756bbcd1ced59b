-- The seed's "smart maintenance", in a form PostgreSQL can run.
-- Seed fixes: pg_stat_user_tables has relname, not tablename; VACUUM cannot run inside a
-- function or transaction, so the function only ANALYZEs and the view lists what needs a
-- VACUUM: `python -m pgha maintain` (autocommit) runs both.
CREATE VIEW maintenance_candidates AS
SELECT
    relid::regclass AS table_name,
    n_mod_since_analyze > 1000 AS needs_analyze,
    n_dead_tup > 1000 AND n_dead_tup > n_live_tup * 0.1 AS needs_vacuum,
    n_mod_since_analyze,
    n_live_tup,
    n_dead_tup
FROM pg_stat_user_tables
WHERE n_mod_since_analyze > 1000 OR (n_dead_tup > 1000 AND n_dead_tup > n_live_tup * 0.1);

CREATE FUNCTION analyze_changed_tables() RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    r record;
    analyzed integer := 0;
BEGIN
    FOR r IN SELECT table_name FROM maintenance_candidates WHERE needs_analyze LOOP
        EXECUTE format('ANALYZE %s', r.table_name);
        analyzed := analyzed + 1;
    END LOOP;
    RETURN analyzed;
END
$$;
