"""``adk-sessions import-adk``: copy a google-adk session database into an adk_sessions one.

Sources: google-adk's ``DatabaseSessionService`` (schema v1, and the legacy schema v0 that
databases created by google-adk 1.19-1.21 keep; on PostgreSQL or SQLite) and its
``SqliteSessionService``, as written by every google-adk release from 1.28 on. Every app state,
user state, session and event is copied; the source is only read (SQLite opened read-only,
PostgreSQL in a ``READ ONLY`` transaction), from one snapshot (``REPEATABLE READ`` on PostgreSQL;
on SQLite a read transaction, during which writers to the source wait, so run the import while
the agents are stopped). Reruns copy nothing twice: a session that exists in the target is
skipped, and app/user state is written only for apps/users that got a new session in this run or
whose scope in the target is still empty.

Why this module holds SQL (the codebase otherwise keeps all SQL in ``sql/<dialect>/*.sql``): the
statements read google-adk's schema, not ours; they differ between the four source layouts (a
``DATETIME`` text column, a ``REAL`` column or a PostgreSQL ``timestamp``, which column breaks
ties between events, an event as one JSON column or one column per field), so they are not "the
same query per dialect"; and ``sql/<dialect>/`` is
loaded whole into the service's typed query set, which must not hold queries for a foreign schema.
The queries are short, read-only, and listed together below.

Schema v0 stores each event's actions as a pickled google-adk ``EventActions``: reading it needs
google-adk (the ``[adk]`` extra) and goes through a restricted unpickler that resolves data types
and google-adk's models only (``adk_sessions._adk_compat.legacy_event``).
"""

from __future__ import annotations

import abc
import argparse
import datetime
import json
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from typing import IO, Any, Protocol

import aiosqlite
import anyio
import asyncpg
import attrs

import adk_sessions

from ._models import Event
from .errors import AdkSessionsError, InvalidArgumentError, SessionExistsError, StorageError

