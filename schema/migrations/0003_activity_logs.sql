-- Activity log partitioned by month on created_at.
-- Seed fixes: create_monthly_partitions was called but never defined; a partitioned table's
-- primary key must include the partition key; a DEFAULT partition makes an insert for any
-- timestamp succeed. Rows that landed in the default partition are moved into a month's
-- partition when that month is created, so no row is ever lost or left behind.
CREATE TABLE activity_logs (
    id            bigint GENERATED ALWAYS AS IDENTITY,
    user_id       uuid REFERENCES users (id) ON DELETE SET NULL,
    action        varchar(100) NOT NULL,
    resource_type varchar(50),
    resource_id   uuid,
    metadata      jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (id, created_at)
) PARTITION BY RANGE (created_at);

CREATE TABLE activity_logs_default PARTITION OF activity_logs DEFAULT;
CREATE INDEX activity_logs_created_at_idx ON activity_logs (created_at DESC);
CREATE INDEX activity_logs_user_idx ON activity_logs (user_id, created_at DESC);

-- Create one partition per month from from_month to to_month (inclusive), moving any rows the
-- default partition holds for that month into it. Returns how many partitions it created.
-- Month boundaries are UTC.
CREATE FUNCTION create_monthly_partitions(parent regclass, from_month date, to_month date)
RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    month        date := date_trunc('month', from_month)::date;
    parent_name  text := (SELECT relname FROM pg_class WHERE oid = parent);
    parent_ns    text := (SELECT nspname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                          WHERE c.oid = parent);
    default_part regclass;
    part_name    text;
    lower_bound  timestamptz;
    upper_bound  timestamptz;
    created      integer := 0;
BEGIN
    SELECT i.inhrelid::regclass INTO default_part
    FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
    WHERE i.inhparent = parent AND pg_get_expr(c.relpartbound, c.oid) = 'DEFAULT';

    WHILE month <= to_month LOOP
        part_name := format('%s_%s', parent_name, to_char(month, 'YYYY_MM'));
        lower_bound := (month::timestamp AT TIME ZONE 'UTC');
        upper_bound := ((month + interval '1 month')::timestamp AT TIME ZONE 'UTC');
        IF to_regclass(format('%I.%I', parent_ns, part_name)) IS NULL THEN
            EXECUTE format('CREATE TABLE %I.%I (LIKE %s INCLUDING DEFAULTS INCLUDING CONSTRAINTS)',
                           parent_ns, part_name, parent);
            IF default_part IS NOT NULL THEN
                EXECUTE format('WITH moved AS (DELETE FROM %s WHERE created_at >= %L AND created_at < %L RETURNING *)
                                INSERT INTO %I.%I OVERRIDING SYSTEM VALUE SELECT * FROM moved',
                               default_part, lower_bound, upper_bound, parent_ns, part_name);
            END IF;
            EXECUTE format('ALTER TABLE %s ATTACH PARTITION %I.%I FOR VALUES FROM (%L) TO (%L)',
                           parent, parent_ns, part_name, lower_bound, upper_bound);
            created := created + 1;
        END IF;
        month := (month + interval '1 month')::date;
    END LOOP;
    RETURN created;
END
$$;

-- The scheduled job: keep partitions from this month to months_ahead months ahead.
CREATE FUNCTION ensure_activity_log_partitions(months_ahead integer DEFAULT 3)
RETURNS integer
LANGUAGE sql AS $$
    SELECT create_monthly_partitions(
        'activity_logs'::regclass,
        date_trunc('month', now() AT TIME ZONE 'UTC')::date,
        (date_trunc('month', now() AT TIME ZONE 'UTC') + make_interval(months => months_ahead))::date)
$$;

SELECT ensure_activity_log_partitions(3);
