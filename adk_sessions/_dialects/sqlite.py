"""SQLite through aiosqlite: one writer connection, a few readers, WAL, explicit transactions.

Writes from one process go through a single connection guarded by one ``anyio.Semaphore`` (one
lock per shared connection), so they queue instead of failing with ``database is locked``; writes
from other processes wait in ``BEGIN IMMEDIATE`` for up to ``busy_timeout``. A write makes two
hops to the writer's thread: ``BEGIN IMMEDIATE`` (cancellable while it waits for another
process's lock), then the whole transaction body and ``COMMIT`` in one go. Readers are separate
connections, so in WAL mode reads never wait for writes. ``:memory:`` databases use the writer for
reads too (a second connection would see another, empty database).

The file alone holds every committed write once the service is closed, or once its process exits
normally without closing it: the last connection to close checkpoints the write-ahead log into
the database file, and an ``atexit`` hook closes what nobody closed.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import os
import pathlib
import sqlite3
import threading
import warnings
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any, TypeVar

import aiosqlite
import anyio

from .._json import dumps, loads
from .._queries import (
    OneQuery,
    Query,
    RowsQuery,
    ValueQuery,
    load_migrations,
    load_queries,
)
from ..errors import (
    AdkSessionsError,
    InvalidArgumentError,
    StorageError,
    StorageUnavailableError,
)
from .base import Body, Connection, ConstraintError, Dialect, Row, drive

__all__ = ("SqliteDialect", "backup_file", "translate")

T = TypeVar("T")

_ROLLBACK_TIMEOUT = 10.0
_EXIT_TIMEOUT = 5.0
_SYNCHRONOUS = ("OFF", "NORMAL", "FULL", "EXTRA")
_MODES = ("ro", "rw", "rwc")
_DEFAULTS: dict[str, Any] = {
    "busy_timeout": 30.0,
    "synchronous": "FULL",
    "max_readers": 4,
    "mode": "rwc",
}
# SQLite's primary result codes after which a retry may succeed.
_SQLITE_BUSY, _SQLITE_LOCKED = 5, 6


def _merge(state: str | None, delta: str | None) -> str | None:
    """``adk_merge(state, delta)``: shallow JSON merge, like PostgreSQL's ``jsonb ||``."""
    if delta is None or delta == "{}":
        return state
    if state is None or state == "{}":
        return delta
    merged = loads(state)
    merged.update(loads(delta))
    return dumps(merged)


def translate(exc: BaseException) -> StorageError:
    """Turn a driver failure into the library's error (the driver's exception is the cause).

    Returns:
        :class:`ConstraintError` for constraint violations, :class:`StorageUnavailableError`
        when the database stayed locked by another connection for ``busy_timeout``, else
        :class:`StorageError` (a full disk, a read-only database, a closed service, ...).
    """
    if isinstance(exc, StorageError):
        return exc
    if isinstance(exc, sqlite3.IntegrityError):
        error: StorageError = ConstraintError(f"constraint violated: {exc}")
    else:
        code = getattr(exc, "sqlite_errorcode", None)  # Python 3.11+
        busy = (
            code & 0xFF in (_SQLITE_BUSY, _SQLITE_LOCKED)
            if isinstance(code, int)
            else isinstance(exc, sqlite3.OperationalError)
            and ("database is locked" in str(exc) or "database is busy" in str(exc))
        )
        message = f"SQLite failed: {type(exc).__name__}: {exc}"
        error = StorageUnavailableError(message) if busy else StorageError(message)
    error.__cause__ = exc
    return error


def _run_query(db: sqlite3.Connection, query: Query, params: Mapping[str, Any]) -> Any:
    """Run one query in the connection's thread and shape its result by the query's kind."""
    try:
        if query.method == "execute":
            for sql in query.statements:
                db.execute(sql, params)
            return None
        rows = db.execute(query.statements[0], params).fetchall()
    except sqlite3.Error as exc:
        raise translate(exc) from exc
    if query.method == "rows":
        return rows
    first = rows[0] if rows else None
    return first if query.method == "one" or first is None else first[0]


