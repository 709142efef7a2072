"""PostgreSQL through asyncpg: a pool, JSON codecs, prepared statements, error translation."""

from __future__ import annotations

import urllib.parse
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any, NoReturn

import anyio
import asyncpg

from ._dialect import Connection, ConstraintError, Dialect, Row
from ._queries import Query, load_migrations, load_queries
from ._state import loads
from .errors import InvalidArgumentError, StorageError

__all__ = ("PostgresDialect",)

_ROLLBACK_TIMEOUT = 10.0
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


# Spellings of the ``distribute`` URL parameter (libpq's boolean spellings).
_FLAGS = {"true": True, "on": True, "yes": True, "1": True}
_FLAGS |= {"false": False, "off": False, "no": False, "0": False}


def _take_distribute(dsn: str, options: dict[str, Any]) -> tuple[str, bool]:
    """Remove ``distribute`` from the URL's query and from ``options``; return the choice.

    ``distribute=false`` (URL) or ``distribute=False`` (option) keeps the tables local on a
    database with Citus; the default distributes them. asyncpg would take an unknown URL
    parameter for a server setting, so it never reaches asyncpg.
    """
    parts = urllib.parse.urlsplit(dsn)
    kept, given = [], []
    for item in parts.query.split("&") if parts.query else []:
        key, _, value = item.partition("=")
        if urllib.parse.unquote_plus(key) == "distribute":
            given.append(urllib.parse.unquote_plus(value))
        else:
            kept.append(item)
    choice: bool | None = None
    for value in given:
        flag = _FLAGS.get(value.lower())
        if flag is None or (choice is not None and flag != choice):
            raise InvalidArgumentError(
                f"URL parameter distribute={value!r}: use distribute=true or distribute=false"
            )
        choice = flag
    if "distribute" in options:
        option = options.pop("distribute")
        if not isinstance(option, bool):
            raise InvalidArgumentError(f"option distribute must be True or False, not {option!r}")
        if choice is not None and option != choice:
            raise InvalidArgumentError(
                f"option distribute={option} contradicts the URL's distribute parameter"
            )
        choice = option
    return urllib.parse.urlunsplit(parts._replace(query="&".join(kept))), choice is not False


def _storage_error(exc: BaseException) -> NoReturn:
    if isinstance(exc, (asyncpg.UniqueViolationError, asyncpg.ForeignKeyViolationError)):
        raise ConstraintError(f"constraint violated: {exc}") from exc
    raise StorageError(f"PostgreSQL failed: {type(exc).__name__}: {exc}") from exc


_DRIVER_ERRORS = (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError)


class _PgConnection(Connection):
    __slots__ = ("_conn", "_dialect")

    def __init__(self, conn: asyncpg.Connection, dialect: PostgresDialect) -> None:
        self._conn = conn
        self._dialect = dialect

    async def _call(
        self, method: Callable[..., Any], query: Query, params: Mapping[str, Any]
    ) -> Any:
        self._dialect.round_trips += 1
        try:
            return await method(query.statements[0], *[params[name] for name in query.params])
        except _DRIVER_ERRORS as exc:
            _storage_error(exc)

    async def rows(self, query: Query, params: Mapping[str, Any]) -> list[Row]:
        return await self._call(self._conn.fetch, query, params)  # type: ignore[no-any-return]

    async def one(self, query: Query, params: Mapping[str, Any]) -> Row | None:
        return await self._call(self._conn.fetchrow, query, params)  # type: ignore[no-any-return]

    async def value(self, query: Query, params: Mapping[str, Any]) -> Any:
        return await self._call(self._conn.fetchval, query, params)

    async def execute(self, query: Query, params: Mapping[str, Any]) -> None:
        await self._call(self._conn.execute, query, params)

    async def execute_many(self, query: Query, params: Iterable[Mapping[str, Any]]) -> None:
        self._dialect.round_trips += 1
        args = [[p[name] for name in query.params] for p in params]
        try:
            await self._conn.executemany(query.statements[0], args)
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
        await self._plain("BEGIN")

    async def commit(self) -> None:
        await self._plain("COMMIT")

    async def rollback(self) -> None:
        done = False
        with anyio.move_on_after(_ROLLBACK_TIMEOUT, shield=True):
            try:
                await self._plain("ROLLBACK")
                done = True
            except StorageError:
                pass
        if not done:
            # The connection's state is unknown: never hand it to another caller.
            self._conn.terminate()


async def _init_connection(conn: asyncpg.Connection) -> None:
    # The service encodes JSON itself (validated, compact) and passes text; rows decode to Python.
    for type_name in ("json", "jsonb"):
        await conn.set_type_codec(
            type_name, schema="pg_catalog", encoder=str, decoder=loads, format="text"
        )


async def _keep_session(conn: asyncpg.Connection) -> None:
    """Pool reset hook: nothing to reset (the service never changes session settings).

    asyncpg still rolls back a connection left in a transaction before calling this, and the
    default reset (advisory unlock, CLOSE ALL, UNLISTEN, RESET ALL) would cost a round trip on
    every release.
    """


class PostgresDialect(Dialect):
    """PostgreSQL: one asyncpg pool shared by all tasks, no service-wide lock."""

    name = "postgres"

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool
        self.queries = load_queries("postgres", positional=True)
        self.migrations = load_migrations("postgres")
        self.round_trips = 0

    @classmethod
    async def open(cls, dsn: str, options: Mapping[str, Any]) -> PostgresDialect:
        """Create the pool.

        Args:
            dsn: A libpq-style ``postgresql://`` URL; its ``distribute`` parameter is taken out
                (``distribute=false`` keeps the tables local on a Citus database).
            options: ``min_size``, ``max_size``, ``command_timeout``, ... (asyncpg pool options)
                and ``distribute`` (bool, as the URL parameter).

        Returns:
            The dialect.

        Raises:
            InvalidArgumentError: On an unknown option.
            StorageError: When the server cannot be reached (no password in the message).
        """
        options = dict(options)
        dsn, distribute = _take_distribute(dsn, options)
        unknown = set(options) - _POOL_OPTIONS
        if unknown:
            raise InvalidArgumentError(
                f"unknown PostgreSQL option(s) {sorted(unknown)}; known: "
                f"{sorted(_POOL_OPTIONS | {'distribute'})}"
            )
        kwargs = {**_POOL_DEFAULTS, **options}
        connect_timeout = kwargs.pop("connect_timeout", None)
        if connect_timeout is not None:
            kwargs["timeout"] = connect_timeout
        try:
            pool = await asyncpg.create_pool(
                dsn, init=_init_connection, reset=_keep_session, **kwargs
            )
        except (*_DRIVER_ERRORS, ValueError) as exc:
            # asyncpg's messages carry no password; the DSN itself is never echoed.
            raise StorageError(
                f"cannot connect to PostgreSQL: {type(exc).__name__}: {exc}"
            ) from exc
        dialect = cls(pool)
        dialect.distribute = distribute
        return dialect

    @asynccontextmanager
    async def _acquire(self) -> AsyncIterator[Connection]:
        try:
            conn = await self._pool.acquire()
        except _DRIVER_ERRORS as exc:
            _storage_error(exc)
        try:
            yield _PgConnection(conn, self)
        finally:
            with anyio.CancelScope(shield=True):
                await self._pool.release(conn)

    def reader(self) -> AbstractAsyncContextManager[Connection]:
        return self._acquire()

    def writer(self) -> AbstractAsyncContextManager[Connection]:
        return self._acquire()

    def decode_json(self, value: Any) -> Any:
        return value

    async def close(self) -> None:
        await self._pool.close()
