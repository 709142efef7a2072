-- Schema bookkeeping used by the migrator.

-- name: create_migrations_table!
-- The table of applied migrations; created under the migration lock.
CREATE TABLE IF NOT EXISTS adk_schema_migrations (
    version    INTEGER PRIMARY KEY,
    name       TEXT NOT NULL,
    applied_at REAL NOT NULL
)

-- name: lock_migrations!
-- BEGIN IMMEDIATE already holds the database's write lock, which serialises migrators; this
-- statement only reads the key and schema so that both dialects take the same parameters.
SELECT :key, :schema

-- name: create_schema!
-- A SQLite database is one schema: nothing to create.
SELECT 1

-- name: migrations_table_exists$
-- Whether any migration was ever applied (no lock, no DDL: safe with migrate=False).
SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'adk_schema_migrations')

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
-- PostgreSQL tells its migrations whether to distribute over Citus; SQLite has nothing to
-- distribute, so this only reads the value to take the same parameters.
SELECT :value

-- name: citus_version$
-- SQLite is never Citus.
SELECT NULL

-- name: distribution
-- No table of SQLite is distributed: no row, with the columns PostgreSQL's query returns.
SELECT NULL AS table_name, NULL AS kind, NULL AS distribution_column, NULL AS colocation_id,
       NULL AS shard_count
WHERE 0

-- name: ping$
-- Readiness probe: a trivial read that needs a working connection and the schema.
SELECT count(*) FROM adk_schema_migrations
