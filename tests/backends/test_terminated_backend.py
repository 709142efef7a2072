"""A PostgreSQL connection terminated inside a transaction: the driver's failure reaches the caller
as StorageUnavailableError, and the service recovers at once. (The classification of driver
errors without a server: ``tests/unit/test_translate.py``.)"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import anyio
import asyncpg
import pytest

import adk_sessions
from adk_sessions import Event
from adk_sessions.errors import StorageUnavailableError

from .._pg import session_row_locked

pytestmark = pytest.mark.anyio


async def test_terminated_backend_mid_transaction_is_unavailable_and_recovers(
    fresh_pg_database: Callable[[], Awaitable[str]],
) -> None:
    """pg_terminate_backend of a connection inside the append transaction: the caller gets
    StorageUnavailableError (never a raw asyncpg error), its session is unchanged, nothing is
    stored, and the same service appends again at once."""
    url = await fresh_pg_database()
    async with adk_sessions.connect(url, max_size=1) as service:
        s = await service.create_session(app_name="a", user_id="u", session_id="s")
        async with session_row_locked(url, "s") as holder:
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
                            "AND datname = current_database() AND backend_type = 'client backend'"
                        )
                        if pid is not None:
                            break
                        await anyio.sleep(0.02)
                await holder.execute("SELECT pg_terminate_backend($1)", pid)
        assert len(failure) == 1 and type(failure[0]) is StorageUnavailableError
        assert isinstance(
            failure[0].__cause__, (asyncpg.PostgresError, asyncpg.InterfaceError, OSError)
        )
        assert s.revision == 0 and s.events == []
        await service.append_event(s, Event(author="a", id="next"))
        got = await service.get_session(app_name="a", user_id="u", session_id="s")
        assert got is not None and [e.id for e in got.events] == ["next"]
