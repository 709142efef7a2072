"""What the service needs from a database: connections that run loaded queries, and transactions.

The dialect modules (``_postgres``, ``_sqlite``) implement these for their driver; the service owns
every transaction boundary and never touches a driver directly.
"""

from __future__ import annotations

import abc
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any, Protocol

import anyio

from ._queries import Migration, Queries, Query
from .errors import StorageError

__all__ = ("Connection", "ConstraintError", "Dialect", "Row", "Transaction", "transaction")


class Row(Protocol):
    """A result row (asyncpg ``Record``, ``sqlite3.Row``): columns by name or position."""

    def __getitem__(self, key: str | int, /) -> Any: ...


class ConstraintError(StorageError):
    """A unique or foreign-key constraint rejected a write (the service decides what it means)."""


class Connection(abc.ABC):
    """One driver connection. Each call is one round trip (SQLite: one call per statement).

    Driver exceptions come out as :class:`StorageError` (``ConstraintError`` for constraint
    violations) with the driver's exception as ``__cause__``.
    """

    @abc.abstractmethod
    async def rows(self, query: Query, params: Mapping[str, Any]) -> list[Row]:
        """Run a rows query."""

    @abc.abstractmethod
    async def one(self, query: Query, params: Mapping[str, Any]) -> Row | None:
        """Run a ``^`` query: the first row or None."""

    @abc.abstractmethod
    async def value(self, query: Query, params: Mapping[str, Any]) -> Any:
        """Run a ``$`` query: the first column of the first row."""

    @abc.abstractmethod
    async def execute(self, query: Query, params: Mapping[str, Any]) -> None:
        """Run a ``!`` query (every statement of it, in order)."""

    @abc.abstractmethod
    async def execute_many(self, query: Query, params: Iterable[Mapping[str, Any]]) -> None:
        """Run a ``*!`` query once per parameter set."""

    @abc.abstractmethod
    async def run_statement(self, sql: str) -> None:
        """Run one parameterless statement of a migration script."""

    @abc.abstractmethod
    async def begin(self) -> None:
        """Open a write transaction (``BEGIN``; SQLite: ``BEGIN IMMEDIATE``)."""

    @abc.abstractmethod
    async def commit(self) -> None:
        """``COMMIT``."""

    @abc.abstractmethod
    async def rollback(self) -> None:
        """``ROLLBACK``; never raises. A connection that cannot roll back is discarded."""


class Dialect(abc.ABC):
    """A database: its queries, migrations, connections and JSON decoding.

    Attributes:
        name: ``"postgres"`` or ``"sqlite"``.
        queries: The loaded named queries.
        migrations: The schema migrations, oldest first.
        round_trips: Driver calls made so far (statements sent, BEGIN/COMMIT included); for tests
            and benchmarks that count work instead of timing it.
        distribute: Whether migrations may distribute the tables (PostgreSQL with Citus; the
            ``distribute=false`` URL parameter turns it off). Ignored elsewhere.
        distributed: Whether the tables are Citus tables, as last read from the catalog (see
            ``_layout``); the service then runs statements that each touch one table, which
            Citus routes to one shard.
    """

    name: str
    queries: Queries
    migrations: tuple[Migration, ...]
    round_trips: int = 0
    distribute: bool = True
    distributed: bool = False

    @abc.abstractmethod
    def reader(self) -> AbstractAsyncContextManager[Connection]:
        """Borrow a connection for reads outside a transaction."""

    @abc.abstractmethod
    def writer(self) -> AbstractAsyncContextManager[Connection]:
        """Borrow a connection for a write transaction."""

    @abc.abstractmethod
    def decode_json(self, value: Any) -> Any:
        """Turn a JSON column as the driver returns it into Python values (None stays None)."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Close every connection; idempotent."""


class Transaction:
    """The open transaction, as the body of :func:`transaction` sees it."""

    __slots__ = ("_after_commit",)

    def __init__(self) -> None:
        self._after_commit: list[Callable[[], None]] = []

    def after_commit(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` right after ``COMMIT`` succeeds, before any cancellation lands.

        Args:
            callback: Synchronous, must not fail (it advances in-memory objects).
        """
        self._after_commit.append(callback)


@asynccontextmanager
async def transaction(conn: Connection) -> AsyncIterator[Transaction]:
    """Run the body in one transaction on ``conn``.

    ``COMMIT`` and the ``after_commit`` callbacks run shielded from cancellation, so a cancelled
    caller sees either nothing stored and nothing advanced, or both; on any failure or
    cancellation (a failed ``COMMIT`` included) ``ROLLBACK`` runs shielded, with the dialect's
    timeout, and the exception propagates.

    Args:
        conn: The connection, borrowed from :meth:`Dialect.writer`.

    Yields:
        The transaction, to register ``after_commit`` callbacks.
    """
    tx = Transaction()
    try:
        # BEGIN is inside the try: cancelled while it waits (SQLite's busy handler, a slow
        # server), it may still complete afterwards, and the ROLLBACK queued behind it undoes it.
        await conn.begin()
        yield tx
        with anyio.CancelScope(shield=True):
            await conn.commit()
            for callback in tx._after_commit:
                callback()
    except BaseException:
        await conn.rollback()
        raise
