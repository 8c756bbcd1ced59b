-- Only the schema's owner creates objects in public, the functions that run with raised rights
-- resolve names in a fixed search_path, and a refused activity row no longer names another tenant.
-- PostgreSQL 14 and older let every role CREATE in public (15 revoked it; pgha:postgresVersion allows
-- 14). An application login could then add public.date_trunc(text, date), a closer match than
-- pg_catalog's for create_monthly_partitions' call, and pg_cron would run it as the schema owner
-- (the CVE-2018-1058 pattern). On 15 and later this REVOKE changes nothing.
REVOKE CREATE ON SCHEMA public FROM PUBLIC;

-- The functions that run with more rights than their caller resolve names in a fixed search_path:
-- the scheduled jobs (pg_cron runs them as the schema owner) and the SECURITY DEFINER lookup. pg_temp
-- last: otherwise a session's temporary table would be found before public's. The functions that
-- run as their caller (RLS's current_organization_id(), touch_updated_at(), the encryption helpers)
-- keep the caller's: a SET clause would stop the planner inlining them into every policy check.
ALTER FUNCTION create_monthly_partitions(regclass, date, date) SET search_path = pg_catalog, public, pg_temp;
ALTER FUNCTION ensure_activity_log_partitions(integer) SET search_path = pg_catalog, public, pg_temp;
ALTER FUNCTION refresh_executive_dashboard() SET search_path = pg_catalog, public, pg_temp;
ALTER FUNCTION analyze_changed_tables() SET search_path = pg_catalog, public, pg_temp;
ALTER FUNCTION executive_organization_ids() SET search_path = pg_catalog, public, pg_temp;

-- A user id of another organization was answered with that organization's id: say only that it is
-- not the caller's.
CREATE OR REPLACE FUNCTION activity_logs_set_organization() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp AS $$
DECLARE
    user_org uuid;
BEGIN
    IF NEW.user_id IS NOT NULL THEN
        SELECT organization_id INTO user_org FROM public.users WHERE id = NEW.user_id;
        IF NEW.organization_id IS NULL THEN
            NEW.organization_id := user_org;
        ELSIF user_org IS DISTINCT FROM NEW.organization_id THEN
            RAISE EXCEPTION 'activity_logs: user % is not a user of organization %',
                NEW.user_id, NEW.organization_id USING ERRCODE = '23514';
        END IF;
    END IF;
    RETURN NEW;
END
$$;
