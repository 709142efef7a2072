"""The event cache of AdkSessionService never serves what storage no longer holds.

Every test runs on SQLite and PostgreSQL, with several services (and, once, another OS process)
sharing one database. Work is asserted through counts (round trips, events loaded, events held,
live event objects), never through timings.
"""

from __future__ import annotations

import gc
import sys
import threading
import time
import weakref
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from google.adk.events import Event, EventActions
from google.adk.runners import Runner
from google.adk.sessions import Session
from google.adk.sessions.base_session_service import GetSessionConfig
from google.genai import types

import adk_sessions
from adk_sessions._adk_compat import StaleSessionError
from adk_sessions.adk import AdkSessionService, EventCacheInfo

from ..._children import run_released
from ...backends.test_round_trips import COLUMN, EXPECTED
from ._scripted import APP, make_agent, run_turn

pytestmark = pytest.mark.anyio

WORKER = Path(__file__).resolve().parents[2] / "_append_worker.py"


def _event(text: str, **kwargs: Any) -> Event:
    return Event(
        invocation_id="inv",
        author="agent",
        content=types.Content(role="model", parts=[types.Part(text=text)]),
        **kwargs,
    )


def _texts(session: Session | None) -> list[str]:
    assert session is not None
    return [str(e.content.parts[0].text) for e in session.events if e.content and e.content.parts]


@pytest.fixture
async def cached(db_url: str) -> AsyncIterator[AdkSessionService]:
    """A service with a 1,000-event cache."""
    async with AdkSessionService(db_url, event_cache=1000) as service:
        yield service


@pytest.fixture
async def other(db_url: str) -> AsyncIterator[AdkSessionService]:
    """A second service on the same database, without a cache (another worker of the app)."""
    async with AdkSessionService(db_url) as service:
        yield service


async def _fill(service: AdkSessionService, session_id: str, n: int, user: str = "u") -> Session:
    session = await service.create_session(app_name="app", user_id=user, session_id=session_id)
    for i in range(n):
        await service.append_event(session, _event(f"m{i}"))
    return session


async def _get(service: AdkSessionService, session_id: str, **config: Any) -> Session | None:
    return await service.get_session(
        app_name="app",
        user_id="u",
        session_id=session_id,
        config=GetSessionConfig(**config) if config else None,
    )


async def _cached_then_deleted(cached: AdkSessionService, other: AdkSessionService, n: int) -> None:
    """Session "s" with ``n`` events, read into the cache, then deleted by the other service."""
    await _fill(other, "s", n)
    await _get(cached, "s")
    await other.delete_session(app_name="app", user_id="u", session_id="s")


async def test_unchanged_session_is_served_from_cache(
    cached: AdkSessionService, other: AdkSessionService, backend: str
) -> None:
    """A second get of an unchanged session validates no event and shares the Event objects."""
    await _fill(other, "s", 5)
    first = await _get(cached, "s")
    assert cached.event_cache_info == EventCacheInfo(
        capacity=1000, sessions=1, events=5, hits=0, misses=1, loaded=5
    )
    core = cached.service
    assert core is not None
    before = core.round_trips
    second = await _get(cached, "s")
    # The session row (on Citus: with its user scope, then the app scope), then the events
    # from seq 5 on: what any get costs.
    assert core.round_trips - before == EXPECTED["get_session"][COLUMN[backend]]
    assert first is not None and second is not None
    assert second == first == await _get(other, "s")
    assert second.events is not first.events
    assert all(a is b for a, b in zip(second.events, first.events, strict=True))
    info = cached.event_cache_info
    assert (info.hits, info.misses, info.loaded) == (1, 1, 5)


async def test_returned_lists_and_state_are_the_callers(cached: AdkSessionService) -> None:
    """Appending to a returned session's events or state never changes what the cache serves."""
    await _fill(cached, "s", 2)
    loaded = await _get(cached, "s")
    assert loaded is not None
    loaded.events.append(_event("local only"))
    loaded.state["local"] = 1
    again = await _get(cached, "s")
    assert _texts(again) == ["m0", "m1"]
    assert again is not None and again.state == {}