def _begin(db: sqlite3.Connection) -> None:
    if db.in_transaction:  # never seen, but a write must not join a transaction left open
        db.execute("ROLLBACK")
    db.execute("BEGIN IMMEDIATE")


def _finish(db: sqlite3.Connection, body: Body[T]) -> T:
    """Run a body and COMMIT, in the connection's thread; ROLLBACK if anything fails."""
    try:
        result = drive(body, lambda query, params: _run_query(db, query, params))
        db.execute("COMMIT")
    except BaseException:
        with contextlib.suppress(sqlite3.Error):
            if db.in_transaction:
                db.execute("ROLLBACK")
        raise
    return result


def _rollback(db: sqlite3.Connection) -> None:
    if db.in_transaction:
        db.execute("ROLLBACK")


def _noop(db: sqlite3.Connection) -> None:
    pass


def _checkpoint(db: sqlite3.Connection) -> None:
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")


class _SqliteConnection(Connection):
    __slots__ = ("_conn", "_dialect")

    def __init__(self, conn: aiosqlite.Connection, dialect: SqliteDialect) -> None:
        self._conn = conn
        self._dialect = dialect

    async def rows(self, query: RowsQuery, params: Mapping[str, Any]) -> list[Row]:
        return await self._dialect.hop(self._conn, _run_query, query, params)

    async def one(self, query: OneQuery, params: Mapping[str, Any]) -> Row | None:
        return await self._dialect.hop(self._conn, _run_query, query, params)

    async def value(self, query: ValueQuery, params: Mapping[str, Any]) -> Any:
        return await self._dialect.hop(self._conn, _run_query, query, params)


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
        self.all = list(connections)
        self._limit = anyio.Semaphore(len(connections))

    @asynccontextmanager
    async def borrow(self) -> AsyncIterator[aiosqlite.Connection]:
        async with self._limit:
            conn = self._idle.pop()
            try:
                yield conn
            finally:
                self._idle.append(conn)


# Dialects not closed yet; closed at interpreter exit (google-adk never closes its service).
_OPEN: set[SqliteDialect] = set()


@atexit.register
def _close_at_exit() -> None:
    for dialect in list(_OPEN):
        dialect.close_now()


def _database_uri(path: str, mode: str) -> str:
    return f"{pathlib.Path(path).absolute().as_uri()}?mode={mode}"


