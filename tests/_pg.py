"""A PostgreSQL connection of its own: the tests' way to look at a database (or hold a lock in
it) as another client would, beside the service under test."""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator
from typing import Any, NoReturn

import asyncpg
import pytest


@contextlib.asynccontextmanager
async def pg_connection(url: str, **options: Any) -> AsyncIterator[asyncpg.Connection]:
    """Connect to ``url`` (a ``postgresql://`` DSN, ``options`` as ``asyncpg.connect`` takes
    them); closed on the way out, whatever happened."""
    conn = await asyncpg.connect(url, **options)
    try:
        yield conn
    finally:
        await conn.close()


def unavailable(require: str, message: str) -> NoReturn:
    """A server the tests need is missing: skip, or fail when the environment variable
    ``require`` is ``1`` (``.ci/run`` sets ``ADK_SESSIONS_REQUIRE_PG`` and
    ``ADK_SESSIONS_REQUIRE_PGBOUNCER``), so that CI cannot pass by skipping."""
    if os.environ.get(require) == "1":
        pytest.fail(f"{require}=1 but {message}")
    pytest.skip(message)


@contextlib.asynccontextmanager
async def session_row_locked(url: str, session_id: str) -> AsyncIterator[asyncpg.Connection]:
    """Another client holding session ``session_id``'s row lock (``FOR UPDATE``) inside an open
    transaction, as a concurrent append would; yields its connection. The lock is released on
    the way out (the transaction rolled back), or earlier by a ``ROLLBACK`` of the caller's."""
    async with pg_connection(url) as holder:
        await holder.execute("BEGIN")
        await holder.execute("SELECT 1 FROM adk_sessions WHERE id = $1 FOR UPDATE", session_id)
        yield holder
        if holder.is_in_transaction():
            await holder.execute("ROLLBACK")
