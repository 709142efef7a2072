"""Backend-specific locking: cancellation while blocked inside a transaction, readers vs writers."""

from __future__ import annotations

import copy
import sqlite3
from collections.abc import Awaitable, Callable
from pathlib import Path

import anyio
import pytest

import adk_sessions
from adk_sessions import Event, EventActions

from .._pg import session_row_locked

pytestmark = pytest.mark.anyio


async def test_postgres_cancel_while_waiting_for_row_lock(
    fresh_pg_database: Callable[[], Awaitable[str]],
) -> None:
    """An append cancelled while it waits for the session lock inside its transaction stores
    nothing, leaves the session unchanged, and the pool's connections stay usable."""
    url = await fresh_pg_database()
    async with adk_sessions.connect(url, max_size=1) as service:
        s = await service.create_session(app_name="a", user_id="u", session_id="s")
        async with session_row_locked(url, "s"):
            before = copy.deepcopy(s)
            ev = Event(author="a", actions=EventActions(state_delta={"k": 1}))
            with anyio.move_on_after(0.5) as scope:
                await service.append_event(s, ev)
            assert scope.cancelled_caught
            assert s == before
        # max_size=1: the same pooled connection must be out of its transaction
        with anyio.fail_after(10):
            await service.append_event(s, Event(author="a", id="next"))
            got = await service.get_session(app_name="a", user_id="u", session_id="s")
        assert got is not None and [e.id for e in got.events] == ["next"] and got.state == {}


async def test_sqlite_reads_do_not_wait_for_writes(tmp_path: Path) -> None:
    """With another connection holding the write lock, reads still answer at once (WAL)."""
    path = tmp_path / "s.db"
    async with adk_sessions.connect(f"sqlite:///{path}") as service:
        s = await service.create_session(app_name="a", user_id="u", state={"k": 1})
        other = sqlite3.connect(path, isolation_level=None)
        try:
            other.execute("BEGIN IMMEDIATE")
            other.execute("UPDATE adk_sessions SET state = '{\"k\": 2}'")
            with anyio.fail_after(5):  # busy_timeout is 30 s: a waiting read would time out here
                got = await service.get_session(app_name="a", user_id="u", session_id=s.id)
            assert got is not None and got.state == {"k": 1}
            other.execute("ROLLBACK")
        finally:
            other.close()


async def test_sqlite_writer_waits_for_another_process_lock(tmp_path: Path) -> None:
    """A writer blocked by another connection's write lock proceeds once it is released
    (busy_timeout), instead of failing with 'database is locked'."""
    path = tmp_path / "s.db"
    async with adk_sessions.connect(f"sqlite:///{path}") as service:
        s = await service.create_session(app_name="a", user_id="u")
        other = sqlite3.connect(path, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(service.append_event, s, Event(author="a", id="waited"))
                await anyio.sleep(0.3)
                assert s.revision == 0  # still waiting for the lock
                other.execute("COMMIT")
        finally:
            other.close()
        assert s.revision == 1
        got = await service.get_session(app_name="a", user_id="u", session_id=s.id)
        assert got == s


async def test_sqlite_cancel_while_waiting_for_write_lock(tmp_path: Path) -> None:
    """An append cancelled while its BEGIN IMMEDIATE waits for another process's lock leaves
    the writer connection outside any transaction once that BEGIN completes."""
    path = tmp_path / "s.db"
    async with adk_sessions.connect(f"sqlite:///{path}") as service:
        s = await service.create_session(app_name="a", user_id="u")
        other = sqlite3.connect(path, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")
        try:
            before = copy.deepcopy(s)
            with anyio.move_on_after(0.3) as scope:
                await service.append_event(s, Event(author="a", id="cancelled"))
            assert scope.cancelled_caught
            assert s == before
        finally:
            other.execute("COMMIT")
            other.close()
        with anyio.fail_after(10):
            await service.append_event(s, Event(author="a", id="next"))
        got = await service.get_session(app_name="a", user_id="u", session_id=s.id)
        assert got is not None and [e.id for e in got.events] == ["next"]
