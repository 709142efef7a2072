-- Sessions and the app/user state scopes.
-- adk_merge(state, delta) is the shallow JSON merge registered by the SQLite dialect (what
-- PostgreSQL's jsonb || does); it runs inside the statement, under the database write lock.

-- name: insert_session^
-- Create a session; no row comes back when the id exists for (app, user).
INSERT INTO adk_sessions (app_name, user_id, id, state, create_time, update_time, revision)
VALUES (:app_name, :user_id, :session_id, :state, :update_time, :update_time, 0)
ON CONFLICT DO NOTHING
RETURNING revision

-- name: create_session^
-- Create a session and read the app and user scopes back, in one statement that is a transaction
-- of its own (a create without scope keys or events); no row when the id exists for (app, user).
INSERT INTO adk_sessions (app_name, user_id, id, state, create_time, update_time, revision)
VALUES (:app_name, :user_id, :session_id, :state, :update_time, :update_time, 0)
ON CONFLICT DO NOTHING
RETURNING revision,
    (SELECT a.state FROM adk_app_states a WHERE a.app_name = :app_name) AS app_state,
    (SELECT u.state FROM adk_user_states u
      WHERE u.app_name = :app_name AND u.user_id = :user_id) AS user_state

-- name: merge_app_state!
-- Shallow-merge a delta into the app scope, server-side.
INSERT INTO adk_app_states (app_name, state, update_time)
VALUES (:app_name, :delta, :update_time)
ON CONFLICT (app_name) DO UPDATE
    SET state = adk_merge(state, excluded.state), update_time = excluded.update_time

-- name: merge_user_state!
-- Shallow-merge a delta into the user scope, server-side.
INSERT INTO adk_user_states (app_name, user_id, state, update_time)
VALUES (:app_name, :user_id, :delta, :update_time)
ON CONFLICT (app_name, user_id) DO UPDATE
    SET state = adk_merge(state, excluded.state), update_time = excluded.update_time

-- name: get_session^
-- One session with its app and user scopes, in one statement (one snapshot). create_time
-- tells a session from one deleted and created again under the same id.
SELECT s.state, s.update_time, s.revision, s.create_time,
       (SELECT a.state FROM adk_app_states a WHERE a.app_name = s.app_name) AS app_state,
       (SELECT u.state FROM adk_user_states u
         WHERE u.app_name = s.app_name AND u.user_id = s.user_id) AS user_state
FROM adk_sessions s
WHERE s.app_name = :app_name AND s.user_id = :user_id AND s.id = :session_id

-- name: get_scope_states^
-- The app scope and one user's scope (either may be NULL).
SELECT (SELECT a.state FROM adk_app_states a WHERE a.app_name = :app_name) AS app_state,
       (SELECT u.state FROM adk_user_states u
         WHERE u.app_name = :app_name AND u.user_id = :user_id) AS user_state

-- name: list_sessions
-- A page of an app's sessions after a keyset cursor, oldest update first, ties by (user, id).
SELECT s.user_id, s.id, s.state, s.update_time, s.revision, u.state AS user_state
FROM adk_sessions s
LEFT JOIN adk_user_states u ON u.app_name = s.app_name AND u.user_id = s.user_id
WHERE s.app_name = :app_name
  AND (s.update_time, s.user_id, s.id) > (:after_time, :after_user, :after_id)
ORDER BY s.update_time, s.user_id, s.id
LIMIT coalesce(:limit, -1)

-- name: list_user_sessions
-- A page of one user's sessions after a keyset cursor, oldest update first, ties by id.
SELECT s.user_id, s.id, s.state, s.update_time, s.revision
FROM adk_sessions s
WHERE s.app_name = :app_name AND s.user_id = :user_id
  AND (s.update_time, s.id) > (:after_time, :after_id)
ORDER BY s.update_time, s.id
LIMIT coalesce(:limit, -1)

-- name: delete_session!
-- Delete a session; its events go with it (ON DELETE CASCADE, PRAGMA foreign_keys=ON).
DELETE FROM adk_sessions WHERE app_name = :app_name AND user_id = :user_id AND id = :session_id

-- name: get_session_with_user^
-- One session with its user scope (PostgreSQL runs it on a distributed Citus schema; SQLite
-- always runs get_session).
SELECT s.state, s.update_time, s.revision, s.create_time, u.state AS user_state
FROM adk_sessions s
LEFT JOIN adk_user_states u ON u.app_name = s.app_name AND u.user_id = s.user_id
WHERE s.app_name = :app_name AND s.user_id = :user_id AND s.id = :session_id

-- name: get_app_scope$
-- The app scope alone (NULL when none).
SELECT state FROM adk_app_states WHERE app_name = :app_name

-- name: get_user_scope$
-- One user's scope alone (NULL when none).
SELECT state FROM adk_user_states WHERE app_name = :app_name AND user_id = :user_id
