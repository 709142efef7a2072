-- The event history and the append transaction.

-- name: lock_session^
-- Read the session's revision; BEGIN IMMEDIATE already holds the database write lock.
SELECT revision, update_time FROM adk_sessions
WHERE app_name = :app_name AND user_id = :user_id AND id = :session_id

-- name: append_event!
-- Every write of one append: the event row, the app and user scopes (only when their delta is
-- not NULL, merged with adk_merge), and the session's state, revision and update time. SQLite has
-- no data-modifying CTEs, so these are four statements run in the caller's transaction.
INSERT INTO adk_events (app_name, user_id, session_id, seq, id, timestamp, event)
VALUES (:app_name, :user_id, :session_id, :seq, :event_id, :timestamp, :event);

INSERT INTO adk_app_states (app_name, state, update_time)
SELECT :app_name, :app_delta, :update_time WHERE :app_delta IS NOT NULL
ON CONFLICT (app_name) DO UPDATE
    SET state = adk_merge(state, excluded.state), update_time = excluded.update_time;

INSERT INTO adk_user_states (app_name, user_id, state, update_time)
SELECT :app_name, :user_id, :user_delta, :update_time WHERE :user_delta IS NOT NULL
ON CONFLICT (app_name, user_id) DO UPDATE
    SET state = adk_merge(state, excluded.state), update_time = excluded.update_time;

UPDATE adk_sessions
SET state = adk_merge(state, :session_delta), revision = :seq, update_time = :update_time
WHERE app_name = :app_name AND user_id = :user_id AND id = :session_id

-- name: get_event_at^
-- The event stored at one position of a session (to recognise a retried append).
SELECT id, event FROM adk_events
WHERE app_name = :app_name AND user_id = :user_id AND session_id = :session_id AND seq = :seq

-- name: get_events
-- Events with :min_seq <= seq <= :max_seq, newest first, as the JSON text stored: the last
-- :limit (NULL: all), optionally only those with timestamp >= :after. Walks the primary key
-- backwards, so it reads O(limit) rows, or O(max_seq - min_seq) for the events after a revision.
SELECT seq, event FROM adk_events
WHERE app_name = :app_name AND user_id = :user_id AND session_id = :session_id
  AND seq >= :min_seq AND seq <= :max_seq
  AND (:after IS NULL OR timestamp >= :after)
ORDER BY seq DESC
LIMIT coalesce(:limit, -1)

-- name: insert_event!
-- The event row alone (PostgreSQL runs it instead of append_event on a distributed Citus
-- schema; SQLite always runs append_event).
INSERT INTO adk_events (app_name, user_id, session_id, seq, id, timestamp, event)
VALUES (:app_name, :user_id, :session_id, :seq, :event_id, :timestamp, :event)

-- name: advance_session!
-- The session's state, revision and update time after one event (see insert_event).
UPDATE adk_sessions
SET state = adk_merge(state, :session_delta), revision = :seq, update_time = :update_time
WHERE app_name = :app_name AND user_id = :user_id AND id = :session_id