async def test_appends_of_another_service_are_read_and_only_they(
    cached: AdkSessionService, other: AdkSessionService
) -> None:
    """Events another service appended are read, and only those are validated."""
    writer = await _fill(other, "s", 3)
    await _get(cached, "s")
    for i in range(3, 7):
        await other.append_event(
            writer, _event(f"m{i}", actions=EventActions(state_delta={"n": i}))
        )
    loaded = await _get(cached, "s")
    assert _texts(loaded) == [f"m{i}" for i in range(7)]
    assert loaded == await _get(other, "s")
    assert loaded is not None and loaded.state == {"n": 6}
    info = cached.event_cache_info
    assert (info.hits, info.misses, info.loaded, info.events) == (1, 1, 3 + 4, 7)


async def test_appends_of_another_process_are_read(
    cached: AdkSessionService, other: AdkSessionService, db_url: str
) -> None:
    """Events a separate OS process appended show up in the next cached get."""
    await _fill(other, "s", 2)
    await _get(cached, "s")
    command = [sys.executable, str(WORKER), db_url, "app", "u", "7", "3", "s"]
    [(report, err)] = run_released([command], 60.0)
    assert report["errors"] == [], err
    loaded = await _get(cached, "s")
    assert loaded is not None
    assert [e.id for e in loaded.events][2:] == ["p7-1", "p7-2", "p7-3"]
    assert loaded == await _get(other, "s")
    assert cached.event_cache_info.loaded == 2 + 3


async def test_own_appends_keep_the_cache_current(
    cached: AdkSessionService, other: AdkSessionService
) -> None:
    """After appends through the cached service a get validates nothing and equals storage."""
    session = await _fill(cached, "s", 1)
    await _get(cached, "s")
    for i in range(1, 4):
        await cached.append_event(session, _event(f"m{i}"))
    loaded = await _get(cached, "s")
    assert loaded == session == await _get(other, "s")
    info = cached.event_cache_info
    assert (info.hits, info.misses, info.loaded, info.events) == (1, 1, 1, 4)


async def test_cached_events_are_storage_copies_not_the_callers(
    cached: AdkSessionService, other: AdkSessionService
) -> None:
    """The cache holds an appended event as stored: temp keys trimmed, later edits unseen."""
    session = await _fill(cached, "s", 1)
    await _get(cached, "s")
    event = _event("mine", actions=EventActions(state_delta={"temp:t": 1, "k": 2}))
    await cached.append_event(session, event)
    assert event.actions.state_delta == {"k": 2}
    event.actions.state_delta["edited"] = True  # the caller changes its own event afterwards
    loaded = await _get(cached, "s")
    assert loaded is not None
    assert loaded.events[-1] is not event
    assert loaded.events[-1].actions.state_delta == {"k": 2}
    assert loaded == await _get(other, "s")
    assert loaded.state == {"k": 2}
    assert cached.event_cache_info.loaded == 1


async def test_recreated_session_with_other_events_is_reloaded(
    cached: AdkSessionService, other: AdkSessionService
) -> None:
    """A session deleted and created again (same id, same event count) is read afresh."""
    await _cached_then_deleted(cached, other, 3)
    recreated = await other.create_session(app_name="app", user_id="u", session_id="s")
    for i in range(3):
        await other.append_event(recreated, _event(f"new{i}"))
    loaded = await _get(cached, "s")
    assert _texts(loaded) == ["new0", "new1", "new2"]
    assert loaded == await _get(other, "s")
    assert cached.event_cache_info.misses == 2


async def _create_with_core(
    db_url: str, texts: list[str], when: float | None = None, session_id: str = "s"
) -> Session:
    """Create a session with events e0, e1, ... (fixed timestamps) through another core service.

    ``when`` fixes the creation time (as importers do), so that a re-created session can have
    the very creation time of the one it replaces.
    """
    async with adk_sessions.connect(db_url) as core:
        session = await core.create_session(
            app_name="app",
            user_id="u",
            session_id=session_id,
            last_update_time=when,
            events=[
                adk_sessions.Event(
                    id=f"e{i}",
                    invocation_id="inv",
                    author="agent",
                    timestamp=1000.0 + i,
                    content={"role": "model", "parts": [{"text": text}]},
                )
                for i, text in enumerate(texts)
            ],
        )
    handle = Session(
        id=session.id, app_name="app", user_id="u", last_update_time=session.last_update_time
    )
    handle._storage_update_marker = f"rev:{session.revision}"
    return handle


