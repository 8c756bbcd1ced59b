-- pgha:no-transaction
-- Tenant isolation for activity_logs: an organization_id on every row, a policy like the other
-- tables', and the (organization_id, created_at DESC) index the tenant's "latest activity" read needs.
-- Seed fix: activity_logs had no organization column and no policy, so application_role read
-- every organization's activity.
-- Non-transactional, so no step holds a long lock: the backfill runs per partition (row locks
-- only), and the index is built CONCURRENTLY on each partition, then attached to a parent index
-- created ON ONLY the partitioned table (instant; valid once every partition's index is attached).
-- Partitions created later (create_monthly_partitions attaches them) get the index, the
-- constraint and the trigger from the parent. Every step is idempotent: a failed run re-runs.
ALTER TABLE activity_logs
    ADD COLUMN IF NOT EXISTS organization_id uuid REFERENCES organizations (id) ON DELETE CASCADE;

-- Filled from the user's organization when not given; a given one must be the user's. SECURITY
-- DEFINER so the lookup is not filtered by the users policy: the row is then checked by the
-- activity_logs policy like any other.
CREATE OR REPLACE FUNCTION activity_logs_set_organization() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public AS $$
DECLARE
    user_org uuid;
BEGIN
    IF NEW.user_id IS NOT NULL THEN
        SELECT organization_id INTO user_org FROM public.users WHERE id = NEW.user_id;
        IF NEW.organization_id IS NULL THEN
            NEW.organization_id := user_org;
        ELSIF user_org IS DISTINCT FROM NEW.organization_id THEN
            RAISE EXCEPTION 'activity_logs: user % belongs to organization %, not %',
                NEW.user_id, user_org, NEW.organization_id USING ERRCODE = '23514';
        END IF;
    END IF;
    RETURN NEW;
END
$$;
REVOKE ALL ON FUNCTION activity_logs_set_organization() FROM PUBLIC;

CREATE OR REPLACE TRIGGER activity_logs_set_organization BEFORE INSERT ON activity_logs
    FOR EACH ROW EXECUTE FUNCTION activity_logs_set_organization();

-- Backfill, one partition per statement (short transactions, row locks only).
-- pgha:gexec
SELECT format('UPDATE %s AS a SET organization_id = u.organization_id FROM users u '
              'WHERE a.organization_id IS NULL AND u.id = a.user_id', inhrelid::regclass)
FROM pg_inherits WHERE inhparent = 'activity_logs'::regclass ORDER BY inhrelid;

-- Rows whose user was deleted before this migration (user_id set NULL) name no organization:
-- stop and say so rather than guess a tenant or delete audit history.
DO $$
DECLARE
    orphans bigint := (SELECT count(*) FROM activity_logs WHERE organization_id IS NULL);
BEGIN
    IF orphans > 0 THEN
        RAISE EXCEPTION '% activity_logs rows have no user and so no organization: set their organization_id '
                        '(or delete them), then re-run the migration', orphans
            USING ERRCODE = '23502';
    END IF;
END
$$;

-- SET NOT NULL scans under an ACCESS EXCLUSIVE lock unless a valid CHECK proves the column has no
-- NULL: validate one per partition first (SHARE UPDATE EXCLUSIVE: reads and writes go on), then
-- SET NOT NULL only looks at the catalog, and the helper constraints go.
-- pgha:gexec
SELECT format('ALTER TABLE %s ADD CONSTRAINT activity_logs_org_not_null CHECK (organization_id IS NOT NULL) NOT VALID',
              inhrelid::regclass)
FROM pg_inherits i WHERE inhparent = 'activity_logs'::regclass
  AND NOT EXISTS (SELECT FROM pg_constraint WHERE conrelid = i.inhrelid AND conname = 'activity_logs_org_not_null')
ORDER BY inhrelid;

-- pgha:gexec
SELECT format('ALTER TABLE %s VALIDATE CONSTRAINT activity_logs_org_not_null', conrelid::regclass)
FROM pg_constraint WHERE conname = 'activity_logs_org_not_null' ORDER BY conrelid;

ALTER TABLE activity_logs ALTER COLUMN organization_id SET NOT NULL;

-- pgha:gexec
SELECT format('ALTER TABLE %s DROP CONSTRAINT activity_logs_org_not_null', conrelid::regclass)
FROM pg_constraint WHERE conname = 'activity_logs_org_not_null' ORDER BY conrelid;

-- pgha:gexec
SELECT format('CREATE INDEX CONCURRENTLY IF NOT EXISTS %I ON %s (organization_id, created_at DESC)',
              left(c.relname, 40) || '_org_created_idx', c.oid::regclass)
FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
WHERE i.inhparent = 'activity_logs'::regclass ORDER BY c.oid;

CREATE INDEX IF NOT EXISTS activity_logs_org_created_idx
    ON ONLY activity_logs (organization_id, created_at DESC);

-- pgha:gexec
SELECT format('ALTER INDEX activity_logs_org_created_idx ATTACH PARTITION %s', x.indexrelid::regclass)
FROM pg_inherits i
JOIN pg_class c ON c.oid = i.inhrelid
JOIN pg_index x ON x.indrelid = c.oid
WHERE i.inhparent = 'activity_logs'::regclass
  AND x.indexrelid = to_regclass(quote_ident(left(c.relname, 40) || '_org_created_idx'))
  AND NOT EXISTS (SELECT FROM pg_inherits a WHERE a.inhrelid = x.indexrelid);

DO $$
BEGIN
    IF NOT (SELECT indisvalid FROM pg_index WHERE indexrelid = 'activity_logs_org_created_idx'::regclass) THEN
        RAISE EXCEPTION 'activity_logs_org_created_idx is not valid: a partition lacks its index';
    END IF;
END
$$;

ALTER TABLE activity_logs ENABLE ROW LEVEL SECURITY;
DROP POLICY IF EXISTS org_isolation_activity_logs ON activity_logs;
CREATE POLICY org_isolation_activity_logs ON activity_logs FOR ALL TO application_role
    USING (organization_id = (SELECT current_organization_id()))
    WITH CHECK (organization_id = (SELECT current_organization_id()));
