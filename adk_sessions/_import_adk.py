"""``adk-sessions import-adk``: copy a google-adk session database into an adk_sessions one.

Sources: google-adk's ``DatabaseSessionService`` (schema v1, and the legacy schema v0 that
databases created by google-adk 1.19-1.21 keep; on PostgreSQL or SQLite) and its
``SqliteSessionService``, as written by every google-adk release from 1.28 on. Every app state,
user state, session and event is copied; the source is only read (SQLite opened read-only,
PostgreSQL in a ``READ ONLY`` transaction), from one snapshot (``REPEATABLE READ`` on PostgreSQL;
on SQLite a read transaction, during which writers to the source wait, so run the import while
the agents are stopped). Reruns copy nothing twice: a session that exists in the target is
skipped.

App and user state never silently replace what the target holds. Before anything is written,
every app and user scope of the source is compared with the target's: a key the target holds
with another value is a conflict, and by default the import refuses to start, naming the
conflicts. ``on_state_conflict="overwrite"`` (``--overwrite-state``) lets the source's values
win; ``"keep"`` (``--keep-state``) keeps the target's. Either way keys the target lacks are added,
and keys only the target has are left alone (scopes are merged key by key, never replaced).

Why this module holds SQL (the codebase otherwise keeps all SQL in ``sql/<dialect>/*.sql``): the
statements read google-adk's schema, not ours; they differ between the four source layouts (a
``DATETIME`` text column, a ``REAL`` column or a PostgreSQL ``timestamp``, which column breaks
ties between events, an event as one JSON column or one column per field), so they are not "the
same query per dialect"; and ``sql/<dialect>/`` is loaded whole into the service's typed query
set, which must not hold queries for a foreign schema. The queries are short, read-only, and
listed together below.

Schema v0 stores each event's actions as a pickled google-adk ``EventActions``: reading it needs
google-adk (the ``[adk]`` extra) and goes through a restricted unpickler that resolves data types
and google-adk's models only (``adk_sessions._adk_compat.legacy_event``).
"""

from __future__ import annotations

import abc
import argparse
import datetime
import json
import sqlite3
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import IO, Any, Literal, Protocol

import aiosqlite
import anyio
import asyncpg
import attrs

import adk_sessions

from ._connect import redact
from ._dialects import parse_url
from ._models import Event
from ._progress import bar
from .errors import AdkSessionsError, InvalidArgumentError, SessionExistsError, StorageError

__all__ = (
    "ImportCounts",
    "StateConflictError",
    "add_import_parser",
    "holds_google_adk_tables",
    "import_adk",
    "run_import",
)

OnStateConflict = Literal["refuse", "overwrite", "keep"]

_PAGE = 200

# -- google-adk's schema, read-only. ``?``/``$n`` are the drivers' own parameter styles. -------

_SQLITE_HAS_TABLE = "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?"
_SQLITE_EVENT_COLUMNS = "SELECT name FROM pragma_table_info('events')"
_SQLITE_COUNTS = (
    "SELECT (SELECT count(*) FROM app_states), (SELECT count(*) FROM user_states),"
    " (SELECT count(*) FROM sessions)"
)
_SQLITE_APP_STATES = "SELECT app_name, state FROM app_states ORDER BY app_name"
_SQLITE_USER_STATES = (
    "SELECT app_name, user_id, state FROM user_states"
    " WHERE (app_name, user_id) > (?, ?) ORDER BY app_name, user_id LIMIT ?"
)
_SQLITE_SESSIONS = (
    "SELECT app_name, user_id, id, state, update_time FROM sessions"
    " WHERE (app_name, user_id, id) > (?, ?, ?) ORDER BY app_name, user_id, id LIMIT ?"
)
# DatabaseSessionService orders tied timestamps by event id, SqliteSessionService by rowid.
_SQLITE_EVENTS = (
    "SELECT id, invocation_id, timestamp, event_data FROM events"
    " WHERE app_name = ? AND user_id = ? AND session_id = ? ORDER BY timestamp, {tiebreak}"
)
# Schema v0: one column per event field (JSON columns are TEXT on SQLite, JSONB on PostgreSQL).
_V0_JSON_COLUMNS = (
    "content",
    "grounding_metadata",
    "custom_metadata",
    "usage_metadata",
    "citation_metadata",
    "input_transcription",
    "output_transcription",
)
_V0_FLAG_COLUMNS = ("partial", "turn_complete", "interrupted")
_V0_COLUMNS = (
    "id",
    "invocation_id",
    "author",
    "branch",
    "timestamp",
    "actions",
    "long_running_tool_ids_json",
    "error_code",
    "error_message",
    *_V0_FLAG_COLUMNS,
    *_V0_JSON_COLUMNS,
)
_SQLITE_V0_EVENTS = (
    f"SELECT {', '.join(_V0_COLUMNS)} FROM events"
    " WHERE app_name = ? AND user_id = ? AND session_id = ? ORDER BY timestamp, id"
)