__all__ = ("ImportCounts", "add_import_parser", "import_adk", "run_import")

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
    """

    app_states: int = 0
    user_states: int = 0
    sessions: int = 0
    events: int = 0
    skipped_sessions: int = 0

    def summary(self) -> str:
        """Return the one-line summary the command prints.

        Returns:
            E.g. ``imported 1 app state, 2 user states, 3 sessions, 40 events; skipped 0 ...``.
        """

        def n(count: int, noun: str) -> str:
            return f"{count} {noun}{'' if count == 1 else 's'}"

        return (
            f"imported {n(self.app_states, 'app state')}, {n(self.user_states, 'user state')}, "
            f"{n(self.sessions, 'session')}, {n(self.events, 'event')}; "
            f"skipped {n(self.skipped_sessions, 'existing session')}"
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


async def _open_source(url: str) -> _Source:
    """Open a google-adk database given as a SQLAlchemy-style URL or a SQLite file path."""
    if "://" not in url:
        return await _SqliteSource.open(url)
    scheme, rest = url.split("://", 1)
    base = scheme.split("+", 1)[0].lower()
    if base == "sqlite":
        path = rest.split("?", 1)[0]
        # sqlite:///relative.db and sqlite:////absolute.db, as SQLAlchemy reads them.
        return await _SqliteSource.open(path[1:] if path.startswith("/") else path)
    if base in ("postgresql", "postgres"):
        return await _PostgresSource.open(f"postgresql://{rest}")
    raise InvalidArgumentError(
        f"unsupported source scheme {scheme!r}: use a sqlite:/// or postgresql:// URL"
    )


class _Progress(Protocol):
    def __call__(self, done: int, total: int, events: int) -> None: ...


class _TerminalProgress:
    """Progress on a stream: one rewritten line on a terminal, a line per 10% otherwise."""

    def __init__(self, stream: IO[str]) -> None:
        self._stream = stream
        self._tty = stream.isatty()
        self._last = 0.0
        self._last_tenth = -1

    def __call__(self, done: int, total: int, events: int) -> None:
        line = f"import-adk: {done}/{total} sessions, {events} events"
        if self._tty:
            now = time.monotonic()
            if done == total or now - self._last >= 0.1:
                self._last = now
                end = "\n" if done == total else ""
                self._stream.write(f"\r{line}{end}")
                self._stream.flush()
            return
        tenth = done * 10 // total if total else 10
        if tenth != self._last_tenth:
            self._last_tenth = tenth
            self._stream.write(line + "\n")
            self._stream.flush()


async def import_adk(
    source_url: str,
    target: str | adk_sessions.SessionService,
    *,
    progress: _Progress | None = None,
) -> ImportCounts:
    """Copy a google-adk session database into an adk_sessions database, idempotently.

    Args:
        source_url: The google-adk database: ``sqlite:///path.db`` (``sqlite+aiosqlite`` too),
            a plain SQLite file path, or ``postgresql://...`` (``postgresql+asyncpg`` too).
        target: The adk_sessions database URL (migrated on connect), or an open core service.
        progress: Called after each session with (sessions done, sessions total, events copied).

    Returns:
        The counts of what was written and skipped.

    Raises:
        InvalidArgumentError: The source is not a google-adk session database (schema v0 or
            v1, or a ``SqliteSessionService`` file), or one of its events is unreadable.
        StorageError: A database cannot be reached or fails.
    """
    source = await _open_source(source_url)
    try:
        if isinstance(target, str):
            async with await adk_sessions.connect(target) as service:
                return await _copy(source, service, progress)
        return await _copy(source, target, progress)
    finally:
        await source.close()


async def _copy(
    source: _Source, target: adk_sessions.SessionService, progress: _Progress | None
) -> ImportCounts:
    _, _, total = await source.counts()
    sessions = events = skipped = 0
    touched_apps: set[str] = set()
    touched_users: set[tuple[str, str]] = set()
    after = ("", "", "")
    done = 0
    if progress is not None:
        progress(0, total, 0)
    while page := await source.sessions(after):
        for row in page:
            after = (row.app_name, row.user_id, row.id)
            done += 1
            existing = await target.get_session(
                app_name=row.app_name,
                user_id=row.user_id,
                session_id=row.id,
                num_recent_events=0,
            )
            if existing is not None:
                skipped += 1
            else:
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
                    skipped += 1
                else:
                    sessions += 1
                    events += len(history)
                    touched_apps.add(row.app_name)
                    touched_users.add((row.app_name, row.user_id))
            if progress is not None:
                progress(done, total, events)
    app_states = user_states = 0
    for app_name, state in await source.app_states():
        if state and (
            app_name in touched_apps or not await target.get_app_state(app_name=app_name)
        ):
            await _write_scopes(target, app_name, "", {f"app:{k}": v for k, v in state.items()})
            app_states += 1
    cursor = ("", "")
    while user_page := await source.user_states(cursor):
        for app_name, user_id, state in user_page:
            cursor = (app_name, user_id)
            if state and (
                (app_name, user_id) in touched_users
                or not await target.get_user_state(app_name=app_name, user_id=user_id)
            ):
                delta = {f"user:{k}": v for k, v in state.items()}
                await _write_scopes(target, app_name, user_id, delta)
                user_states += 1
    return ImportCounts(
        app_states=app_states,
        user_states=user_states,
        sessions=sessions,
        events=events,
        skipped_sessions=skipped,
    )


async def _write_scopes(
    target: adk_sessions.SessionService, app_name: str, user_id: str, delta: Mapping[str, Any]
) -> None:
    """Write app/user scope values (the core has no call that writes a scope on its own)."""
    carrier = await target.create_session(
        app_name=app_name, user_id=user_id or "adk-sessions-import", state=dict(delta)
    )
    await target.delete_session(app_name=app_name, user_id=carrier.user_id, session_id=carrier.id)


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
            "read; a rerun copies nothing twice."
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
    parser.set_defaults(func=run_import)
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
    progress = _TerminalProgress(err)
    try:
        counts = anyio.run(lambda: import_adk(args.source_url, args.target_url, progress=progress))
    except AdkSessionsError as exc:
        err.write(f"adk-sessions import-adk: {type(exc).__name__}: {exc}\n")
        return 1
    except KeyboardInterrupt:
        return 130
    print(counts.summary())
    return 0
