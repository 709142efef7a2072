"""SQLite through aiosqlite: one writer connection, a few readers, WAL, explicit transactions.

Writes from one process go through a single connection guarded by one ``anyio.Lock`` (one lock
per shared connection), so they queue instead of failing with ``database is locked``; writes from
other processes wait in ``BEGIN IMMEDIATE`` for up to ``busy_timeout``. Readers are separate
connections, so in WAL mode reads never wait for writes. ``:memory:`` databases use the writer for
reads too (a second connection would see another, empty database).
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import AsyncIterator, Iterable, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager, suppress
from typing import Any, NoReturn

import aiosqlite
import anyio

from ._dialect import Connection, ConstraintError, Dialect, Row
from ._queries import Query, load_migrations, load_queries
from ._state import dumps, loads
from .errors import InvalidArgumentError, StorageError

__all__ = ("SqliteDialect",)

_ROLLBACK_TIMEOUT = 10.0
_SYNCHRONOUS = ("OFF", "NORMAL", "FULL", "EXTRA")
_DEFAULTS: dict[str, Any] = {"busy_timeout": 30.0, "synchronous": "FULL", "max_readers": 4}


def _merge(state: str | None, delta: str | None) -> str | None:
    """``adk_merge(state, delta)``: shallow JSON merge, like PostgreSQL's ``jsonb ||``."""
    if delta is None or delta == "{}":
        return state
    if state is None or state == "{}":
        return delta
    merged = loads(state)
    merged.update(loads(delta))
    return dumps(merged)


def _storage_error(exc: BaseException) -> NoReturn:
    if isinstance(exc, sqlite3.IntegrityError):
        raise ConstraintError(f"constraint violated: {exc}") from exc
    raise StorageError(f"SQLite failed: {type(exc).__name__}: {exc}") from exc


_DRIVER_ERRORS = (sqlite3.Error, ValueError, OSError)


class _SqliteConnection(Connection):
    __slots__ = ("_conn", "_dialect")

    def __init__(self, conn: aiosqlite.Connection, dialect: SqliteDialect) -> None:
        self._conn = conn
        self._dialect = dialect

    async def rows(self, query: Query, params: Mapping[str, Any]) -> list[Row]:
        # One hop to the connection's thread: execute and fetch everything there. ``^`` and
        # ``$`` queries select at most one row (key lookups), so they take the same path.
        self._dialect.round_trips += 1
        try:
            return list(await self._conn.execute_fetchall(query.statements[0], params))
        except _DRIVER_ERRORS as exc:
            _storage_error(exc)

    async def one(self, query: Query, params: Mapping[str, Any]) -> Row | None:
        found = await self.rows(query, params)
        return found[0] if found else None

    async def value(self, query: Query, params: Mapping[str, Any]) -> Any:
        found = await self.rows(query, params)
        return found[0][0] if found else None

    async def execute(self, query: Query, params: Mapping[str, Any]) -> None:
        for statement in query.statements:
            self._dialect.round_trips += 1
            try:
                await self._conn.execute(statement, params)
            except _DRIVER_ERRORS as exc:
                _storage_error(exc)

    async def execute_many(self, query: Query, params: Iterable[Mapping[str, Any]]) -> None:
        for statement in query.statements:
            self._dialect.round_trips += 1
            try:
                await self._conn.executemany(statement, list(params))
            except _DRIVER_ERRORS as exc:
                _storage_error(exc)

    async def _plain(self, sql: str) -> None:
        self._dialect.round_trips += 1
        try:
            await self._conn.execute(sql)
        except _DRIVER_ERRORS as exc:
            _storage_error(exc)

    async def run_statement(self, sql: str) -> None:
        await self._plain(sql)

    async def begin(self) -> None:
        await self._plain("BEGIN IMMEDIATE")

    async def commit(self) -> None:
        await self._plain("COMMIT")

    async def rollback(self) -> None:
        # Always sent, even when no transaction looks open: a cancelled BEGIN IMMEDIATE may still
        # be waiting for the lock in the worker thread, which runs this ROLLBACK after it. When
        # nothing is open SQLite answers "no transaction is active", which is fine.
        with anyio.move_on_after(_ROLLBACK_TIMEOUT, shield=True):
            with suppress(StorageError):
                await self._plain("ROLLBACK")


async def _enable_wal(conn: aiosqlite.Connection, busy_timeout: float) -> None:
    """Switch the database to WAL, retrying while other connections hold it.

    Changing the journal mode needs the database to itself and SQLite may answer ``database is
    locked`` at once, without its busy handler, when several processes open a new file together.
    """
    delay = 0.005
    with anyio.fail_after(max(busy_timeout, 1.0)):
        while True:
            try:
                await conn.execute("PRAGMA journal_mode = WAL")
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) and "busy" not in str(exc):
                    raise
            await anyio.sleep(delay)
            delay = min(delay * 2, 0.1)


