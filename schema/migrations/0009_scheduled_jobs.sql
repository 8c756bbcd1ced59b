-- Scheduled jobs through pg_cron: partitions ahead, dashboard refresh, analyze.
-- pg_cron must be preloaded (shared_preload_libraries) and can only be created in the database
-- cron.database_name names. When it is not, this migration says so and changes nothing:
-- run `SELECT ensure_activity_log_partitions()` monthly and `pgha maintain` from elsewhere.
-- Seed fix: the backup "jobs" ran shell commands inside the database; backups belong to RDS
-- automated backups (or pgBackRest on the Patroni path), not to SQL.
DO $$
DECLARE
    preloaded boolean := current_setting('shared_preload_libraries') ~ '(^|,)\s*pg_cron\s*(,|$)';
    cron_db   text := current_setting('cron.database_name', true);
BEGIN
    IF NOT EXISTS (SELECT FROM pg_available_extensions WHERE name = 'pg_cron') THEN
        RAISE WARNING 'pg_cron is not installed on this server: scheduled jobs not created';
    ELSIF NOT preloaded THEN
        RAISE WARNING 'pg_cron is not in shared_preload_libraries: scheduled jobs not created';
    ELSIF cron_db IS DISTINCT FROM current_database() THEN
        RAISE WARNING 'cron.database_name is % but this database is %: scheduled jobs not created',
            coalesce(cron_db, 'postgres'), current_database();
    ELSE
        CREATE EXTENSION IF NOT EXISTS pg_cron;
        PERFORM cron.schedule('activity-log-partitions', '0 0 1,15 * *',
                              'SELECT ensure_activity_log_partitions(3)');
        PERFORM cron.schedule('refresh-dashboard', '*/5 * * * *', 'SELECT refresh_executive_dashboard()');
        PERFORM cron.schedule('analyze-changed-tables', '0 2 * * *', 'SELECT analyze_changed_tables()');
        RAISE NOTICE 'pg_cron: scheduled activity-log-partitions, refresh-dashboard, analyze-changed-tables';
    END IF;
END
$$;