_PG_HAS_METADATA = "SELECT to_regclass('adk_internal_metadata') IS NOT NULL"
_PG_SCHEMA_VERSION = "SELECT value FROM adk_internal_metadata WHERE key = 'schema_version'"
_PG_HAS_TABLES = "SELECT to_regclass('sessions') IS NOT NULL AND to_regclass('events') IS NOT NULL"
_PG_EVENT_COLUMNS = (
    "SELECT column_name FROM information_schema.columns"
    " WHERE table_name = 'events' AND table_schema = current_schema()"
)
_PG_COUNTS = (
    "SELECT (SELECT count(*) FROM app_states), (SELECT count(*) FROM user_states),"
    " (SELECT count(*) FROM sessions)"
)
_PG_APP_STATES = "SELECT app_name, state::text FROM app_states ORDER BY app_name"
_PG_USER_STATES = (
    "SELECT app_name, user_id, state::text FROM user_states"
    " WHERE (app_name, user_id) > ($1, $2) ORDER BY app_name, user_id LIMIT $3"
)
_PG_SESSIONS = (
    "SELECT app_name, user_id, id, state::text, update_time FROM sessions"
    " WHERE (app_name, user_id, id) > ($1, $2, $3) ORDER BY app_name, user_id, id LIMIT $4"
)
_PG_EVENTS = (
    "SELECT id, invocation_id, timestamp, event_data::text FROM events"
    " WHERE app_name = $1 AND user_id = $2 AND session_id = $3 ORDER BY timestamp, id"
)
_PG_V0_EVENTS = (
    "SELECT "
    + ", ".join(f"{c}::text" if c in _V0_JSON_COLUMNS else c for c in _V0_COLUMNS)
    + " FROM events"
    " WHERE app_name = $1 AND user_id = $2 AND session_id = $3 ORDER BY timestamp, id"
)


@attrs.frozen(kw_only=True)
class ImportCounts:
    """What :func:`import_adk` copied.

    Attributes:
        app_states: App scopes written.
        user_states: User scopes written.
        sessions: Sessions created.
        events: Events copied (with the sessions created).
        skipped_sessions: Sessions that already existed in the target (not touched).
        overwritten_values: State values of the target replaced by the source's (only with
            ``on_state_conflict="overwrite"``).
        kept_values: State values of the target kept although the source had others (only
            with ``on_state_conflict="keep"``).
    """

    app_states: int = 0
    user_states: int = 0
    sessions: int = 0
    events: int = 0
    skipped_sessions: int = 0
    overwritten_values: int = 0
    kept_values: int = 0

    def summary(self) -> str:
        """Return the one-line summary the command prints.

        Returns:
            E.g. ``imported 1 app state, 2 user states, 3 sessions, 40 events; skipped 0 ...``.
        """

        def n(count: int, noun: str) -> str:
            return f"{count} {noun}{'' if count == 1 else 's'}"

        line = (
            f"imported {n(self.app_states, 'app state')}, {n(self.user_states, 'user state')}, "
            f"{n(self.sessions, 'session')}, {n(self.events, 'event')}; "
            f"skipped {n(self.skipped_sessions, 'existing session')}"
        )
        if self.overwritten_values:
            line += f"; overwrote {n(self.overwritten_values, 'state value')} of the target"
        if self.kept_values:
            line += f"; kept {n(self.kept_values, 'state value')} of the target"
        return line


