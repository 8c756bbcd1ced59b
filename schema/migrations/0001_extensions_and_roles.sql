-- Extensions the schema uses, and the group roles its row-level security policies name.
-- Roles are cluster-wide, so they are created only when missing.
CREATE EXTENSION IF NOT EXISTS pgcrypto;
CREATE EXTENSION IF NOT EXISTS pg_stat_statements;

DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'application_role') THEN
        CREATE ROLE application_role NOLOGIN;
    END IF;
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'executive_role') THEN
        CREATE ROLE executive_role NOLOGIN;
    END IF;
END
$$;
