"""The floor: the minimal correct append transaction, written directly on asyncpg and aiosqlite.

It runs on the library's own tables (the migration scripts in ``sql/<dialect>/migrations`` are
applied verbatim), so the floor and the library pay for the same rows and indexes. The append is
the textbook transaction, one statement per step: ``BEGIN`` (SQLite: ``BEGIN IMMEDIATE``), lock
the session row and check its revision, insert the event, merge the app/user scopes when the
delta has such keys, update the session's state/revision/update time, ``COMMIT``. Reads are one
query each, decoded to plain dicts (no models), which is as little as a reader can do.

The SQL lives here rather than in ``sql/``: it is the benchmark's yardstick, not library code,
and must not change when the library's queries do.
"""

from __future__ import annotations

import contextlib
import json
import pathlib
from collections.abc import Sequence
from typing import Any

import aiosqlite
import anyio
import asyncpg
import attrs

__all__ = (
    "SQLITE_SYNCHRONOUS",
    "FloorSession",
    "PostgresFloor",
    "SqliteFloor",
    "split_delta",
    "sqlite_pragmas",
)

_SQL_ROOT = pathlib.Path(__file__).resolve().parent.parent / "sql"


def migration_scripts(dialect: str) -> list[str]:
    """Return the library's migration scripts for a dialect, in order.

    Args:
        dialect: ``"postgres"`` or ``"sqlite"``.

    Returns:
        The text of every ``sql/<dialect>/migrations/*.sql``.
    """
    folder = _SQL_ROOT / dialect / "migrations"
    return [p.read_text(encoding="utf-8") for p in sorted(folder.glob("*.sql"))]