@attrs.frozen(kw_only=True)
class _Conflict:
    """A state key both databases hold, with different values."""

    scope: str
    key: str
    target: Any
    source: Any


class StateConflictError(InvalidArgumentError):
    """The target's app or user state holds other values than the source's for some keys.

    Nothing was written. Attributes:
        conflicts: ``(scope, key, target value, source value)`` for each conflicting key.
    """

    def __init__(self, conflicts: list[_Conflict]) -> None:
        self.conflicts = [(c.scope, c.key, c.target, c.source) for c in conflicts]
        shown = "; ".join(
            f"{c.scope} {c.key!r}: {c.target!r} in the target, {c.source!r} in the source"
            for c in conflicts[:5]
        )
        more = f" and {len(conflicts) - 5} more" if len(conflicts) > 5 else ""
        super().__init__(
            f"the target already holds other values for {len(conflicts)} state key(s): "
            f"{shown}{more}. Nothing was written. Choose which values win: --overwrite-state "
            "(the source's) or --keep-state (the target's); in Python "
            'on_state_conflict="overwrite" or "keep"'
        )


@attrs.frozen(kw_only=True)
class _SourceSession:
    app_name: str
    user_id: str
    id: str
    state: dict[str, Any]
    update_time: float


class _Source(abc.ABC):
    """Read access to one google-adk database."""

    @abc.abstractmethod
    async def counts(self) -> tuple[int, int, int]:
        """Numbers of app states, user states and sessions."""

    @abc.abstractmethod
    async def app_states(self) -> list[tuple[str, dict[str, Any]]]:
        """Every app scope."""

    @abc.abstractmethod
    async def user_states(self, after: tuple[str, str]) -> list[tuple[str, str, dict[str, Any]]]:
        """A page of user scopes after the (app, user) cursor."""

    @abc.abstractmethod
    async def sessions(self, after: tuple[str, str, str]) -> list[_SourceSession]:
        """A page of sessions after the (app, user, id) cursor."""

    @abc.abstractmethod
    async def events(self, session: _SourceSession) -> list[Event]:
        """The session's events in google-adk's order."""

    @abc.abstractmethod
    async def close(self) -> None:
        """End the read transaction and disconnect."""


def _epoch(value: Any) -> float:
    """Epoch seconds from a REAL, a naive-UTC datetime, or SQLAlchemy's SQLite datetime text."""
    if isinstance(value, (int, float)):
        return float(value)
    moment = datetime.datetime.fromisoformat(value) if isinstance(value, str) else value
    if isinstance(moment, datetime.datetime):
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=datetime.timezone.utc)
        return moment.timestamp()
    raise InvalidArgumentError(f"unreadable timestamp in the source database: {value!r}")


def _source_session(row: Any) -> _SourceSession:
    """A session row (app_name, user_id, id, state, update_time) of either source layout."""
    return _SourceSession(
        app_name=row[0],
        user_id=row[1],
        id=row[2],
        state=_state(row[3]),
        update_time=_epoch(row[4]),
    )


def _json(text: Any) -> Any:
    try:
        return json.loads(text) if isinstance(text, (str, bytes)) else text
    except ValueError as exc:
        raise InvalidArgumentError(f"unreadable JSON in the source database: {exc}") from exc


def _state(text: Any) -> dict[str, Any]:
    if text is None:
        return {}
    value = _json(text)
    if not isinstance(value, dict):
        raise InvalidArgumentError("a state in the source database is not a JSON object")
    return value


def _event(event_id: str, invocation_id: str, timestamp: Any, data: Any) -> Event:
    """google-adk's reading rule: columns win for id and invocation, the payload for the time."""
    payload = _state(data)
    stamp = payload.get("timestamp")
    return Event.from_dict(
        {
            **payload,
            "id": event_id,
            "invocation_id": invocation_id,
            "timestamp": _epoch(timestamp) if stamp is None else stamp,
        }
    )


_LegacyReader = Callable[[Mapping[str, Any], "bytes | None"], Event]