async def _delete_with_core(db_url: str, session_id: str = "s") -> None:
    async with adk_sessions.connect(db_url) as core:
        await core.delete_session(app_name="app", user_id="u", session_id=session_id)


async def test_recreated_session_with_the_same_creation_time_is_reloaded(
    cached: AdkSessionService, db_url: str
) -> None:
    """Re-created at the same time with the same event ids: the stored text tells them apart."""
    when = time.time() - 100
    await _create_with_core(db_url, ["old0", "old1", "old2"], when)
    assert _texts(await _get(cached, "s")) == ["old0", "old1", "old2"]
    await _delete_with_core(db_url)
    await _create_with_core(db_url, ["new0", "new1", "new2"], when)
    assert _texts(await _get(cached, "s")) == ["new0", "new1", "new2"]
    assert cached.event_cache_info.misses == 2


async def test_recreated_one_event_shorter_at_the_same_time_is_reloaded(
    cached: AdkSessionService, db_url: str
) -> None:
    """Re-created at the same time with one event less than was cached: read afresh."""
    when = time.time() - 100
    await _create_with_core(db_url, ["a", "b", "c"], when)
    await _get(cached, "s")
    await _delete_with_core(db_url)
    await _create_with_core(db_url, ["a", "b"], when)
    assert _texts(await _get(cached, "s")) == ["a", "b"]


async def test_recreated_with_the_same_last_event_is_reloaded(
    cached: AdkSessionService, db_url: str
) -> None:
    """Re-created later with a byte-identical last event: the creation time tells them apart."""
    await _create_with_core(db_url, ["old", "same"])
    await _get(cached, "s")
    await _delete_with_core(db_url)
    await _create_with_core(db_url, ["new", "same"])
    assert _texts(await _get(cached, "s")) == ["new", "same"]


async def test_append_through_a_handle_of_a_recreated_session_at_the_same_time(
    cached: AdkSessionService, db_url: str
) -> None:
    """An append from a re-created session's handle never extends the cached older history."""
    when = time.time() - 100
    await _create_with_core(db_url, ["a", "b", "c"], when)
    await _get(cached, "s")
    await _delete_with_core(db_url)
    handle = await _create_with_core(db_url, ["x"], when)
    await cached.append_event(handle, _event("after"))
    assert _texts(await _get(cached, "s")) == ["x", "after"]


async def test_recreated_shorter_session_is_reloaded(
    cached: AdkSessionService, other: AdkSessionService
) -> None:
    """A session re-created with fewer events than were cached is read afresh."""
    await _cached_then_deleted(cached, other, 4)
    await _fill(other, "s", 1)
    loaded = await _get(cached, "s")
    assert _texts(loaded) == ["m0"]
    assert loaded == await _get(other, "s")


async def test_deleted_session_is_none_and_leaves_the_cache(
    cached: AdkSessionService, other: AdkSessionService
) -> None:
    """A session another service deleted is None, and its events leave the cache."""
    await _cached_then_deleted(cached, other, 2)
    assert await _get(cached, "s") is None
    assert cached.event_cache_info.events == 0
    await _fill(cached, "s", 1)
    assert _texts(await _get(cached, "s")) == ["m0"]


async def test_append_from_a_recreated_session_handle_drops_the_entry(
    cached: AdkSessionService, other: AdkSessionService
) -> None:
    """Appending through a handle of a re-created session never extends the old cached history."""
    await _cached_then_deleted(cached, other, 3)
    handle = await _fill(other, "s", 1)
    await cached.append_event(handle, _event("after"))
    loaded = await _get(cached, "s")
    assert _texts(loaded) == ["m0", "after"]
    assert loaded == await _get(other, "s")


async def test_delete_and_create_through_the_service_release_the_entry(
    cached: AdkSessionService, other: AdkSessionService
) -> None:
    """Deleting a session, or creating one under a cached id, frees its cached events at once."""
    await _fill(cached, "s", 2)
    await _get(cached, "s")
    await cached.delete_session(app_name="app", user_id="u", session_id="s")
    assert cached.event_cache_info.events == 0
    await _fill(cached, "s", 2)
    await _get(cached, "s")
    await other.delete_session(app_name="app", user_id="u", session_id="s")
    await cached.create_session(app_name="app", user_id="u", session_id="s")
    assert cached.event_cache_info.events == 0
    assert _texts(await _get(cached, "s")) == []


