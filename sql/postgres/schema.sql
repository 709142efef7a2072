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

-- name: set_distribute!
-- The migrator's choice for its transaction: 'off' keeps the tables local on a Citus database
-- (read by migration 0002_distribute.sql).
SELECT set_config('adk_sessions.distribute', :value, true)

-- name: citus_version$
-- The installed citus extension's version; NULL without it.
SELECT extversion FROM pg_extension WHERE extname = 'citus'

-- name: distribution
-- How Citus holds each of the library's tables (no row: a plain local table). Run only when the
-- citus extension is installed; reads the coordinator's metadata, no shard.
SELECT c.relname AS table_name,
       CASE WHEN p.partmethod = 'h' THEN 'distributed'
            WHEN p.repmodel = 't' THEN 'reference'
            WHEN p.colocationid <> 0 THEN 'single shard'
            ELSE 'citus local' END AS kind,
       CASE WHEN p.partkey IS NOT NULL
            THEN column_to_column_name(p.logicalrelid, p.partkey) END AS distribution_column,
       p.colocationid AS colocation_id,
       (SELECT count(*) FROM pg_dist_shard s WHERE s.logicalrelid = p.logicalrelid) AS shard_count
FROM pg_dist_partition p
JOIN pg_class c ON c.oid = p.logicalrelid
WHERE p.logicalrelid IN (to_regclass('adk_app_states'), to_regclass('adk_user_states'),
                         to_regclass('adk_sessions'), to_regclass('adk_events'))
ORDER BY c.relname

-- name: ping$
-- Readiness probe: a trivial read that needs a working connection and the schema.
SELECT count(*) FROM adk_schema_migrations