def _legacy_reader(where: str) -> _LegacyReader:
    """The schema-v0 event reader, which needs google-adk to unpickle the actions."""
    try:
        from . import _adk_compat
        from .adk import from_adk_event
    except ImportError as exc:
        raise InvalidArgumentError(
            f"{where} uses google-adk's legacy schema (v0), whose event actions are pickled "
            "google-adk objects: install google-adk to read it "
            "(pip install 'adk-sessions[adk]')"
        ) from exc

    def read(columns: Mapping[str, Any], actions: bytes | None) -> Event:
        return from_adk_event(_adk_compat.legacy_event(columns, actions))

    return read


def _legacy_event(read: _LegacyReader, session: _SourceSession, row: Sequence[Any]) -> Event:
    """A schema-v0 event row (columns in ``_V0_COLUMNS`` order), as google-adk reads it."""
    values = dict(zip(_V0_COLUMNS, row, strict=True))
    columns = {
        name: values[name]
        for name in ("id", "invocation_id", "author", "branch", "error_code", "error_message")
    }
    columns["timestamp"] = _epoch(values["timestamp"])
    tool_ids = values["long_running_tool_ids_json"]
    columns["long_running_tool_ids"] = _json(tool_ids) if tool_ids else []
    for name in _V0_FLAG_COLUMNS:
        columns[name] = None if values[name] is None else bool(values[name])
    for name in _V0_JSON_COLUMNS:
        columns[name] = None if values[name] is None else _json(values[name])
    try:
        return read(columns, None if values["actions"] is None else bytes(values["actions"]))
    except Exception as exc:  # a refused or broken pickle, or fields google-adk rejects
        raise InvalidArgumentError(
            f"unreadable event {values['id']!r} of session {session.id!r} (google-adk schema "
            f"v0): {type(exc).__name__}: {exc}"
        ) from exc


class _SqliteSource(_Source):
    def __init__(self, conn: aiosqlite.Connection, tiebreak: str, legacy: _LegacyReader | None):
        self._conn = conn
        self._legacy = legacy
        self._events_sql = _SQLITE_V0_EVENTS if legacy else _SQLITE_EVENTS.format(tiebreak=tiebreak)

    @classmethod
    async def open(cls, path: str) -> _SqliteSource:
        file = anyio.Path(path)
        if not await file.is_file():
            raise InvalidArgumentError(f"no SQLite database at {path!r}")
        location = (await file.resolve()).as_uri() + "?mode=ro"
        try:
            conn = await aiosqlite.connect(location, uri=True)
        except Exception as exc:
            raise StorageError(f"cannot open {path!r} read-only: {exc}") from exc
        try:
            for table in ("sessions", "events", "app_states", "user_states"):
                if await (await conn.execute(_SQLITE_HAS_TABLE, (table,))).fetchone() is None:
                    raise InvalidArgumentError(
                        f"{path!r} is not a google-adk session database (no {table} table)"
                    )
            columns = {row[0] for row in await conn.execute_fetchall(_SQLITE_EVENT_COLUMNS)}
            by_service = await (
                await conn.execute(_SQLITE_HAS_TABLE, ("adk_internal_metadata",))
            ).fetchone()
            legacy = None
            if "event_data" not in columns:
                if by_service or "actions" not in columns:
                    raise InvalidArgumentError(
                        f"{path!r} is not a google-adk session database (unknown events table)"
                    )
                legacy = _legacy_reader(repr(path))
            await conn.execute("BEGIN")
        except BaseException:
            await conn.close()
            raise
        return cls(conn, "id" if by_service else "rowid", legacy)

    async def counts(self) -> tuple[int, int, int]:
        row = await (await self._conn.execute(_SQLITE_COUNTS)).fetchone()
        assert row is not None
        return int(row[0]), int(row[1]), int(row[2])

    async def app_states(self) -> list[tuple[str, dict[str, Any]]]:
        rows = await self._conn.execute_fetchall(_SQLITE_APP_STATES)
        return [(row[0], _state(row[1])) for row in rows]

    async def user_states(self, after: tuple[str, str]) -> list[tuple[str, str, dict[str, Any]]]:
        rows = await self._conn.execute_fetchall(_SQLITE_USER_STATES, (*after, _PAGE))
        return [(row[0], row[1], _state(row[2])) for row in rows]

    async def sessions(self, after: tuple[str, str, str]) -> list[_SourceSession]:
        rows = await self._conn.execute_fetchall(_SQLITE_SESSIONS, (*after, _PAGE))
        return [_source_session(row) for row in rows]

    async def events(self, session: _SourceSession) -> list[Event]:
        rows = await self._conn.execute_fetchall(
            self._events_sql, (session.app_name, session.user_id, session.id)
        )
        if self._legacy is not None:
            return [_legacy_event(self._legacy, session, row) for row in rows]
        return [_event(row[0], row[1], row[2], row[3]) for row in rows]

    async def close(self) -> None:
        with anyio.CancelScope(shield=True):
            try:
                await self._conn.rollback()
            finally:
                await self._conn.close()


