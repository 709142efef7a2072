-- Initial schema. Tables are prefixed adk_ so they never collide with google-adk's own tables.
-- Text keys use the "C" collation: byte order, the same order SQLite's BINARY collation gives.

CREATE TABLE adk_app_states (
    app_name    TEXT COLLATE "C" PRIMARY KEY,
    state       JSONB NOT NULL DEFAULT '{}',
    update_time DOUBLE PRECISION NOT NULL
);

CREATE TABLE adk_user_states (
    app_name    TEXT COLLATE "C" NOT NULL,
    user_id     TEXT COLLATE "C" NOT NULL,
    state       JSONB NOT NULL DEFAULT '{}',
    update_time DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (app_name, user_id)
);

-- revision: the optimistic-concurrency token, equal to the number of stored events.
CREATE TABLE adk_sessions (
    app_name    TEXT COLLATE "C" NOT NULL,
    user_id     TEXT COLLATE "C" NOT NULL,
    id          TEXT COLLATE "C" NOT NULL,
    state       JSONB NOT NULL DEFAULT '{}',
    create_time DOUBLE PRECISION NOT NULL,
    update_time DOUBLE PRECISION NOT NULL,
    revision    BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (app_name, user_id, id)
);

-- Keyset pagination of an app's sessions, and of one user's sessions.
CREATE INDEX adk_sessions_by_app_update ON adk_sessions (app_name, update_time, user_id, id);
CREATE INDEX adk_sessions_by_user_update ON adk_sessions (app_name, user_id, update_time, id);

-- seq: the per-session append order (1, 2, ...); the primary key serves "last N events".
-- event: the whole event in google-adk's JSON form, stored verbatim (json, not jsonb).
CREATE TABLE adk_events (
    app_name   TEXT COLLATE "C" NOT NULL,
    user_id    TEXT COLLATE "C" NOT NULL,
    session_id TEXT COLLATE "C" NOT NULL,
    seq        BIGINT NOT NULL,
    id         TEXT COLLATE "C" NOT NULL,
    timestamp  DOUBLE PRECISION NOT NULL,
    event      JSON NOT NULL,
    PRIMARY KEY (app_name, user_id, session_id, seq),
    CONSTRAINT adk_events_unique_id UNIQUE (app_name, user_id, session_id, id),
    CONSTRAINT adk_events_session FOREIGN KEY (app_name, user_id, session_id)
        REFERENCES adk_sessions (app_name, user_id, id) ON DELETE CASCADE
);