async def test_stale_handle_still_raises_with_the_cache(
    cached: AdkSessionService, other: AdkSessionService
) -> None:
    """A handle that fell behind storage raises StaleSessionError; the cache stays correct."""
    await _fill(cached, "s", 1)
    mine = await _get(cached, "s")
    theirs = await _get(other, "s")
    assert mine is not None and theirs is not None
    await other.append_event(theirs, _event("theirs"))
    with pytest.raises(StaleSessionError):
        await cached.append_event(mine, _event("mine"))
    assert _texts(await _get(cached, "s")) == ["m0", "theirs"]


@pytest.mark.parametrize(
    "config",
    [
        {"num_recent_events": 2},
        {"num_recent_events": 0},
        {"num_recent_events": 50},
        {"after_timestamp": 1003.0},
        {"after_timestamp": 1003.0, "num_recent_events": 1},
        {"after_timestamp": 5000.0},
    ],
)
async def test_filters_on_a_cached_session_match_storage(
    cached: AdkSessionService, other: AdkSessionService, config: dict[str, Any]
) -> None:
    """num_recent_events and after_timestamp on a cached session give what storage gives."""
    session = await other.create_session(app_name="app", user_id="u", session_id="s")
    # Timestamps out of append order: filters select by time, results stay in append order.
    for i, ts in enumerate([1005.0, 1001.0, 1003.0, 1004.0, 1002.0]):
        await other.append_event(session, _event(f"m{i}", timestamp=ts))
    await _get(cached, "s")
    await other.append_event(session, _event("m5", timestamp=1003.5))
    got = await _get(cached, "s", **config)
    assert got == await _get(other, "s", **config)
    assert cached.event_cache_info.hits == 1
    assert _texts(await _get(cached, "s")) == [f"m{i}" for i in range(6)]


async def test_filtered_get_without_entry_reads_storage_and_caches_nothing(
    cached: AdkSessionService, other: AdkSessionService
) -> None:
    """A filtered get of an uncached session reads only what it returns and caches nothing."""
    await _fill(other, "s", 5)
    got = await _get(cached, "s", num_recent_events=2)
    assert _texts(got) == ["m3", "m4"]
    assert cached.event_cache_info == EventCacheInfo(
        capacity=1000, sessions=0, events=0, hits=0, misses=0, loaded=2
    )


async def test_bad_filters_are_rejected_with_the_cache(cached: AdkSessionService) -> None:
    """A negative num_recent_events is a ValueError on a cached session too."""
    await _fill(cached, "s", 1)
    await _get(cached, "s")
    with pytest.raises(ValueError, match="num_recent_events"):
        await _get(cached, "s", num_recent_events=-1)


async def test_memory_is_bounded_by_the_capacity(db_url: str, other: AdkSessionService) -> None:
    """Whatever the number of sessions read, at most N cached events stay alive."""
    for k in range(12):
        await _fill(other, f"s{k}", 4)
    alive: list[weakref.ref[Event]] = []
    async with AdkSessionService(db_url, event_cache=10) as small:
        for k in range(12):
            loaded = await _get(small, f"s{k}")
            assert loaded is not None
            alive.extend(weakref.ref(e) for e in loaded.events)
            info = small.event_cache_info
            assert info.events <= 10 and info.sessions <= 2
        del loaded
        gc.collect()
        assert sum(ref() is not None for ref in alive) == 8  # the last two sessions
        assert small.event_cache_info.events == 8
        # The most recently used sessions stay; a get of the oldest one reads it again.
        assert _texts(await _get(small, "s11")) == ["m0", "m1", "m2", "m3"]
        await _get(small, "s0")
        assert small.event_cache_info.misses == 13
        assert small.event_cache_info.hits == 1


