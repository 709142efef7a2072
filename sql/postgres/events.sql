-- The event history and the append transaction.

-- name: lock_session^
-- Lock the session row for the rest of the transaction and read its revision.
SELECT revision, update_time FROM adk_sessions
WHERE app_name = :app_name AND user_id = :user_id AND id = :session_id
FOR UPDATE

-- name: append_event!
-- Every write of one append in one statement: the event row, the app and user scopes (only
-- when their delta is not NULL, merged server-side), and the session's state, revision and
-- update time. The caller holds the session row lock (lock_session) and checked the revision.
WITH new_event AS (
    INSERT INTO adk_events (app_name, user_id, session_id, seq, id, timestamp, event)
    VALUES (:app_name, :user_id, :session_id, :seq, :event_id, :timestamp, :event::json)
), app_scope AS (
    INSERT INTO adk_app_states AS a (app_name, state, update_time)
    SELECT :app_name, :app_delta::jsonb, :update_time WHERE :app_delta::jsonb IS NOT NULL
    ON CONFLICT (app_name) DO UPDATE
        SET state = a.state || EXCLUDED.state, update_time = EXCLUDED.update_time
), user_scope AS (
    INSERT INTO adk_user_states AS u (app_name, user_id, state, update_time)
    SELECT :app_name, :user_id, :user_delta::jsonb, :update_time
    WHERE :user_delta::jsonb IS NOT NULL
    ON CONFLICT (app_name, user_id) DO UPDATE
        SET state = u.state || EXCLUDED.state, update_time = EXCLUDED.update_time
)
UPDATE adk_sessions
SET state = state || :session_delta::jsonb, revision = :seq, update_time = :update_time
WHERE app_name = :app_name AND user_id = :user_id AND id = :session_id

-- name: get_event_at^
-- The event stored at one position of a session (to recognise a retried append).
SELECT id, event FROM adk_events
WHERE app_name = :app_name AND user_id = :user_id AND session_id = :session_id AND seq = :seq

-- name: get_events
-- Events with :min_seq <= seq <= :max_seq, newest first, as the JSON text stored: the last
-- :limit (NULL: all), optionally only those with timestamp >= :after. Walks the primary key
-- backwards, so it reads O(limit) rows, or O(max_seq - min_seq) for the events after a revision.
SELECT seq, event::text AS event FROM adk_events
WHERE app_name = :app_name AND user_id = :user_id AND session_id = :session_id
  AND seq >= :min_seq AND seq <= :max_seq
  AND (:after::float8 IS NULL OR timestamp >= :after::float8)
ORDER BY seq DESC
LIMIT :limit

-- name: insert_event!
-- The event row alone: the append on a distributed (Citus) schema, where Citus routes each
-- statement to one shard but would split append_event's INSERT CTEs into separate steps. The
-- service runs insert_event, merge_app_state / merge_user_state (when their delta has keys) and
-- advance_session under the lock_session lock, in one transaction.
INSERT INTO adk_events (app_name, user_id, session_id, seq, id, timestamp, event)
VALUES (:app_name, :user_id, :session_id, :seq, :event_id, :timestamp, :event::json)

-- name: advance_session!
-- The session's state, revision and update time after one event (see insert_event).
UPDATE adk_sessions
SET state = state || :session_delta::jsonb, revision = :seq, update_time = :update_time
WHERE app_name = :app_name AND user_id = :user_id AND id = :session_id
