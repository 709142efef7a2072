-- Initial schema. Tables are prefixed adk_ so they never collide with google-adk's own tables.
-- JSON is stored as TEXT; text keys compare with BINARY collation (byte order).

CREATE TABLE adk_app_states (
    app_name    TEXT PRIMARY KEY,
    state       TEXT NOT NULL DEFAULT '{}',
    update_time REAL NOT NULL
);

CREATE TABLE adk_user_states (
    app_name    TEXT NOT NULL,
    user_id     TEXT NOT NULL,
    state       TEXT NOT NULL DEFAULT '{}',
    update_time REAL NOT NULL,
    PRIMARY KEY (app_name, user_id)
);

-- revision: the optimistic-concurrency token, equal to the number of stored events.
CREATE TABLE adk_sessions (
    app_name    TEXT NOT NULL,
    user_id     TEXT NOT NULL,
    id          TEXT NOT NULL,
    state       TEXT NOT NULL DEFAULT '{}',
    create_time REAL NOT NULL,
    update_time REAL NOT NULL,
    revision    INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (app_name, user_id, id)
);

-- Keyset pagination of an app's sessions, and of one user's sessions.
CREATE INDEX adk_sessions_by_app_update ON adk_sessions (app_name, update_time, user_id, id);
CREATE INDEX adk_sessions_by_user_update ON adk_sessions (app_name, user_id, update_time, id);

-- seq: the per-session append order (1, 2, ...); the primary key serves "last N events".
-- event: the whole event in google-adk's JSON form, stored verbatim.
CREATE TABLE adk_events (
    app_name   TEXT NOT NULL,
    user_id    TEXT NOT NULL,
    session_id TEXT NOT NULL,
    seq        INTEGER NOT NULL,
    id         TEXT NOT NULL,
    timestamp  REAL NOT NULL,
    event      TEXT NOT NULL,
    PRIMARY KEY (app_name, user_id, session_id, seq),
    CONSTRAINT adk_events_unique_id UNIQUE (app_name, user_id, session_id, id),
    CONSTRAINT adk_events_session FOREIGN KEY (app_name, user_id, session_id)
        REFERENCES adk_sessions (app_name, user_id, id) ON DELETE CASCADE
) WITHOUT ROWID;
