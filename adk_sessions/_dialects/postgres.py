"""PostgreSQL through asyncpg: a pool per event loop, JSON codecs, error translation.

Every driver failure goes through :func:`translate`, the one place that knows asyncpg's
exceptions. A pool belongs to the event loop that created it; a service used from another loop
(google-adk's synchronous ``Runner.run()`` runs every call in a new one) gets a pool of that
loop, and a loop's pool is closed when the loop shuts its tasks down at its end.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any, TypeVar

import anyio
import asyncpg

from .._json import loads
from .._queries import (
    ExecuteQuery,
    OneQuery,
    Query,
    RowsQuery,
    ValueQuery,
    load_migrations,
    load_queries,
)
from .._validate import check_text
from ..errors import InvalidArgumentError, StorageError, StorageUnavailableError
from .base import (
    Body,
    Connection,
    ConstraintError,
    Dialect,
    Row,
    drive_async,
    run_to_completion,
)

__all__ = ("PostgresDialect", "translate")

T = TypeVar("T")

_ROLLBACK_TIMEOUT = 10.0
_POOL_CLOSE_TIMEOUT = 5.0
# Options this module handles itself; everything else goes to asyncpg.create_pool.
_POOL_DEFAULTS: dict[str, Any] = {"min_size": 1, "max_size": 10}
_POOL_OPTIONS = frozenset(
    {
        "min_size",
        "max_size",
        "max_queries",
        "max_inactive_connection_lifetime",
        "timeout",
        "command_timeout",
        "statement_cache_size",
        "max_cached_statement_lifetime",
        "max_cacheable_statement_size",
        "server_settings",
        "ssl",
        "connect_timeout",
    }
)

# SQLSTATEs after which a retry may succeed: serialization failure, deadlock, lock not available,
# too many connections, and the classes "connection exception" (08) and "operator intervention"
# (57: query cancelled by a timeout, server shutting down or starting up) except a dropped database.
# PostgreSQL truncates longer identifiers (NAMEDATALEN - 1); a schema name is refused instead.
_MAX_IDENTIFIER_BYTES = 63
_RETRYABLE_STATES = frozenset({"40001", "40P01", "55P03", "53300"})
_RETRYABLE_CLASSES = ("08", "57")
_FINAL_STATES = frozenset({"57P04"})


def translate(exc: BaseException, *, lost: bool = False) -> StorageError:
    """Turn a driver failure into the library's error (the driver's exception is the cause).

    Args:
        exc: What asyncpg (or the socket under it) raised.
        lost: The connection is closed after the failure: a retry on a new one may succeed.

    Returns:
        :class:`ConstraintError` for unique and foreign-key violations,
        :class:`StorageUnavailableError` where a retry may succeed (a lost, refused or
        terminated connection, a timeout, a server starting or stopping, SQLSTATE 40001/40P01),
        else :class:`StorageError`. The message never holds a password (asyncpg's never do).
    """
    if isinstance(exc, StorageError):
        return exc
    message = f"PostgreSQL failed: {type(exc).__name__}: {exc}"
    if isinstance(exc, (asyncpg.UniqueViolationError, asyncpg.ForeignKeyViolationError)):
        error: StorageError = ConstraintError(f"constraint violated: {exc}")
    elif isinstance(exc, asyncpg.PostgresError):
        state = exc.sqlstate or ""
        retryable = state in _RETRYABLE_STATES or (
            state.startswith(_RETRYABLE_CLASSES) and state not in _FINAL_STATES
        )
        error = StorageUnavailableError(message) if retryable or lost else StorageError(message)
    elif lost or isinstance(
        exc, (OSError, TimeoutError, asyncio.TimeoutError, asyncpg.ConnectionDoesNotExistError)
    ):
        error = StorageUnavailableError(message)
    else:
        error = StorageError(message)
    error.__cause__ = exc
    return error


def _check_schema(value: object) -> str:
    if not isinstance(value, str) or not value:
        raise InvalidArgumentError(f"schema must be a non-empty string, got {value!r}")
    check_text("schema", value)
    if len(value.encode("utf-8")) > _MAX_IDENTIFIER_BYTES:
        raise InvalidArgumentError(
            f"schema {value!r} is longer than PostgreSQL's {_MAX_IDENTIFIER_BYTES} bytes"
        )
    return value


def _check_flag(name: str, value: object) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false", "1", "0"):
        return value.lower() in ("true", "1")
    raise InvalidArgumentError(f"{name} must be true or false, got {value!r}")


def _refused_parameter(exc: Exception) -> bool:
    """Whether connecting failed on a startup parameter (a URL parameter sent as a setting).

    The server answers an unknown setting with SQLSTATE 42704, a bad value with 22023, one that
    cannot be set at connect with 55P02; PgBouncer refuses a parameter it does not pass on.
    """
    if isinstance(exc, asyncpg.PostgresError) and exc.sqlstate in ("42704", "22023", "55P02"):
        return True
    return "unsupported startup parameter" in str(exc)


class _PgConnection(Connection):
    """A pooled connection: reads, and the queries of a write transaction's body."""

    __slots__ = ("_conn", "_dialect")

    def __init__(self, conn: asyncpg.Connection, dialect: PostgresDialect) -> None:
        self._conn = conn
        self._dialect = dialect

    def _lost(self) -> bool:
        try:
            return bool(self._conn.is_closed())
        except Exception:  # a proxy asyncpg already detached: the connection died
            return True

    async def _call(self, method: Callable[..., Any], sql: str, args: list[Any]) -> Any:
        self._dialect.round_trips += 1
        try:
            return await method(sql, *args)
        except Exception as exc:  # every driver failure is translated, here
            raise translate(exc, lost=self._lost()) from exc

    async def rows(self, query: RowsQuery, params: Mapping[str, Any]) -> list[Row]:
        args = [params[name] for name in query.params]
        return await self._call(self._conn.fetch, query.statements[0], args)  # type: ignore[no-any-return]

    async def one(self, query: OneQuery, params: Mapping[str, Any]) -> Row | None:
        args = [params[name] for name in query.params]
        return await self._call(self._conn.fetchrow, query.statements[0], args)  # type: ignore[no-any-return]

    async def value(self, query: ValueQuery, params: Mapping[str, Any]) -> Any:
        args = [params[name] for name in query.params]
        return await self._call(self._conn.fetchval, query.statements[0], args)

    async def execute(self, query: ExecuteQuery, params: Mapping[str, Any]) -> None:
        """Run an execute query (one statement on PostgreSQL)."""
        args = [params[name] for name in query.params]
        await self._call(self._conn.execute, query.statements[0], args)

    async def run(self, query: Query, params: Mapping[str, Any]) -> Any:
        """Run any query of a body, by the connection method its kind names."""
        return await getattr(self, query.method)(query, params)

    async def plain(self, sql: str) -> None:
        """Send ``BEGIN``, ``COMMIT`` or ``ROLLBACK``."""
        await self._call(self._conn.execute, sql, [])

    async def rollback(self) -> None:
        """``ROLLBACK``, shielded and bounded; a connection that cannot roll back is closed."""
        if not self._lost():
            with anyio.move_on_after(_ROLLBACK_TIMEOUT, shield=True):
                with contextlib.suppress(StorageError):
                    await self.plain("ROLLBACK")
                    return
        # The connection's state is unknown (or it is gone): never hand it to another caller.
        with contextlib.suppress(Exception):
            self._conn.terminate()


async def _pool_init_hook(conn: asyncpg.Connection) -> None:
    """Pool init hook, run on every new connection: JSON columns decode to Python values.

    The service encodes JSON itself (validated, compact) and passes text.
    """
    for type_name in ("json", "jsonb"):
        await conn.set_type_codec(
            type_name, schema="pg_catalog", encoder=str, decoder=loads, format="text"
        )


async def _pool_reset_hook(conn: asyncpg.Connection) -> None:
    """Pool reset hook: nothing to reset (the service never changes session settings).

    asyncpg still rolls back a connection left in a transaction before calling this, and the
    default reset (advisory unlock, CLOSE ALL, UNLISTEN, RESET ALL) would cost a round trip on
    every release.
    """


class PostgresDialect(Dialect):
    """PostgreSQL: one asyncpg pool per event loop, shared by its tasks; no service-wide lock."""

    name = "postgres"

    def __init__(self, dsn: str, pool_options: Mapping[str, Any], *, schema: str) -> None:
        self._dsn = dsn
        self._pool_options = dict(pool_options)
        self._pools: dict[asyncio.AbstractEventLoop, asyncpg.Pool] = {}
        self._opening: dict[asyncio.AbstractEventLoop, asyncio.Task[asyncpg.Pool]] = {}
        self._watchers: dict[asyncio.AbstractEventLoop, asyncio.Task[None]] = {}
        self._closed = False
        self.schema = schema
        qualify = None if schema == "public" else schema
        self.queries = load_queries("postgres", positional=True, schema=qualify)
        self.migrations = load_migrations("postgres", schema=qualify)
        self.round_trips = 0

    @classmethod
    async def open(cls, dsn: str, options: Mapping[str, Any]) -> PostgresDialect:
        """Create the pool of the running event loop.

        Args:
            dsn: A libpq-style ``postgresql://`` URL.
            options: ``schema`` (where the tables live, default ``public``; created if missing),
                ``pgbouncer`` (behind a pooler in transaction mode: no prepared-statement
                cache), ``distribute`` (default true; false keeps the tables local on a
                database with Citus), and asyncpg pool options: ``min_size``, ``max_size``,
                ``command_timeout``, ...

        Returns:
            The dialect.

        Raises:
            InvalidArgumentError: On an unknown or malformed option.
            StorageError: When the server cannot be reached (``StorageUnavailableError`` when a
                retry may succeed; no password in the message).
        """
        unknown = set(options) - _POOL_OPTIONS - {"schema", "pgbouncer", "distribute"}
        if unknown:
            known = sorted(_POOL_OPTIONS | {"schema", "pgbouncer", "distribute"})
            raise InvalidArgumentError(
                f"unknown PostgreSQL option(s) {sorted(unknown)}; known: {known}"
            )
        kwargs = {**_POOL_DEFAULTS, **options}
        schema = _check_schema(kwargs.pop("schema", "public"))
        distribute = _check_flag("distribute", kwargs.pop("distribute", True))
        if _check_flag("pgbouncer", kwargs.pop("pgbouncer", False)):
            # PgBouncer in transaction mode may run each statement outside a transaction on
            # another server connection, where a named prepared statement does not exist:
            # asyncpg then uses unnamed statements, prepared and run in one go. Nothing else
            # here needs session affinity (migration locks are transaction-scoped, no session
            # settings are changed, tables are schema-qualified instead of a search_path).
            if kwargs.get("statement_cache_size", 0) != 0:
                raise InvalidArgumentError(
                    "pgbouncer=true needs statement_cache_size=0 (transaction pooling cannot "
                    "keep prepared statements)"
                )
            kwargs["statement_cache_size"] = 0
        connect_timeout = kwargs.pop("connect_timeout", None)
        if connect_timeout is not None:
            kwargs["timeout"] = connect_timeout
        dialect = cls(dsn, kwargs, schema=schema)
        dialect.distribute = distribute
        await dialect._pool()
        return dialect

    async def _pool(self) -> asyncpg.Pool:
        loop = asyncio.get_running_loop()
        pool = self._pools.get(loop)
        if pool is not None:
            return pool
        if self._closed:
            raise StorageError("the session service is closed")
        opening = self._opening.get(loop)
        if opening is None:
            opening = loop.create_task(self._create_pool(loop))
            self._opening[loop] = opening
            opening.add_done_callback(lambda _: self._opening.pop(loop, None))
        return await asyncio.shield(opening)

    async def _create_pool(self, loop: asyncio.AbstractEventLoop) -> asyncpg.Pool:
        self._discard_dead_loops()
        try:
            pool = await asyncpg.create_pool(
                self._dsn, init=_pool_init_hook, reset=_pool_reset_hook, **self._pool_options
            )
        except Exception as exc:  # translated
            if _refused_parameter(exc):
                raise InvalidArgumentError(
                    f"a URL parameter was refused at connect: {type(exc).__name__}: {exc}"
                ) from exc
            error = translate(exc)
            raise type(error)(f"cannot connect to PostgreSQL: {type(exc).__name__}: {exc}") from exc
        self._pools[loop] = pool
        self._watchers[loop] = loop.create_task(self._close_with_loop(loop, pool))
        return pool

    async def _close_with_loop(self, loop: asyncio.AbstractEventLoop, pool: asyncpg.Pool) -> None:
        """Wait until the loop cancels its remaining tasks at its end, then close its pool.

        ``asyncio.run`` (and anyio's runner) cancel every task before closing the loop, so a
        service nobody closed still disconnects cleanly from each loop it was used in.
        """
        try:
            await loop.create_future()
        finally:
            if self._pools.get(loop) is pool:
                del self._pools[loop]
            self._watchers.pop(loop, None)
            await _close_pool(pool)

    def _discard_dead_loops(self) -> None:
        """Forget pools of loops closed without cancelling their tasks (nothing can close them)."""
        for loop in [loop for loop in self._pools if loop.is_closed()]:
            pool = self._pools.pop(loop)
            self._watchers.pop(loop, None)
            _terminate(pool)

    @asynccontextmanager
    async def _acquire(self) -> AsyncIterator[_PgConnection]:
        pool = await self._pool()
        try:
            conn = await pool.acquire()
        except Exception as exc:  # translated
            if self._closed:
                raise StorageError("the session service is closed") from exc
            raise translate(exc) from exc
        try:
            yield _PgConnection(conn, self)
        finally:
            with anyio.CancelScope(shield=True), contextlib.suppress(Exception):
                # asyncpg closes a connection it cannot reset; nothing is left to do then.
                await pool.release(conn)

    def reader(self) -> AbstractAsyncContextManager[Connection]:
        return self._acquire()

    async def _write(self, body: Callable[[], Body[T]], on_commit: Callable[[T], None]) -> T:
        async with self._acquire() as conn:
            try:
                # BEGIN is inside the try: cancelled while a slow server answers it, the
                # ROLLBACK that follows undoes it.
                await conn.plain("BEGIN")
                result = await drive_async(body(), conn.run)
                with anyio.CancelScope(shield=True):
                    await conn.plain("COMMIT")
                    on_commit(result)
            except BaseException:
                await conn.rollback()
                raise
        return result

    async def write_one(self, query: Query, params: Mapping[str, Any]) -> Any:
        """One statement in autocommit: one round trip, atomic by itself.

        Once sent it runs to its end (shielded): cancelled meanwhile, the caller gets the
        cancellation after the statement has committed or failed.
        """

        async def run() -> Any:
            async with self._acquire() as conn:
                with anyio.CancelScope(shield=True):
                    return await conn.run(query, params)

        return await run_to_completion(run)

    def decode_json(self, value: Any) -> Any:
        return value

    async def close(self) -> None:
        """Close the pools: the running loop's now, other live loops' as soon as they run."""
        self._closed = True
        current = asyncio.get_running_loop()
        for loop, watcher in list(self._watchers.items()):
            if loop is current:
                watcher.cancel()
                with anyio.CancelScope(shield=True):
                    await asyncio.wait((watcher,))  # its finally closes the pool
            elif not loop.is_closed():
                loop.call_soon_threadsafe(watcher.cancel)
        self._discard_dead_loops()


async def _close_pool(pool: asyncpg.Pool) -> None:
    """Close gracefully, bounded; terminate what does not close in time. Never raises."""
    try:
        await asyncio.wait_for(pool.close(), _POOL_CLOSE_TIMEOUT)
    except Exception:  # a pool that cannot close gracefully is terminated
        _terminate(pool)
    except BaseException:
        _terminate(pool)
        raise


def _terminate(pool: asyncpg.Pool) -> None:
    with contextlib.suppress(Exception):
        pool.terminate()