async def test_session_larger_than_the_cache_is_not_cached(
    db_url: str, other: AdkSessionService
) -> None:
    """A history longer than N is read whole every time and never held."""
    await _fill(other, "s", 6)
    async with AdkSessionService(db_url, event_cache=5) as small:
        for _ in range(2):
            assert len(_texts(await _get(small, "s"))) == 6
        assert small.event_cache_info == EventCacheInfo(
            capacity=5, sessions=0, events=0, hits=0, misses=2, loaded=12
        )


async def test_runner_turns_on_a_shared_database(db_url: str, other: AdkSessionService) -> None:
    """Runner turns alternate between a cached and an uncached service; both see every turn."""
    async with AdkSessionService(db_url, event_cache=1000) as cached:
        runners = [
            Runner(app_name=APP, agent=make_agent(), session_service=service)
            for service in (cached, other)
        ]
        session = await cached.create_session(app_name=APP, user_id="ann")
        for turn in range(6):
            await run_turn(runners[turn % 2], "ann", session.id, f"bump {turn + 1}")
        loaded = await cached.get_session(app_name=APP, user_id="ann", session_id=session.id)
        fresh = await other.get_session(app_name=APP, user_id="ann", session_id=session.id)
        assert loaded == fresh
        assert loaded is not None and loaded.state["count"] == 21 and len(loaded.events) == 24
        assert cached.event_cache_info.hits >= 2


@pytest.mark.parametrize("bad", [-1, 1.5, "10", True])
def test_event_cache_must_be_a_count(bad: object) -> None:
    """event_cache takes an int >= 0 and nothing else."""
    with pytest.raises(ValueError, match="event_cache"):
        AdkSessionService("sqlite:///unused.db", event_cache=bad)  # type: ignore[arg-type]


async def test_close_empties_the_cache(db_url: str) -> None:
    """close() releases every cached event."""
    service = AdkSessionService(db_url, event_cache=100)
    await _fill(service, "s", 3)
    await _get(service, "s")
    assert service.event_cache_info.events == 3
    await service.close()
    assert service.event_cache_info.events == 0


def test_cache_bookkeeping_holds_under_threads() -> None:
    """Puts, drops and counts from several threads (sync Runner.run's own loops) stay exact."""
    from adk_sessions.adk import _Entry, _EventCache

    cache = _EventCache(50)
    event = Event(author="x")
    # Without the cache's lock this test fails in most runs (lost updates of the counts).
    workers, rounds = 6, 4000

    def work(worker: int) -> None:
        for i in range(rounds):
            key = ("app", "u", f"s{(worker * 7 + i) % 23}")
            if i % 5 == 4:
                cache.drop(key)
            else:
                size = 1 + (i + worker) % 9
                cache.put(
                    key,
                    _Entry(create_time=1.0, revision=size, events=(event,) * size, last_text=""),
                )
            cache.count(hits=1, loaded=2)

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        threads = [threading.Thread(target=work, args=(w,)) for w in range(workers)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        sys.setswitchinterval(interval)
    info = cache.info()
    held = sum(len(entry.events) for entry in cache._entries.values())
    assert info.events == held <= 50
    assert info.sessions == len(cache._entries)
    assert (info.hits, info.loaded) == (workers * rounds, workers * rounds * 2)


async def test_retention_through_the_service_releases_what_it_may_have_deleted(
    cached: AdkSessionService,
) -> None:
    """delete_sessions frees the cached events of the app (or user) it pruned; reads stay right."""
    await _fill(cached, "old", 2)
    await _fill(cached, "kept", 2, user="v")
    await cached.create_session(app_name="other", user_id="u", session_id="x")
    await _fill(cached, "elsewhere", 0)
    for session_id, user in (("old", "u"), ("kept", "v")):
        await cached.get_session(app_name="app", user_id=user, session_id=session_id)
    assert cached.event_cache_info.sessions == 2
    deleted = await cached.delete_sessions(
        app_name="app", user_id="u", updated_before=time.time() + 60
    )
    assert deleted == 2  # "old" and "elsewhere"
    assert cached.event_cache_info.sessions == 1  # user v's session stays cached
    assert await _get(cached, "old") is None
    kept = await cached.get_session(app_name="app", user_id="v", session_id="kept")
    assert _texts(kept) == ["m0", "m1"]
    await cached.delete_sessions(app_name="app", updated_before=time.time() + 60)
    assert cached.event_cache_info.sessions == 0