class _PostgresSource(_Source):
    def __init__(self, conn: asyncpg.Connection, legacy: _LegacyReader | None) -> None:
        self._conn = conn
        self._legacy = legacy

    @classmethod
    async def open(cls, dsn: str) -> _PostgresSource:
        try:
            conn = await asyncpg.connect(dsn)
        except Exception as exc:
            raise StorageError(
                f"cannot connect to the source PostgreSQL database: {type(exc).__name__}"
            ) from exc
        try:
            await conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            if not await conn.fetchval(_PG_HAS_TABLES):
                raise InvalidArgumentError(
                    "the source is not a google-adk session database (no sessions/events tables)"
                )
            version = None
            if await conn.fetchval(_PG_HAS_METADATA):
                version = await conn.fetchval(_PG_SCHEMA_VERSION)
            legacy = None
            if version is None:
                columns = {row[0] for row in await conn.fetch(_PG_EVENT_COLUMNS)}
                if "actions" not in columns or "event_data" in columns:
                    raise InvalidArgumentError(
                        "the source is not a google-adk session database (unknown events table)"
                    )
                legacy = _legacy_reader("the source database")
            elif version != "1":
                raise InvalidArgumentError(
                    f"the source uses google-adk's schema v{version}; v0 and v1 are supported"
                )
        except BaseException:
            with anyio.CancelScope(shield=True):
                await conn.close()
            raise
        return cls(conn, legacy)

    async def counts(self) -> tuple[int, int, int]:
        row = await self._conn.fetchrow(_PG_COUNTS)
        assert row is not None
        return int(row[0]), int(row[1]), int(row[2])

    async def app_states(self) -> list[tuple[str, dict[str, Any]]]:
        rows = await self._conn.fetch(_PG_APP_STATES)
        return [(row[0], _state(row[1])) for row in rows]

    async def user_states(self, after: tuple[str, str]) -> list[tuple[str, str, dict[str, Any]]]:
        rows = await self._conn.fetch(_PG_USER_STATES, *after, _PAGE)
        return [(row[0], row[1], _state(row[2])) for row in rows]

    async def sessions(self, after: tuple[str, str, str]) -> list[_SourceSession]:
        rows = await self._conn.fetch(_PG_SESSIONS, *after, _PAGE)
        return [_source_session(row) for row in rows]

    async def events(self, session: _SourceSession) -> list[Event]:
        key = (session.app_name, session.user_id, session.id)
        if self._legacy is not None:
            rows = await self._conn.fetch(_PG_V0_EVENTS, *key)
            return [_legacy_event(self._legacy, session, row) for row in rows]
        rows = await self._conn.fetch(_PG_EVENTS, *key)
        return [_event(row[0], row[1], row[2], row[3]) for row in rows]

    async def close(self) -> None:
        with anyio.CancelScope(shield=True):
            try:
                await self._conn.execute("ROLLBACK")
            finally:
                await self._conn.close()


