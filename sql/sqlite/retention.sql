-- Retention: deleting sessions last updated before a time, in batches of short transactions.
-- A batch is the range of an app's sessions between two keys in (update_time, user_id, id)
-- order, the order of the adk_sessions_by_app_update index, so every query below reads that
-- index from the batch's first key on and never rescans what earlier batches deleted.

-- name: list_apps_with_sessions
-- The names of the apps that have at least one session, in order (a skip scan of the index:
-- one index probe per app, however many sessions each has).
WITH RECURSIVE apps (app_name) AS (
    SELECT (SELECT s.app_name FROM adk_sessions s ORDER BY s.app_name LIMIT 1)
    UNION ALL
    SELECT (SELECT s.app_name FROM adk_sessions s
            WHERE s.app_name > apps.app_name ORDER BY s.app_name LIMIT 1)
    FROM apps WHERE apps.app_name IS NOT NULL
)
SELECT app_name FROM apps WHERE app_name IS NOT NULL

-- name: list_apps_distributed
-- The same names on a distributed (Citus) schema, where a recursive query over a distributed
-- table cannot run: every shard reads its sessions' app names, the coordinator merges them.
-- (PostgreSQL runs it on Citus; SQLite always runs list_apps_with_sessions.)
SELECT DISTINCT app_name FROM adk_sessions ORDER BY app_name

-- name: count_expired_sessions$
-- How many sessions of an app (of one user when :user_id is not NULL) were last updated
-- before :before (what a prune would delete; a read, for dry runs and progress).
SELECT count(*) FROM adk_sessions
WHERE app_name = :app_name AND (:user_id IS NULL OR user_id = :user_id)
  AND update_time < :before

-- name: find_expired_bound^
-- The key just past the next batch: the (:batch_size + 1)-th expired session at or after the
-- batch's first key. No row: fewer remain, and the batch takes them all.
SELECT update_time, user_id, id FROM adk_sessions
WHERE app_name = :app_name AND (:user_id IS NULL OR user_id = :user_id)
  AND update_time < :before
  AND (update_time, user_id, id) >= (:from_time, :from_user, :from_id)
ORDER BY update_time, user_id, id
LIMIT 1 OFFSET :batch_size

-- name: delete_expired_sessions
-- Delete one batch: the sessions from the batch's first key up to (not including) its bound,
-- re-checking update_time < :before in the DELETE itself, so that a session appended to since
-- it was found is deleted only if it still qualifies (on SQLite the whole batch runs under the
-- database write lock). Events go with their sessions (ON DELETE CASCADE, foreign_keys=ON).
DELETE FROM adk_sessions
WHERE app_name = :app_name AND (:user_id IS NULL OR user_id = :user_id)
  AND update_time < :before
  AND (update_time, user_id, id) >= (:from_time, :from_user, :from_id)
  AND (update_time, user_id, id) < (:to_time, :to_user, :to_id)
RETURNING id
