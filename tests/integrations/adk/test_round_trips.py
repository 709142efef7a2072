"""Round trips per AdkSessionService operation, cache off and on: counted, never timed.

The adapter adds no round trip to the core's (see tests/backends/test_round_trips.py): a get is the
session row (on Citus, then the app scope) and one events query, with the cache too (then only the
events from the cached revision on); a cached session that no longer matches storage costs one
more get.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest
from google.adk.events import Event

import adk_sessions
from adk_sessions.adk import AdkSessionService

from ...backends.test_round_trips import COLUMN, EXPECTED

pytestmark = pytest.mark.anyio


async def _count(service: AdkSessionService, call: Callable[[], Awaitable[object]]) -> int:
    core = service.service
    assert core is not None
    before = core.round_trips
    await call()
    return core.round_trips - before


@pytest.mark.parametrize("event_cache", [0, 100])
async def test_adapter_round_trips(db_url: str, backend: str, event_cache: int) -> None:
    """Each adapter operation makes the documented number of round trips, cache off and on."""
    core_counts = {name: counts[COLUMN[backend]] for name, counts in EXPECTED.items()}
    reads = core_counts["get_session"]  # the session row (Citus: + the app scope), the events
    async with (
        AdkSessionService(db_url, event_cache=event_cache) as adk,
        AdkSessionService(db_url) as other,
    ):
        session = await adk.create_session(app_name="a", user_id="u", session_id="s")
        for i in range(30):
            await adk.append_event(session, Event(author="x", id=f"h{i}"))

        def get() -> Awaitable[object]:
            return adk.get_session(app_name="a", user_id="u", session_id="s")

        assert await _count(adk, get) == reads  # cache on: a miss, then the entry is kept
        assert await _count(adk, get) == reads  # cache on: the row and the event at the revision
        writer = await other.get_session(app_name="a", user_id="u", session_id="s")
        assert writer is not None
        await other.append_event(writer, Event(author="x", id="foreign"))
        assert await _count(adk, get) == reads
        current = await adk.get_session(app_name="a", user_id="u", session_id="s")
        assert current is not None
        assert (
            await _count(adk, lambda: adk.append_event(current, Event(author="x")))
            == core_counts["append"]
        )
        assert await _count(adk, get) == reads
        assert (
            await _count(adk, lambda: adk.list_sessions(app_name="a", user_id="u"))
            == core_counts["list_user_sessions"]
        )
        assert (
            await _count(adk, lambda: adk.create_session(app_name="a", user_id="u"))
            == core_counts["create_session"]
        )
        async with adk_sessions.connect(db_url) as core:  # re-created behind the cache's back
            await core.delete_session(app_name="a", user_id="u", session_id="s")
            await core.create_session(
                app_name="a", user_id="u", session_id="s", events=[adk_sessions.Event(author="x")]
            )
        # Cache on: the row shows a revision below the cached one (no events query), then the
        # whole session is read again.
        assert await _count(adk, get) == (2 * reads - 1 if event_cache else reads)
        assert await _count(adk, get) == reads