async def holds_google_adk_tables(url: str) -> bool:
    """Whether a database holds google-adk's own ``sessions`` and ``events`` tables.

    A read-only look, for hints (``adk-sessions status`` on a google-adk database): nothing is
    ever created, and a database that cannot be opened answers False.

    Args:
        url: A ``sqlite://`` or ``postgresql://`` URL (SQLAlchemy-style driver suffixes too).

    Returns:
        True when both tables exist.
    """
    try:
        parsed = parse_url(url)
    except InvalidArgumentError:
        return False
    if parsed is None:
        return False
    if parsed.dialect.name == "sqlite":
        path = parsed.location
        if path == ":memory:" or not await anyio.Path(path).is_file():
            return False
        try:
            uri = (await anyio.Path(path).resolve()).as_uri() + "?mode=ro"
            async with aiosqlite.connect(uri, uri=True) as conn:
                for table in ("sessions", "events"):
                    found = await (await conn.execute(_SQLITE_HAS_TABLE, (table,))).fetchone()
                    if found is None:
                        return False
        except sqlite3.Error:
            return False
        return True
    try:
        pg = await asyncpg.connect(parsed.location)
    except Exception:  # best effort: no hint
        return False
    try:
        return bool(await pg.fetchval(_PG_HAS_TABLES))
    except Exception:  # best effort: no hint
        return False
    finally:
        await pg.close()


async def _open_source(url: str) -> _Source:
    """Open a google-adk database given as a SQLAlchemy-style URL or a SQLite file path."""
    if "://" not in url:
        return await _SqliteSource.open(url)
    parsed = parse_url(url)
    if parsed is None:
        raise InvalidArgumentError(
            f"unsupported source URL {redact(url)!r}: use a sqlite:/// or postgresql:// URL"
        )
    if parsed.dialect.name == "sqlite":
        return await _SqliteSource.open(parsed.location)
    return await _PostgresSource.open(parsed.location)


class _Progress(Protocol):
    def __call__(self, done: int, total: int, events: int) -> None: ...


async def import_adk(
    source_url: str,
    target: str | adk_sessions.SessionService,
    *,
    progress: _Progress | None = None,
    on_state_conflict: OnStateConflict = "refuse",
) -> ImportCounts:
    """Copy a google-adk session database into an adk_sessions database, idempotently.

    Args:
        source_url: The google-adk database: ``sqlite:///path.db`` (``sqlite+aiosqlite`` too),
            a plain SQLite file path, or ``postgresql://...`` (``postgresql+asyncpg`` too).
        target: The adk_sessions database URL (migrated on connect), or an open core service.
        progress: Called after each session with (sessions done, sessions total, events copied).
        on_state_conflict: What to do when the target's app or user state holds another value
            for a key the source has: ``"refuse"`` (raise before writing anything),
            ``"overwrite"`` (the source's value wins) or ``"keep"`` (the target's value stays).
            Keys the target lacks are added in every case.

    Returns:
        The counts of what was written and skipped.

    Raises:
        StateConflictError: Conflicting state with ``on_state_conflict="refuse"``; nothing
            was written.
        InvalidArgumentError: The source is not a google-adk session database (schema v0 or
            v1, or a ``SqliteSessionService`` file), or one of its events is unreadable.
        StorageError: A database cannot be reached or fails.
    """
    if on_state_conflict not in ("refuse", "overwrite", "keep"):
        raise InvalidArgumentError(
            f"on_state_conflict must be 'refuse', 'overwrite' or 'keep', not {on_state_conflict!r}"
        )
    source = await _open_source(source_url)
    try:
        if isinstance(target, str):
            async with await adk_sessions.connect(target) as service:
                return await _copy(source, service, progress, on_state_conflict)
        return await _copy(source, target, progress, on_state_conflict)
    finally:
        await source.close()


def _same(a: Any, b: Any) -> bool:
    """JSON equality (``1`` and ``True``, ``1`` and ``1.0`` differ)."""
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


@attrs.frozen(kw_only=True)
class _ScopeWrite:
    """What one target scope must hold after the import, and how it differs from now.

    Attributes:
        final: The value of every key the source's scope has, as the target must end with
            them (the source's, or the target's where it is kept).
        delta: Of ``final``, the keys whose value the target does not hold yet.
        overwritten: Target values the source's replace.
        kept: Target values kept although the source has others.
        conflicts: The keys both hold with different values.
    """

    final: dict[str, Any]
    delta: dict[str, Any]
    overwritten: int
    kept: int
    conflicts: list[_Conflict]


