"""Driver failures become typed errors, classified once per dialect (``translate()`` in each).

The same on a live PostgreSQL server: ``tests/backends/test_terminated_backend.py``.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import asyncpg
import pytest

from adk_sessions._dialects import postgres as _postgres
from adk_sessions._dialects import sqlite as _sqlite
from adk_sessions._dialects.base import ConstraintError
from adk_sessions.errors import StorageError, StorageUnavailableError


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