class _Slots:
    """A fixed set of connections handed out one caller at a time (anyio primitives only)."""

    def __init__(self, connections: list[aiosqlite.Connection]) -> None:
        self._idle = list(connections)
        self._all = list(connections)
        self._limit = anyio.Semaphore(len(connections))

    @asynccontextmanager
    async def borrow(self) -> AsyncIterator[aiosqlite.Connection]:
        async with self._limit:
            conn = self._idle.pop()
            try:
                yield conn
            finally:
                self._idle.append(conn)

    async def close(self) -> None:
        for conn in self._all:
            with anyio.CancelScope(shield=True):
                await conn.close()
        self._all.clear()


class SqliteDialect(Dialect):
    """SQLite: a single serialised writer plus reader connections (WAL)."""

    name = "sqlite"

    def __init__(self, writer: _Slots, readers: _Slots) -> None:
        self._writer = writer
        self._readers = readers
        self.queries = load_queries("sqlite", positional=False)
        self.migrations = load_migrations("sqlite")
        self.round_trips = 0

    @staticmethod
    async def _connect(
        path: str, options: Mapping[str, Any], *, writer: bool
    ) -> aiosqlite.Connection:
        pending = aiosqlite.connect(path, isolation_level=None, check_same_thread=False)
        # aiosqlite's worker thread is not a daemon, so a service nobody closed (google-adk never
        # closes its session service) would keep the process alive at exit. SQLite's journal
        # makes an interrupted transaction roll back, so a daemon thread loses nothing committed.
        worker = getattr(pending, "_thread", None)
        if isinstance(worker, threading.Thread):
            worker.daemon = True
        try:
            conn = await pending
        except BaseException:
            # aiosqlite stops its worker without waiting; the worker then reports to the event
            # loop, which must still be running: wait for it to finish.
            if isinstance(worker, threading.Thread) and worker.is_alive():
                with anyio.CancelScope(shield=True):
                    await anyio.to_thread.run_sync(worker.join, 5.0)
            raise
        try:
            conn.row_factory = sqlite3.Row
            await conn.execute(f"PRAGMA busy_timeout = {int(options['busy_timeout'] * 1000)}")
            await conn.execute("PRAGMA foreign_keys = ON")
            await conn.execute(f"PRAGMA synchronous = {options['synchronous']}")
            if writer and path != ":memory:":
                await _enable_wal(conn, options["busy_timeout"])
            await conn.create_function("adk_merge", 2, _merge, deterministic=True)
        except BaseException:
            with anyio.CancelScope(shield=True):
                await conn.close()
            raise
        return conn

    @classmethod
    async def open(cls, path: str, options: Mapping[str, Any]) -> SqliteDialect:
        """Open the database file (created if missing).

        Args:
            path: A file path, or ``:memory:``.
            options: ``busy_timeout`` (seconds, default 30), ``synchronous`` (default ``FULL``),
                ``max_readers`` (default 4).

        Returns:
            The dialect.

        Raises:
            InvalidArgumentError: On an unknown or malformed option.
            StorageError: When the file cannot be opened.
        """
        unknown = set(options) - set(_DEFAULTS)
        if unknown:
            raise InvalidArgumentError(
                f"unknown SQLite option(s) {sorted(unknown)}; known: {sorted(_DEFAULTS)}"
            )
        opts = {**_DEFAULTS, **options}
        if str(opts["synchronous"]).upper() not in _SYNCHRONOUS:
            raise InvalidArgumentError(f"synchronous must be one of {_SYNCHRONOUS}")
        opts["synchronous"] = str(opts["synchronous"]).upper()
        if not isinstance(opts["busy_timeout"], (int, float)) or opts["busy_timeout"] < 0:
            raise InvalidArgumentError("busy_timeout must be a number of seconds >= 0")
        if not isinstance(opts["max_readers"], int) or opts["max_readers"] < 1:
            raise InvalidArgumentError("max_readers must be an integer >= 1")
        opened: list[aiosqlite.Connection] = []
        try:
            opened.append(await cls._connect(path, opts, writer=True))
            if path != ":memory:":
                for _ in range(opts["max_readers"]):
                    opened.append(await cls._connect(path, opts, writer=False))
        except _DRIVER_ERRORS as exc:
            for conn in opened:
                with anyio.CancelScope(shield=True):
                    await conn.close()
            raise StorageError(f"cannot open SQLite database {path!r}: {exc}") from exc
        writer = _Slots(opened[:1])
        return cls(writer, _Slots(opened[1:]) if len(opened) > 1 else writer)

    @asynccontextmanager
    async def _use(self, slots: _Slots) -> AsyncIterator[Connection]:
        async with slots.borrow() as conn:
            yield _SqliteConnection(conn, self)

    def reader(self) -> AbstractAsyncContextManager[Connection]:
        return self._use(self._readers)

    def writer(self) -> AbstractAsyncContextManager[Connection]:
        return self._use(self._writer)

    def decode_json(self, value: Any) -> Any:
        return None if value is None else loads(value)

    async def close(self) -> None:
        await self._writer.close()
        await self._readers.close()