def _plan_scope(
    label: str, source: Mapping[str, Any], target: Mapping[str, Any], mode: OnStateConflict
) -> _ScopeWrite:
    """Compare a source scope with the target's: the keys to write, and the conflicts."""
    final: dict[str, Any] = {}
    delta: dict[str, Any] = {}
    conflicts = []
    for key, value in source.items():
        final[key] = value
        if key not in target:
            delta[key] = value
        elif not _same(target[key], value):
            conflicts.append(_Conflict(scope=label, key=key, target=target[key], source=value))
            if mode == "overwrite":
                delta[key] = value
            else:
                final[key] = target[key]
    return _ScopeWrite(
        final=final,
        delta=delta,
        overwritten=len(conflicts) if mode == "overwrite" else 0,
        kept=len(conflicts) if mode == "keep" else 0,
        conflicts=conflicts,
    )


async def _plan_scopes(
    source: _Source, target: adk_sessions.SessionService, mode: OnStateConflict
) -> dict[tuple[str, str], _ScopeWrite]:
    """Plan every scope write before anything is written; refuse on conflicts if asked.

    Returns:
        By (app, "") for app scopes and (app, user) for user scopes: the writes to make.
    """
    plans: dict[tuple[str, str], _ScopeWrite] = {}
    for app_name, state in await source.app_states():
        if state:
            current = await target.get_app_state(app_name=app_name)
            plans[(app_name, "")] = _plan_scope(f"app {app_name!r}", state, current, mode)
    cursor = ("", "")
    while user_page := await source.user_states(cursor):
        for app_name, user_id, state in user_page:
            cursor = (app_name, user_id)
            if state:
                current = await target.get_user_state(app_name=app_name, user_id=user_id)
                label = f"app {app_name!r} user {user_id!r}"
                plans[(app_name, user_id)] = _plan_scope(label, state, current, mode)
    conflicts = [c for plan in plans.values() for c in plan.conflicts]
    if conflicts and mode == "refuse":
        raise StateConflictError(conflicts)
    return plans


async def _copy(
    source: _Source,
    target: adk_sessions.SessionService,
    progress: _Progress | None,
    mode: OnStateConflict,
) -> ImportCounts:
    plans = await _plan_scopes(source, target, mode)
    _, _, total = await source.counts()
    sessions = events = skipped = 0
    # Scopes the copied events' state deltas wrote to (create_session applies them, as
    # append_event does): they get every key's final value again afterwards.
    replayed: set[tuple[str, str]] = set()
    after = ("", "", "")
    done = 0
    if progress is not None:
        progress(0, total, 0)
    while page := await source.sessions(after):
        for row in page:
            after = (row.app_name, row.user_id, row.id)
            done += 1
            history = await _copy_session(source, target, row)
            if history is None:
                skipped += 1
            else:
                sessions += 1
                events += len(history)
                replayed.update(_scopes_written(row, history))
            if progress is not None:
                progress(done, total, events)
    app_states, user_states = await _write_scopes(target, plans, replayed)
    return ImportCounts(
        app_states=app_states,
        user_states=user_states,
        sessions=sessions,
        events=events,
        skipped_sessions=skipped,
        overwritten_values=sum(plan.overwritten for plan in plans.values()),
        kept_values=sum(plan.kept for plan in plans.values()),
    )


async def _copy_session(
    source: _Source, target: adk_sessions.SessionService, row: _SourceSession
) -> list[Event] | None:
    """Copy one session with its events; None when the target has it already."""
    existing = await target.get_session(
        app_name=row.app_name, user_id=row.user_id, session_id=row.id, num_recent_events=0
    )
    if existing is not None:
        return None
    history = await source.events(row)
    try:
        await target.create_session(
            app_name=row.app_name,
            user_id=row.user_id,
            session_id=row.id,
            state=row.state,
            events=history,
            last_update_time=row.update_time,
        )
    except SessionExistsError:
        return None
    return history