class SqliteDialect(Dialect):
    """SQLite: a single serialised writer plus reader connections (WAL)."""

    name = "sqlite"
    # Writers of other processes wait in SQLite's busy handler, which polls the lock at most
    # 100 ms apart and queues no one: without a longer rest, back-to-back batches of a prune
    # could keep them waiting for many batches. (Writers of this process queue on the writer's
    # semaphore, first come first served, and need no rest.)
    batch_pause = 0.15

    def __init__(self, writer: _Slots, readers: _Slots, *, read_only: bool) -> None:
        self._writer = writer
        self._readers = readers
        self.read_only = read_only
        self.queries = load_queries("sqlite", positional=False)
        self.migrations = load_migrations("sqlite")
        self.round_trips = 0
        _OPEN.add(self)

    @staticmethod
    async def _connect(
        path: str, options: Mapping[str, Any], *, writer: bool
    ) -> aiosqlite.Connection:
        memory = path == ":memory:"
        target = path if memory else _database_uri(path, options["mode"])
        pending = aiosqlite.connect(
            target, isolation_level=None, check_same_thread=False, uri=not memory
        )
        # aiosqlite's worker thread is not a daemon, so a service nobody closed (google-adk never
        # closes its session service) would keep the process alive at exit. SQLite's journal
        # makes an interrupted transaction roll back, so a daemon thread loses nothing committed;
        # the atexit hook closes the connections cleanly before daemon threads stop.
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
            if options["mode"] != "ro":
                await conn.execute(f"PRAGMA synchronous = {options['synchronous']}")
                if writer and not memory:
                    await _enable_wal(conn, options["busy_timeout"])
            await conn.create_function("adk_merge", 2, _merge, deterministic=True)
        except BaseException:
            with anyio.CancelScope(shield=True):
                await conn.close()
            raise
        return conn

    @classmethod
    async def open(cls, path: str, options: Mapping[str, Any]) -> SqliteDialect:
        """Open the database file.

        Args:
            path: A file path, or ``:memory:``.
            options: ``busy_timeout`` (seconds, default 30), ``synchronous`` (default ``FULL``),
                ``max_readers`` (default 4), ``mode`` (``rwc``: create the file if missing,
                the default; ``rw``: it must exist; ``ro``: read-only, nothing is ever created
                or written).

        Returns:
            The dialect.

        Raises:
            InvalidArgumentError: On an unknown or malformed option, or a path whose directory
                does not exist.
            StorageError: When the file cannot be opened.
        """
        opts = _check_options(path, options)
        opened: list[aiosqlite.Connection] = []
        try:
            opened.append(await cls._connect(path, opts, writer=True))
            if path != ":memory:":
                for _ in range(opts["max_readers"]):
                    opened.append(await cls._connect(path, opts, writer=False))
        except Exception as exc:  # translated
            for conn in opened:
                with anyio.CancelScope(shield=True):
                    await conn.close()
            error = translate(exc)
            raise type(error)(f"cannot open SQLite database {path!r}: {exc}") from exc
        writer = _Slots(opened[:1])
        readers = _Slots(opened[1:]) if len(opened) > 1 else writer
        return cls(writer, readers, read_only=opts["mode"] == "ro")

    async def hop(self, conn: aiosqlite.Connection, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(sqlite3_connection, *args)`` in the connection's thread: one hop.

        Uses aiosqlite's ``Connection._execute`` (the primitive every public method of aiosqlite
        is built on) so that a whole transaction can run in one hop. A cancelled caller still
        waits until the thread is done with the call: the result must reach this event loop
        while it runs (a closed loop would kill the worker thread), and the connection must be
        idle before anyone borrows it again.
        """
        self.round_trips += 1
        try:
            return await conn._execute(fn, conn._conn, *args)  # type: ignore[no-any-return,no-untyped-call]
        except asyncio.CancelledError:
            drained = asyncio.ensure_future(conn._execute(_noop, conn._conn))  # type: ignore[no-untyped-call]
            while not drained.done():
                with contextlib.suppress(asyncio.CancelledError):
                    await asyncio.wait((drained,))
            raise
        except AdkSessionsError:
            raise  # what a transaction body decided (stale, not found, ...), or translated
        except ValueError as exc:  # aiosqlite: "no active connection" / "Connection closed"
            raise StorageError("the session service is closed") from exc
        except Exception as exc:  # translated
            raise translate(exc) from exc

    @asynccontextmanager
    async def _use(self, slots: _Slots) -> AsyncIterator[Connection]:
        async with slots.borrow() as conn:
            yield _SqliteConnection(conn, self)

    def reader(self) -> AbstractAsyncContextManager[Connection]:
        return self._use(self._readers)

    async def _write(self, body: Callable[[], Body[T]], on_commit: Callable[[T], None]) -> T:
        async with self._writer.borrow() as conn:
            try:
                await self.hop(conn, _begin)
            except BaseException:
                # A cancelled BEGIN IMMEDIATE may still get the lock afterwards: undo it.
                with anyio.move_on_after(_ROLLBACK_TIMEOUT, shield=True):
                    with contextlib.suppress(StorageError):
                        await self.hop(conn, _rollback)
                raise
            with anyio.CancelScope(shield=True):
                result: T = await self.hop(conn, _finish, body())
                on_commit(result)
        return result

    def decode_json(self, value: Any) -> Any:
        return None if value is None else loads(value)

    async def close(self) -> None:
        """Close every connection (readers first: the writer's close then checkpoints)."""
        _OPEN.discard(self)
        with anyio.CancelScope(shield=True):
            if not self.read_only:
                # Into the database file now, even if other processes keep the log open.
                for conn in self._writer.all:
                    with contextlib.suppress(StorageError):
                        await self.hop(conn, _checkpoint)
            for conn in [*self._readers.all, *self._writer.all]:
                with contextlib.suppress(Exception):
                    await conn.close()
        self._readers.all.clear()
        self._writer.all.clear()

    def close_now(self) -> None:
        """Close every connection without an event loop (at interpreter exit)."""
        _OPEN.discard(self)
        with warnings.catch_warnings():
            # aiosqlite asks for an event loop to report to; none runs at exit.
            warnings.simplefilter("ignore")
            # One at a time, the writer last: the last connection to close checkpoints the log
            # into the database file, and two closing at once may each leave that to the other.
            for conn in [*self._readers.all, *self._writer.all]:
                conn.stop()
                thread = getattr(conn, "_thread", None)
                if isinstance(thread, threading.Thread) and thread.is_alive():
                    thread.join(_EXIT_TIMEOUT)
        self._readers.all.clear()
        self._writer.all.clear()


def _check_options(path: str, options: Mapping[str, Any]) -> dict[str, Any]:
    unknown = set(options) - set(_DEFAULTS)
    if unknown:
        raise InvalidArgumentError(
            f"unknown SQLite option(s) {sorted(unknown)}; known: {sorted(_DEFAULTS)}"
        )
    opts = {**_DEFAULTS, **options}
    if str(opts["synchronous"]).upper() not in _SYNCHRONOUS:
        raise InvalidArgumentError(f"synchronous must be one of {_SYNCHRONOUS}")
    opts["synchronous"] = str(opts["synchronous"]).upper()
    busy = opts["busy_timeout"]
    if isinstance(busy, bool) or not isinstance(busy, (int, float)) or not 0 <= busy < 2**31:
        raise InvalidArgumentError("busy_timeout must be a number of seconds >= 0")
    readers = opts["max_readers"]
    if type(readers) is not int or not 1 <= readers <= 64:
        raise InvalidArgumentError("max_readers must be an integer from 1 to 64")
    if opts["mode"] not in _MODES:
        raise InvalidArgumentError(f"mode must be one of {_MODES}, not {opts['mode']!r}")
    if path == ":memory:":
        if opts["mode"] != "rwc":
            raise InvalidArgumentError("mode applies to a database file, not to :memory:")
        return opts
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise InvalidArgumentError(
            f"SQLite database {path!r}: the directory {folder!r} does not exist"
        )
    return opts


def backup_file(path: str, destination: str) -> None:
    """Copy a SQLite database into one self-contained file, while others may write to it.

    SQLite's online backup copies a consistent snapshot (writers in WAL mode go on meanwhile);
    the copy is written next to ``destination`` and renamed into place, and switched to the
    rollback journal, so the single file is the whole database.

    Args:
        path: The database file (opened read-only, never created).
        destination: The file to write (replaced if it exists).

    Raises:
        InvalidArgumentError: The destination's directory does not exist.
        StorageError: The database cannot be read or the copy cannot be written.
    """
    target = pathlib.Path(destination).absolute()
    if not target.parent.is_dir():
        raise InvalidArgumentError(f"backup destination {destination!r}: no such directory")
    partial = target.with_name(f".{target.name}.partial")
    try:
        source = sqlite3.connect(_database_uri(path, "ro"), uri=True)
        try:
            partial.unlink(missing_ok=True)
            copy = sqlite3.connect(partial)
            try:
                source.backup(copy)
                copy.execute("PRAGMA journal_mode = DELETE")
            finally:
                copy.close()
        finally:
            source.close()
        os.replace(partial, target)
    except (sqlite3.Error, OSError) as exc:
        with contextlib.suppress(OSError):
            partial.unlink(missing_ok=True)
        raise StorageError(f"cannot back up {path!r} to {destination!r}: {exc}") from exc
