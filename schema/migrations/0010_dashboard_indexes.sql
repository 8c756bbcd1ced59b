-- pgha:no-transaction
-- The seed's query indexes, built without blocking writes. CREATE INDEX CONCURRENTLY cannot
-- run inside a transaction, so this migration runs statement by statement and is recorded
-- only when every statement has completed; IF NOT EXISTS makes a re-run after a failure safe.
-- Seed fixes: the partial index on "last_login > NOW() - 30 days" is invalid (index predicates
-- must be immutable), replaced by an index ordered on last_login; the JSON and full-text
-- expressions use immutable forms.
CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_users_org_role ON users (organization_id, role);
CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_users_org_last_login ON users (organization_id, last_login DESC);
CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_projects_org_status ON projects (organization_id, status);
CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_projects_created_at ON projects (created_at DESC);
CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_projects_composite
    ON projects (organization_id, status, created_at DESC)
    WHERE status IN ('active', 'pending');
CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_project_metadata_priority
    ON projects USING gin ((metadata -> 'priority'));
CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_projects_search
    ON projects USING gin (to_tsvector('english'::regconfig, name || ' ' || coalesce(metadata ->> 'description', '')));