async def _write_scopes(
    target: adk_sessions.SessionService,
    plans: Mapping[tuple[str, str], _ScopeWrite],
    replayed: set[tuple[str, str]],
) -> tuple[int, int]:
    """Write the planned app and user scopes; return how many of each were written.

    A scope the copied events' deltas wrote to gets every key's final value again.
    """
    app_states = user_states = 0
    for (app_name, user_id), plan in plans.items():
        values = plan.final if (app_name, user_id) in replayed else plan.delta
        if not values:
            continue
        if user_id:
            await target.update_user_state(app_name=app_name, user_id=user_id, delta=values)
            user_states += 1
        else:
            await target.update_app_state(app_name=app_name, delta=values)
            app_states += 1
    return app_states, user_states


def _scopes_written(row: _SourceSession, history: list[Event]) -> set[tuple[str, str]]:
    """The (app, "") and (app, user) scopes a session's events have state deltas for."""
    written = set()
    for event in history:
        for key in event.actions.state_delta:
            if key.startswith("app:"):
                written.add((row.app_name, ""))
            elif key.startswith("user:"):
                written.add((row.app_name, row.user_id))
    return written


def add_import_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``import-adk`` command to an ``argparse`` sub-parser set.

    The parser's ``func`` default is :func:`run_import`: ``args.func(args)`` runs the command
    and returns the exit status.

    Args:
        subparsers: The object ``ArgumentParser.add_subparsers()`` returned.

    Returns:
        The new parser.
    """
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "import-adk",
        help="copy a google-adk session database into this one",
        description=(
            "Copy every app state, user state, session and event from a google-adk "
            "DatabaseSessionService (schema v0 or v1, PostgreSQL or SQLite) or "
            "SqliteSessionService database into an adk_sessions database. The source is only "
            "read; a rerun copies nothing twice. When the target already holds other values "
            "for some app or user state keys, nothing is written unless --overwrite-state or "
            "--keep-state says which values win."
        ),
    )
    parser.add_argument(
        "source_url",
        metavar="SOURCE_URL",
        help="google-adk database: sqlite:///path.db, a SQLite file path, or postgresql://...",
    )
    parser.add_argument(
        "target_url", metavar="TARGET_URL", help="adk_sessions database URL (migrated on connect)"
    )
    choice = parser.add_mutually_exclusive_group()
    choice.add_argument(
        "--overwrite-state",
        dest="on_state_conflict",
        action="store_const",
        const="overwrite",
        help="where the target's app/user state has other values, the source's win",
    )
    choice.add_argument(
        "--keep-state",
        dest="on_state_conflict",
        action="store_const",
        const="keep",
        help="where the target's app/user state has other values, the target's stay",
    )
    parser.set_defaults(func=run_import, on_state_conflict="refuse")
    return parser


def run_import(args: argparse.Namespace, *, stream: IO[str] | None = None) -> int:
    """Run ``import-adk`` for parsed arguments: progress on stderr, the summary on stdout.

    Args:
        args: Parsed arguments with ``source_url`` and ``target_url``.
        stream: Where progress goes (standard error by default).

    Returns:
        The exit status: 0 on success, 1 when the import failed (the reason on stderr), 130
        when interrupted. Sessions copied before a failure stay copied; rerun to finish.
    """
    err = stream if stream is not None else sys.stderr
    progress = _Bar(err)
    try:
        counts = anyio.run(
            lambda: import_adk(
                args.source_url,
                args.target_url,
                progress=progress,
                on_state_conflict=args.on_state_conflict,
            )
        )
    except AdkSessionsError as exc:
        progress.close()
        err.write(f"adk-sessions import-adk: {type(exc).__name__}: {exc}\n")
        return 1
    except KeyboardInterrupt:
        progress.close()
        return 130
    progress.close()
    print(counts.summary())
    return 0


class _Bar:
    """``import-adk``'s progress callback: a progress bar of sessions, with the events copied."""

    def __init__(self, stream: IO[str]) -> None:
        self._stream = stream
        self._bar: Any = None

    def __call__(self, done: int, total: int, events: int) -> None:
        if self._bar is None:
            self._bar = bar(what="import-adk", total=total, unit="sessions", stream=self._stream)
        self._bar.set_postfix_str(f"{events} events", refresh=False)
        self._bar.update(done - self._bar.n)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
