"""One service used from several event loops in turn (google-adk's sync ``Runner.run()`` starts a
new loop for every call) and left unclosed at the end of a loop."""

from __future__ import annotations

import asyncio
import gc
import warnings
from typing import Any

import pytest

import adk_sessions
from adk_sessions import Event, Session, SessionService

from .._pg import pg_connection
from ..conftest import BACKENDS


async def _open(url: str, **options: Any) -> SessionService:
    return await adk_sessions.connect(url, **options)


@pytest.fixture(params=BACKENDS)
def loop_url(request: pytest.FixtureRequest, tmp_path: object) -> str:
    """A URL of an empty database of each backend (created outside any event loop)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/loops.db"
    url: str = asyncio.run(request.getfixturevalue("create_pg_database")("loops"))
    return url


def test_service_works_from_successive_loops(loop_url: str) -> None:
    """A service opened in one loop keeps working from new loops after each one closed, and
    every write lands exactly once; closing it from the last loop closes everything."""
    service: SessionService = asyncio.run(_open(loop_url))
    session: Session = asyncio.run(service.create_session(app_name="a", user_id="u"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an unclosed transport or connection would warn
        for i in range(4):
            asyncio.run(service.append_event(session, Event(author="x", id=f"e{i}")))
            gc.collect()
        got = asyncio.run(service.get_session(app_name="a", user_id="u", session_id=session.id))
        assert got == session and session.revision == 4
        asyncio.run(service.close())
        gc.collect()


def test_pool_of_a_finished_loop_is_closed(create_pg_database: object) -> None:
    """When a loop ends (asyncio.run cancels its tasks), the pool it used disconnects: an
    unclosed service leaves no server connection behind per loop."""
    url: str = asyncio.run(create_pg_database("loops_pool"))  # type: ignore[operator]

    async def connections() -> int:
        async with pg_connection(url) as conn:
            return int(
                await conn.fetchval(
                    "SELECT count(*) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND backend_type = 'client backend' "
                    "AND pid <> pg_backend_pid()"
                )
            )

    async def use(service: SessionService) -> None:
        await service.create_session(app_name="a", user_id="u")

    service: SessionService = asyncio.run(_open(url, min_size=2))
    for _ in range(3):
        asyncio.run(use(service))
        assert asyncio.run(connections()) == 0