def split_delta(delta: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """Split a state delta into (app, user, session) scopes, prefixes stripped, temp keys dropped.

    Args:
        delta: An event's ``state_delta``.

    Returns:
        Three dicts.
    """
    app: dict[str, Any] = {}
    user: dict[str, Any] = {}
    session: dict[str, Any] = {}
    for key, value in delta.items():
        if key.startswith("app:"):
            app[key[4:]] = value
        elif key.startswith("user:"):
            user[key[5:]] = value
        elif not key.startswith("temp:"):
            session[key] = value
    return app, user, session


@attrs.define
class FloorSession:
    """The floor's handle of a session: its key and the revision the caller last saw."""

    app_name: str
    user_id: str
    id: str
    revision: int = 0


class StaleError(Exception):
    """The floor's stale-session error."""


# --- PostgreSQL ------------------------------------------------------------------------------

_PG_CREATE = """
INSERT INTO adk_sessions (app_name, user_id, id, state, create_time, update_time, revision)
VALUES ($1, $2, $3, $4::jsonb, $5, $5, 0)
"""
_PG_LOCK = """
SELECT revision FROM adk_sessions WHERE app_name = $1 AND user_id = $2 AND id = $3 FOR UPDATE
"""
_PG_INSERT_EVENT = """
INSERT INTO adk_events (app_name, user_id, session_id, seq, id, timestamp, event)
VALUES ($1, $2, $3, $4, $5, $6, $7::json)
"""
_PG_APP = """
INSERT INTO adk_app_states AS a (app_name, state, update_time) VALUES ($1, $2::jsonb, $3)
ON CONFLICT (app_name) DO UPDATE SET state = a.state || EXCLUDED.state, update_time = $3
"""
_PG_USER = """
INSERT INTO adk_user_states AS u (app_name, user_id, state, update_time)
VALUES ($1, $2, $3::jsonb, $4)
ON CONFLICT (app_name, user_id) DO UPDATE SET state = u.state || EXCLUDED.state, update_time = $4
"""
_PG_UPDATE = """
UPDATE adk_sessions SET state = state || $4::jsonb, revision = $5,
       update_time = greatest(update_time, $6)
WHERE app_name = $1 AND user_id = $2 AND id = $3
"""
_PG_GET = """
SELECT s.state, s.update_time, s.revision,
       (SELECT a.state FROM adk_app_states a WHERE a.app_name = s.app_name) AS app_state,
       (SELECT u.state FROM adk_user_states u
         WHERE u.app_name = s.app_name AND u.user_id = s.user_id) AS user_state
FROM adk_sessions s WHERE s.app_name = $1 AND s.user_id = $2 AND s.id = $3
"""
_PG_EVENTS = """
SELECT event FROM adk_events WHERE app_name = $1 AND user_id = $2 AND session_id = $3
ORDER BY seq DESC LIMIT $4
"""
_PG_LIST = """
SELECT user_id, id, state, update_time, revision FROM adk_sessions
WHERE app_name = $1 AND user_id = $2 ORDER BY update_time, id
"""


def _merge(state: Any, app: Any, user: Any) -> dict[str, Any]:
    merged: dict[str, Any] = json.loads(state)
    for prefix, scope in (("app:", app), ("user:", user)):
        if scope is not None:
            merged.update({prefix + k: v for k, v in json.loads(scope).items()})
    return merged


class PostgresFloor:
    """The floor on an asyncpg pool."""

    def __init__(self, dsn: str, pool_size: int) -> None:
        """Remember where to connect.

        Args:
            dsn: A DSN of an empty database.
            pool_size: Connections in the pool.
        """
        self._dsn = dsn
        self._pool_size = pool_size
        self._pool: asyncpg.Pool | None = None

    @property
    def pool(self) -> asyncpg.Pool:
        """The pool (after :meth:`open`)."""
        assert self._pool is not None
        return self._pool

    async def open(self) -> None:
        """Create the schema and the pool."""
        conn = await asyncpg.connect(self._dsn)
        try:
            for script in migration_scripts("postgres"):
                await conn.execute(script)
        finally:
            await conn.close()
        self._pool = await asyncpg.create_pool(self._dsn, min_size=1, max_size=self._pool_size)

    async def close(self) -> None:
        """Close the pool."""
        if self._pool is not None:
            await self._pool.close()

    async def create_session(
        self, app_name: str, user_id: str, session_id: str, state: dict[str, Any], now: float
    ) -> FloorSession:
        """Insert a session row.

        Returns:
            The handle.
        """
        await self.pool.execute(_PG_CREATE, app_name, user_id, session_id, json.dumps(state), now)
        return FloorSession(app_name, user_id, session_id)

    async def append(self, s: FloorSession, event: dict[str, Any]) -> None:
        """Append one event in the textbook transaction.

        Args:
            s: The session handle; its revision advances after the commit.
            event: The event in JSON form.

        Raises:
            StaleError: The stored revision is not the handle's.
        """
        app, user, session = split_delta(event["actions"]["state_delta"])
        ts = event["timestamp"]
        key = (s.app_name, s.user_id, s.id)
        async with self.pool.acquire() as conn:
            await conn.execute("BEGIN")
            try:
                revision = await conn.fetchval(_PG_LOCK, *key)
                if revision != s.revision:
                    raise StaleError(s.id)
                seq = revision + 1
                await conn.execute(_PG_INSERT_EVENT, *key, seq, event["id"], ts, json.dumps(event))
                if app:
                    await conn.execute(_PG_APP, s.app_name, json.dumps(app), ts)
                if user:
                    await conn.execute(_PG_USER, s.app_name, s.user_id, json.dumps(user), ts)
                await conn.execute(_PG_UPDATE, *key, json.dumps(session), seq, ts)
                await conn.execute("COMMIT")
            except BaseException:
                with anyio.move_on_after(5, shield=True):
                    await conn.execute("ROLLBACK")
                raise
        s.revision = seq

    async def get(self, s: FloorSession, recent: int | None) -> tuple[dict[str, Any], list[Any]]:
        """Read the merged state and the last ``recent`` events (all when ``None``).

        Returns:
            ``(state, events)``.
        """
        key = (s.app_name, s.user_id, s.id)
        async with self.pool.acquire() as conn:
            await conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            try:
                row = await conn.fetchrow(_PG_GET, *key)
                rows = await conn.fetch(_PG_EVENTS, *key, recent)
            finally:
                await conn.execute("COMMIT")
        assert row is not None
        events = [json.loads(r[0]) for r in reversed(rows)]
        return _merge(row[0], row[3], row[4]), events

    async def list(self, app_name: str, user_id: str) -> list[dict[str, Any]]:
        """List one user's sessions with their session state.

        Returns:
            One dict per session.
        """
        rows = await self.pool.fetch(_PG_LIST, app_name, user_id)
        return [
            {"id": r[1], "state": json.loads(r[2]), "update_time": r[3], "revision": r[4]}
            for r in rows
        ]

    async def bulk_events(self, s: FloorSession, events: Sequence[dict[str, Any]]) -> None:
        """Load a history with COPY (setup only, not measured).

        Args:
            s: A session with no events yet.
            events: Events in JSON form.
        """
        records = [
            (s.app_name, s.user_id, s.id, i, e["id"], e["timestamp"], json.dumps(e))
            for i, e in enumerate(events, start=s.revision + 1)
        ]
        await bulk_load_postgres(self.pool, s, records)
        s.revision += len(records)


async def bulk_load_postgres(pool: asyncpg.Pool, s: Any, records: list[tuple[Any, ...]]) -> None:
    """COPY event rows into ``adk_events`` and move the session's revision on.

    Args:
        pool: A pool on the database.
        s: An object with ``app_name``, ``user_id``, ``id``.
        records: Rows of (app_name, user_id, session_id, seq, id, timestamp, event JSON).
    """
    async with pool.acquire() as conn, conn.transaction():
        await conn.copy_records_to_table(
            "adk_events",
            records=records,
            columns=["app_name", "user_id", "session_id", "seq", "id", "timestamp", "event"],
        )
        await conn.execute(
            "UPDATE adk_sessions SET revision = revision + $4 "
            "WHERE app_name = $1 AND user_id = $2 AND id = $3",
            s.app_name,
            s.user_id,
            s.id,
            len(records),
        )
        await conn.execute("ANALYZE adk_events")
    # Flush the load to disk now, so no measured commit shares the disk with its write-back.
    async with pool.acquire() as conn:
        # Not a superuser (--pg-dsn): the load is flushed in the background instead.
        with contextlib.suppress(asyncpg.PostgresError):
            await conn.execute("CHECKPOINT")


# --- SQLite ----------------------------------------------------------------------------------

SQLITE_SYNCHRONOUS = ["NORMAL"]
"""The ``synchronous`` level every SQLite contender runs at (``--sqlite-synchronous``)."""


def sqlite_pragmas() -> tuple[str, ...]:
    """Return the pragmas every SQLite contender's connections get.

    Returns:
        WAL, the chosen ``synchronous`` level, foreign keys on.
    """
    return (
        "PRAGMA journal_mode=WAL",
        f"PRAGMA synchronous={SQLITE_SYNCHRONOUS[0]}",
        "PRAGMA foreign_keys=ON",
    )


_SL_CREATE = """
INSERT INTO adk_sessions (app_name, user_id, id, state, create_time, update_time, revision)
VALUES (?, ?, ?, ?, ?, ?, 0)
"""
_SL_LOCK = "SELECT revision FROM adk_sessions WHERE app_name = ? AND user_id = ? AND id = ?"
_SL_INSERT_EVENT = """
INSERT INTO adk_events (app_name, user_id, session_id, seq, id, timestamp, event)
VALUES (?, ?, ?, ?, ?, ?, ?)
"""
_SL_APP = """
INSERT INTO adk_app_states AS a (app_name, state, update_time) VALUES (?1, ?2, ?3)
ON CONFLICT (app_name) DO UPDATE SET state = json_patch(a.state, ?2), update_time = ?3
"""
_SL_USER = """
INSERT INTO adk_user_states AS u (app_name, user_id, state, update_time) VALUES (?1, ?2, ?3, ?4)
ON CONFLICT (app_name, user_id) DO UPDATE SET state = json_patch(u.state, ?3), update_time = ?4
"""
_SL_UPDATE = """
UPDATE adk_sessions SET state = json_patch(state, ?4), revision = ?5,
       update_time = max(update_time, ?6)
WHERE app_name = ?1 AND user_id = ?2 AND id = ?3
"""
_SL_GET = _PG_GET.replace("$1", "?1").replace("$2", "?2").replace("$3", "?3")
_SL_EVENTS = """
SELECT event FROM adk_events WHERE app_name = ? AND user_id = ? AND session_id = ?
ORDER BY seq DESC LIMIT ?
"""
_SL_LIST = """
SELECT user_id, id, state, update_time, revision FROM adk_sessions
WHERE app_name = ? AND user_id = ? ORDER BY update_time, id
"""


class SqliteFloor:
    """The floor on one aiosqlite connection, transactions serialised by one lock.

    ``json_patch`` merges the scopes server-side; it differs from a shallow update for ``null``
    and nested objects, which the benchmark's deltas never contain.
    """

    def __init__(self, path: str) -> None:
        """Remember the file.

        Args:
            path: A database file that does not exist yet.
        """
        self._path = path
        self._conn: aiosqlite.Connection | None = None
        self._lock = anyio.Lock()

    @property
    def conn(self) -> aiosqlite.Connection:
        """The connection (after :meth:`open`)."""
        assert self._conn is not None
        return self._conn

    async def open(self) -> None:
        """Open the file with the benchmark's pragmas and create the schema."""
        self._conn = await aiosqlite.connect(self._path, isolation_level=None)
        for pragma in sqlite_pragmas():
            await self._conn.execute(pragma)
        for script in migration_scripts("sqlite"):
            await self._conn.executescript(script)

    async def close(self) -> None:
        """Close the connection."""
        if self._conn is not None:
            await self._conn.close()

    async def create_session(
        self, app_name: str, user_id: str, session_id: str, state: dict[str, Any], now: float
    ) -> FloorSession:
        """Insert a session row.

        Returns:
            The handle.
        """
        async with self._lock:
            await self.conn.execute(
                _SL_CREATE, (app_name, user_id, session_id, json.dumps(state), now, now)
            )
        return FloorSession(app_name, user_id, session_id)

    async def append(self, s: FloorSession, event: dict[str, Any]) -> None:
        """Append one event in the textbook transaction.

        Args:
            s: The session handle; its revision advances after the commit.
            event: The event in JSON form.

        Raises:
            StaleError: The stored revision is not the handle's.
        """
        app, user, session = split_delta(event["actions"]["state_delta"])
        ts = event["timestamp"]
        key = (s.app_name, s.user_id, s.id)
        conn = self.conn
        async with self._lock:
            await conn.execute("BEGIN IMMEDIATE")
            try:
                async with conn.execute(_SL_LOCK, key) as cur:
                    row = await cur.fetchone()
                if row is None or row[0] != s.revision:
                    raise StaleError(s.id)
                seq = row[0] + 1
                await conn.execute(
                    _SL_INSERT_EVENT, (*key, seq, event["id"], ts, json.dumps(event))
                )
                if app:
                    await conn.execute(_SL_APP, (s.app_name, json.dumps(app), ts))
                if user:
                    await conn.execute(_SL_USER, (s.app_name, s.user_id, json.dumps(user), ts))
                await conn.execute(_SL_UPDATE, (*key, json.dumps(session), seq, ts))
                await conn.execute("COMMIT")
            except BaseException:
                with anyio.move_on_after(5, shield=True):
                    await conn.execute("ROLLBACK")
                raise
        s.revision = seq

    async def get(self, s: FloorSession, recent: int | None) -> tuple[dict[str, Any], list[Any]]:
        """Read the merged state and the last ``recent`` events (all when ``None``).

        Returns:
            ``(state, events)``.
        """
        key = (s.app_name, s.user_id, s.id)
        async with self._lock:
            await self.conn.execute("BEGIN")
            try:
                async with self.conn.execute(_SL_GET, key) as cur:
                    row = await cur.fetchone()
                async with self.conn.execute(
                    _SL_EVENTS, (*key, -1 if recent is None else recent)
                ) as cur:
                    rows = await cur.fetchall()
            finally:
                await self.conn.execute("COMMIT")
        assert row is not None
        events = [json.loads(r[0]) for r in reversed(list(rows))]
        return _merge(row[0], row[3], row[4]), events

    async def list(self, app_name: str, user_id: str) -> list[dict[str, Any]]:
        """List one user's sessions with their session state.

        Returns:
            One dict per session.
        """
        async with self._lock, self.conn.execute(_SL_LIST, (app_name, user_id)) as cur:
            rows = await cur.fetchall()
        return [
            {"id": r[1], "state": json.loads(r[2]), "update_time": r[3], "revision": r[4]}
            for r in rows
        ]

    async def bulk_events(self, s: FloorSession, events: Sequence[dict[str, Any]]) -> None:
        """Load a history with executemany in one transaction (setup only, not measured).

        Args:
            s: A session.
            events: Events in JSON form.
        """
        records = [
            (s.app_name, s.user_id, s.id, i, e["id"], e["timestamp"], json.dumps(e))
            for i, e in enumerate(events, start=s.revision + 1)
        ]
        async with self._lock:
            await bulk_load_sqlite(self.conn, s, records)
        s.revision += len(records)


async def bulk_load_sqlite(
    conn: aiosqlite.Connection, s: Any, records: list[tuple[Any, ...]]
) -> None:
    """Insert event rows into ``adk_events`` in one transaction and move the revision on.

    Args:
        conn: A connection in autocommit mode (``isolation_level=None``).
        s: An object with ``app_name``, ``user_id``, ``id``.
        records: Rows of (app_name, user_id, session_id, seq, id, timestamp, event JSON).
    """
    await conn.execute("BEGIN IMMEDIATE")
    await conn.executemany(_SL_INSERT_EVENT, records)
    await conn.execute(
        "UPDATE adk_sessions SET revision = revision + ? WHERE app_name = ? AND user_id = ? "
        "AND id = ?",
        (len(records), s.app_name, s.user_id, s.id),
    )
    await conn.execute("COMMIT")
    await conn.execute("ANALYZE")
    # Fold the load into the database file now, so no measured commit pays for its checkpoint.
    await conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
