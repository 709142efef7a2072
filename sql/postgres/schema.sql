-- Schema bookkeeping used by the migrator.

-- name: create_migrations_table!
-- The table of applied migrations; created under the migration lock.
CREATE TABLE IF NOT EXISTS adk_schema_migrations (
    version    INTEGER PRIMARY KEY,
    name       TEXT NOT NULL,
    applied_at DOUBLE PRECISION NOT NULL
)

-- name: lock_migrations!
-- Serialise concurrent migrators of one schema until the end of the transaction, and remember
-- that schema's name for create_schema (transaction-local, so poolers may share the connection).
SELECT pg_advisory_xact_lock(:key), set_config('adk_sessions.schema', :schema, true)

-- name: create_schema!
-- Create the schema the tables live in (connect(schema=...)), named by lock_migrations, unless it
-- exists ("public" always does). %I and quote_ident quote the name as an identifier.
DO $$
BEGIN
    -- Only when missing: CREATE SCHEMA checks the CREATE privilege on the database even for one
    -- that exists, which an application role often lacks.
    IF to_regnamespace(quote_ident(current_setting('adk_sessions.schema'))) IS NULL THEN
        EXECUTE format('CREATE SCHEMA %I', current_setting('adk_sessions.schema'));
    END IF;
END
$$

-- name: migrations_table_exists$
-- Whether any migration was ever applied (no lock, no DDL: safe with migrate=False).
SELECT to_regclass('adk_schema_migrations') IS NOT NULL

-- name: applied_versions
-- Versions of the applied migrations, oldest first.
SELECT version FROM adk_schema_migrations ORDER BY version

-- name: record_migration!
-- Mark a migration applied, in the transaction that applied it.
INSERT INTO adk_schema_migrations (version, name, applied_at) VALUES (:version, :name, :applied_at)

-- name: count_rows^
-- Row counts for `adk-sessions status`.
SELECT (SELECT count(*) FROM adk_app_states) AS apps,
       (SELECT count(*) FROM adk_user_states) AS users,
       (SELECT count(*) FROM adk_sessions) AS sessions,
       (SELECT count(*) FROM adk_events) AS events
