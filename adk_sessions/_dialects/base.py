"""What the service needs from a database: reads, write transactions, and error translation.

The service writes every transaction as a *body*: a generator that yields ``(query, params)``
pairs and receives each query's result (rows, a row, a value or ``None``, by the query's kind),
raises to abort, and returns a value. The dialect modules (``postgres``, ``sqlite``) run a body
in one transaction with their driver: PostgreSQL makes one round trip per query, SQLite runs the
body and ``COMMIT`` in one hop to its connection's thread. So the service owns what a transaction
does and decides, the dialect only how it reaches the database, and neither touches the other's
concerns.
"""

from __future__ import annotations

import abc
import asyncio
from collections.abc import Awaitable, Callable, Generator, Mapping
from contextlib import AbstractAsyncContextManager
from typing import Any, Generic, Protocol, TypeVar

import anyio

from .._queries import ExecuteQuery, Migration, OneQuery, Queries, Query, RowsQuery, ValueQuery
from ..errors import StorageError

__all__ = (
    "Body",
    "Connection",
    "ConstraintError",
    "Dialect",
    "Row",
    "drive",
    "drive_async",
    "read",
    "run_to_completion",
    "statement",
)

T = TypeVar("T")


class Row(Protocol):
    """A result row (asyncpg ``Record``, ``sqlite3.Row``): columns by name or position."""

    def __getitem__(self, key: str | int, /) -> Any: ...


Body = Generator[tuple[Query, Mapping[str, Any]], Any, T]
"""A transaction body: yields ``(query, params)``, is sent each result, returns its value."""


class ConstraintError(StorageError):
    """A unique or foreign-key constraint rejected a write (the service decides what it means)."""


def statement(sql: str) -> Query:
    """Wrap one parameterless statement (a migration script's) as an execute query."""
    return ExecuteQuery(name="statement", doc="", statements=(sql,), params=())


class _Steps(Generic[T]):
    """A body, fed one query's outcome at a time: its result, or the failure thrown into it
    (which it may handle, say a constraint violation that means "duplicate id")."""

    def __init__(self, body: Body[T]) -> None:
        self._body = body
        self._outcome: tuple[Any, BaseException | None] = (None, None)
        self.value: T

    def next(self) -> tuple[Query, Mapping[str, Any]] | None:
        """The next query, or None once the body returned (its value is then :attr:`value`)."""
        result, failure = self._outcome
        try:
            return self._body.throw(failure) if failure is not None else self._body.send(result)
        except StopIteration as done:
            self.value = done.value
            return None

    def answer(self, result: Any = None, failure: Exception | None = None) -> None:
        """What the last query gave."""
        self._outcome = (result, failure)


def drive(body: Body[T], run: Callable[[Query, Mapping[str, Any]], Any]) -> T:
    """Run a body synchronously, answering each query with ``run`` (SQLite's worker thread)."""
    steps = _Steps(body)
    while (step := steps.next()) is not None:
        try:
            steps.answer(run(*step))
        except Exception as exc:  # handed to the body, which decides
            steps.answer(failure=exc)
    return steps.value


async def drive_async(
    body: Body[T], run: Callable[[Query, Mapping[str, Any]], Awaitable[Any]]
) -> T:
    """Run a body, answering each query with the coroutine ``run`` (one round trip each)."""
    steps = _Steps(body)
    while (step := steps.next()) is not None:
        try:
            steps.answer(await run(*step))
        except Exception as exc:  # handed to the body, which decides
            steps.answer(failure=exc)
    return steps.value


async def read(conn: Connection, body: Body[T]) -> T:
    """Run a read-only body on a borrowed connection, one round trip (hop) per query."""

    async def run(query: Query, params: Mapping[str, Any]) -> Any:
        method = getattr(conn, query.method)  # rows, one or value: reads have no execute
        return await method(query, params)

    return await drive_async(body, run)


def _ignore(_: object) -> None:
    pass


class _Abandoned(Exception):
    """The body stopped because the caller was cancelled before it committed."""


