"""Driver failures become typed errors, classified once per dialect (``translate()`` in each)."""

from __future__ import annotations

import sqlite3
from collections.abc import Awaitable, Callable
from pathlib import Path

import anyio
import asyncpg
import pytest

import adk_sessions
from adk_sessions import Event
from adk_sessions._dialects import postgres as _postgres
from adk_sessions._dialects import sqlite as _sqlite
from adk_sessions._dialects.base import ConstraintError
from adk_sessions.errors import StorageError, StorageUnavailableError

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (asyncpg.SerializationError("x"), StorageUnavailableError),
        (asyncpg.DeadlockDetectedError("x"), StorageUnavailableError),
        (asyncpg.AdminShutdownError("x"), StorageUnavailableError),
        (asyncpg.CannotConnectNowError("x"), StorageUnavailableError),
        (asyncpg.QueryCanceledError("x"), StorageUnavailableError),
        (asyncpg.TooManyConnectionsError("x"), StorageUnavailableError),
        (asyncpg.ConnectionDoesNotExistError("x"), StorageUnavailableError),
        (ConnectionRefusedError("x"), StorageUnavailableError),
        (TimeoutError(), StorageUnavailableError),
        (asyncpg.UniqueViolationError("x"), ConstraintError),
        (asyncpg.UndefinedTableError("x"), StorageError),
        (asyncpg.DataError("x"), StorageError),
        (asyncpg.InternalClientError("x"), StorageError),
    ],
    ids=lambda value: type(value).__name__ if isinstance(value, BaseException) else "",
)
def test_postgres_classification(exc: BaseException, expected: type[StorageError]) -> None:
    """Each asyncpg failure maps to exactly the expected class, with the driver's cause."""
    error = _postgres.translate(exc)
    assert type(error) is expected
    assert error.__cause__ is exc


def test_postgres_lost_connection_is_retryable() -> None:
    """Any failure after which the connection is closed may succeed on a new connection."""
    error = _postgres.translate(asyncpg.InternalClientError("cannot switch to state 12"), lost=True)
    assert type(error) is StorageUnavailableError


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ("database is locked", StorageUnavailableError),
        ("database or disk is full", StorageError),
        ("attempt to write a readonly database", StorageError),
    ],
)
def test_sqlite_classification(message: str, expected: type[StorageError]) -> None:
    """SQLite's busy/locked answers are retryable; a full disk or a read-only file is not."""
    exc = sqlite3.OperationalError(message)
    assert type(_sqlite.translate(exc)) is expected
    assert type(_sqlite.translate(sqlite3.IntegrityError("UNIQUE"))) is ConstraintError


def test_sqlite_classification_from_a_real_busy_database(tmp_path: Path) -> None:
    """A real SQLITE_BUSY (another connection holds the write lock) is retryable."""
    path = f"{tmp_path}/busy.db"
    holder = sqlite3.connect(path, isolation_level=None)
    waiter = sqlite3.connect(path, isolation_level=None, timeout=0)
    try:
        holder.execute("BEGIN IMMEDIATE")
        with pytest.raises(sqlite3.OperationalError) as info:
            waiter.execute("BEGIN IMMEDIATE")
        assert type(_sqlite.translate(info.value)) is StorageUnavailableError
    finally:
        holder.close()
        waiter.close()


async def test_terminated_backend_mid_transaction_is_unavailable_and_recovers(
    fresh_pg_database: Callable[[], Awaitable[str]],
) -> None:
    """pg_terminate_backend of a connection inside the append transaction: the caller gets
    StorageUnavailableError (never a raw asyncpg error), its session is unchanged, nothing is
    stored, and the same service appends again at once."""
    url = await fresh_pg_database()
    async with adk_sessions.connect(url, max_size=1) as service:
        s = await service.create_session(app_name="a", user_id="u", session_id="s")
        holder = await asyncpg.connect(url)
        try:
            await holder.execute("BEGIN")
            await holder.execute("SELECT 1 FROM adk_sessions WHERE id = 's' FOR UPDATE")
            failure: list[BaseException] = []

            async def append() -> None:
                try:
                    await service.append_event(s, Event(author="a", id="lost"))
                except BaseException as exc:
                    failure.append(exc)

            async with anyio.create_task_group() as tg:
                tg.start_soon(append)
                with anyio.fail_after(10):
                    while True:  # the append waits for the row lock inside its transaction
                        pid = await holder.fetchval(
                            "SELECT pid FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                            "AND datname = current_database()"
                        )
                        if pid is not None:
                            break
                        await anyio.sleep(0.02)
                await holder.execute("SELECT pg_terminate_backend($1)", pid)
            await holder.execute("ROLLBACK")
        finally:
            await holder.close()
        assert len(failure) == 1 and type(failure[0]) is StorageUnavailableError
        assert isinstance(
            failure[0].__cause__, (asyncpg.PostgresError, asyncpg.InterfaceError, OSError)
        )
        assert s.revision == 0 and s.events == []
        await service.append_event(s, Event(author="a", id="next"))
        got = await service.get_session(app_name="a", user_id="u", session_id="s")
        assert got is not None and [e.id for e in got.events] == ["next"]
