-- Core business entities of the executive dashboard.
-- Seed fixes: roles and statuses are constrained to the values the policies and views use;
-- updated_at is maintained by a trigger instead of trusting every writer to set it.
CREATE TABLE organizations (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name          varchar(255) NOT NULL,
    industry      varchar(100),
    size_category varchar(50),
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE users (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    organization_id uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    email           varchar(255) NOT NULL UNIQUE,
    role            varchar(50) NOT NULL
        CONSTRAINT users_role_check CHECK (role IN ('admin', 'executive', 'manager', 'member', 'viewer')),
    preferences     jsonb NOT NULL DEFAULT '{}'::jsonb,
    last_login      timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX users_organization_id_idx ON users (organization_id);

CREATE TABLE projects (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    organization_id uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    name            varchar(255) NOT NULL,
    status          varchar(50) NOT NULL DEFAULT 'active'
        CONSTRAINT projects_status_check CHECK (status IN ('active', 'pending', 'on_hold', 'completed', 'cancelled')),
    metadata        jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);

CREATE FUNCTION touch_updated_at() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.updated_at := now();
    RETURN NEW;
END
$$;

CREATE TRIGGER organizations_touch BEFORE UPDATE ON organizations
    FOR EACH ROW EXECUTE FUNCTION touch_updated_at();
CREATE TRIGGER projects_touch BEFORE UPDATE ON projects
    FOR EACH ROW EXECUTE FUNCTION touch_updated_at();