async def run_to_completion(work: Callable[[], Awaitable[T]]) -> T:
    """Run a write so that no cancellation can tear it apart, whatever cancels the caller.

    ``work`` runs in a task of its own, inside an anyio cancel scope that only this function
    cancels. When the caller is cancelled (an anyio scope, ``asyncio.wait_for``,
    ``asyncio.timeout``, ``task.cancel()``), that scope is cancelled: ``work`` stops at its next
    unshielded await and rolls back, or, when it is already past that point (``COMMIT`` and
    what follows run shielded), it finishes. Either way the caller waits for it and then gets
    its cancellation. A plain asyncio cancellation would otherwise reach ``work`` even inside an
    anyio shield, after ``COMMIT`` but before the caller's session is advanced.

    Args:
        work: The write, from borrowing a connection to returning it.

    Returns:
        What ``work`` returned.

    Raises:
        BaseException: The caller's cancellation, or what ``work`` raised.
    """
    scope = anyio.CancelScope()

    async def run() -> T:
        with scope:
            return await work()
        raise _Abandoned

    task = asyncio.get_running_loop().create_task(run())
    cancelled: BaseException | None = None
    while not task.done():
        try:
            await asyncio.wait((task,))
        except asyncio.CancelledError as exc:
            cancelled = exc
            scope.cancel()
    if cancelled is not None:
        if not task.cancelled():
            task.exception()  # retrieved: the caller's cancellation wins
        raise cancelled
    return task.result()


class Connection(abc.ABC):
    """A connection borrowed for reads. Each call is one round trip (SQLite: one hop).

    Driver exceptions come out as :class:`StorageError` (``StorageUnavailableError`` where a
    retry may succeed) with the driver's exception as ``__cause__``.
    """

    @abc.abstractmethod
    async def rows(self, query: RowsQuery, params: Mapping[str, Any]) -> list[Row]:
        """Run a rows query."""

    @abc.abstractmethod
    async def one(self, query: OneQuery, params: Mapping[str, Any]) -> Row | None:
        """Run a ``^`` query: the first row or None."""

    @abc.abstractmethod
    async def value(self, query: ValueQuery, params: Mapping[str, Any]) -> Any:
        """Run a ``$`` query: the first column of the first row."""


class Dialect(abc.ABC):
    """A database: its queries, migrations, reads, write transactions and JSON decoding.

    Attributes:
        name: ``"postgres"`` or ``"sqlite"``.
        queries: The loaded named queries.
        migrations: The schema migrations, oldest first.
        round_trips: Driver calls made so far (PostgreSQL: statements sent, BEGIN/COMMIT
            included; SQLite: hops to a connection's thread); for tests and benchmarks that count
            work instead of timing it.
        read_only: Opened read-only (SQLite's ``mode=ro``): never migrated, writes fail.
        schema: Where the tables live (PostgreSQL's ``schema=NAME``; SQLite's is ``main``).
        batch_pause: Seconds a long series of write transactions (a prune's batches) rests
            between two of them, so that writers of other processes get their turn.
        distribute: Whether migrations may distribute the tables (PostgreSQL with Citus; the
            ``distribute=false`` URL parameter turns it off). Ignored elsewhere.
        distributed: Whether the tables are Citus tables, as last read from the catalog (see
            ``layout``); the service then runs statements that each touch one table, which
            Citus routes to one shard.
    """

    name: str
    queries: Queries
    migrations: tuple[Migration, ...]
    round_trips: int = 0
    read_only: bool = False
    schema: str = "main"
    batch_pause: float = 0.0
    distribute: bool = True
    distributed: bool = False

    @abc.abstractmethod
    def reader(self) -> AbstractAsyncContextManager[Connection]:
        """Borrow a connection for reads outside a transaction."""

    async def write(self, body: Callable[[], Body[T]], on_commit: Callable[[T], None]) -> T:
        """Run ``body`` in one write transaction, all or nothing.

        The transaction (:meth:`_write`) runs under :func:`run_to_completion`, so whatever
        cancels the caller, it sees either nothing stored and ``on_commit`` not called, or
        both. On any failure the transaction is rolled back and no connection is left inside
        it.

        Args:
            body: Makes the generator to run (called once, when the transaction is open).
            on_commit: Synchronous, must not fail; advances in-memory objects after ``COMMIT``.

        Returns:
            The body's value.
        """
        return await run_to_completion(lambda: self._write(body, on_commit))

    @abc.abstractmethod
    async def _write(self, body: Callable[[], Body[T]], on_commit: Callable[[T], None]) -> T:
        """The dialect's transaction for :meth:`write`: open it, drive ``body`` in it, then
        ``COMMIT`` and ``on_commit(result)`` shielded from cancellation; roll back on any
        failure. Cancellation reaches it only through :func:`run_to_completion`'s scope."""

    async def write_one(self, query: Query, params: Mapping[str, Any]) -> Any:
        """Run one statement that is a transaction by itself, all or nothing.

        A dialect that can send it without ``BEGIN``/``COMMIT`` does (PostgreSQL: one round
        trip); by default it is a body of one query.

        Returns:
            The query's result, by its kind.
        """

        def single() -> Body[Any]:
            return (yield query, params)

        return await self.write(single, _ignore)

    @abc.abstractmethod
    def decode_json(self, value: Any) -> Any:
        """Turn a JSON column as the driver returns it into Python values (None stays None)."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Close every connection; idempotent."""
