-- Tenant isolation with row-level security.
-- application_role sees only the rows of app.current_organization_id, and nothing when it is
-- unset (current_setting(..., true) is NULL then, and NULL matches no row; the seed's form
-- raised an error instead). executive_role reads projects across the organizations of its
-- user (app.current_user_id) when that user is an admin or executive; the lookup runs as a
-- SECURITY DEFINER function so it is not itself filtered by the users policies.
-- RLS is not FORCEd: the table owner runs migrations and refreshes the cross-tenant dashboard,
-- so applications must connect as members of application_role / executive_role, never as owner.
CREATE FUNCTION current_organization_id() RETURNS uuid
LANGUAGE sql STABLE AS $$
    SELECT nullif(current_setting('app.current_organization_id', true), '')::uuid
$$;

CREATE FUNCTION current_app_user_id() RETURNS uuid
LANGUAGE sql STABLE AS $$
    SELECT nullif(current_setting('app.current_user_id', true), '')::uuid
$$;

CREATE FUNCTION executive_organization_ids() RETURNS SETOF uuid
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
    SELECT organization_id FROM public.users
    WHERE id = public.current_app_user_id() AND role IN ('admin', 'executive')
$$;
REVOKE ALL ON FUNCTION executive_organization_ids() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION executive_organization_ids() TO executive_role;

ALTER TABLE organizations ENABLE ROW LEVEL SECURITY;
ALTER TABLE users ENABLE ROW LEVEL SECURITY;
ALTER TABLE projects ENABLE ROW LEVEL SECURITY;

CREATE POLICY org_isolation_organizations ON organizations FOR ALL TO application_role
    USING (id = current_organization_id()) WITH CHECK (id = current_organization_id());
CREATE POLICY org_isolation_users ON users FOR ALL TO application_role
    USING (organization_id = current_organization_id())
    WITH CHECK (organization_id = current_organization_id());
CREATE POLICY org_isolation_projects ON projects FOR ALL TO application_role
    USING (organization_id = current_organization_id())
    WITH CHECK (organization_id = current_organization_id());

CREATE POLICY executive_access_organizations ON organizations FOR SELECT TO executive_role
    USING (id IN (SELECT executive_organization_ids()));
CREATE POLICY executive_access_users ON users FOR SELECT TO executive_role
    USING (organization_id IN (SELECT executive_organization_ids()));
CREATE POLICY executive_access_projects ON projects FOR SELECT TO executive_role
    USING (organization_id IN (SELECT executive_organization_ids()));

GRANT SELECT, INSERT, UPDATE, DELETE ON organizations, users, projects TO application_role;
GRANT INSERT, SELECT ON activity_logs TO application_role;
GRANT SELECT ON organizations, users, projects TO executive_role;
