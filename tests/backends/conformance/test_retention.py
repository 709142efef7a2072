"""Conformance: retention, ``delete_sessions`` and its read-only companions."""

from __future__ import annotations

import math
import threading
from typing import Any

import anyio
import anyio.to_thread
import pytest

import adk_sessions
from adk_sessions import Event, EventActions, SessionService
from adk_sessions.errors import InvalidArgumentError

pytestmark = pytest.mark.anyio

APP = "app"


async def _session(
    service: SessionService, user: str, sid: str, updated: float, *, app: str = APP
) -> None:
    """A session last updated at ``updated`` with two events and a state in every scope."""
    await service.create_session(
        app_name=app,
        user_id=user,
        session_id=sid,
        state={"mine": sid, "user:u": user, "app:a": app},
        events=[Event(author="x", timestamp=updated - 1), Event(author="y", timestamp=updated)],
        last_update_time=updated - 1,
    )


async def _ids(service: SessionService, app: str = APP) -> set[str]:
    return {s.id for s in (await service.list_sessions(app_name=app)).sessions}


async def test_deletes_sessions_updated_before_and_keeps_the_rest(service: SessionService) -> None:
    """Sessions updated before t go with their events; at t or later, other apps and state stay."""
    for i in range(6):
        await _session(service, f"u{i % 2}", f"s{i}", 100.0 + i)
    await _session(service, "u0", "other-app", 50.0, app="other")
    before = await service.status()

    deleted = await service.delete_sessions(app_name=APP, updated_before=103.0)

    assert deleted == 3
    assert await _ids(service) == {"s3", "s4", "s5"}  # s3: updated exactly at t, kept
    assert await _ids(service, "other") == {"other-app"}
    assert await service.get_session(app_name=APP, user_id="u0", session_id="s0") is None
    after = await service.status()
    assert after["sessions"] == before["sessions"] - 3
    assert after["events"] == before["events"] - 3 * 2
    assert await service.get_app_state(app_name=APP) == {"a": APP}
    assert await service.get_user_state(app_name=APP, user_id="u0") == {"u": "u0"}
    assert await service.get_user_state(app_name=APP, user_id="u1") == {"u": "u1"}


async def test_user_filter_deletes_only_that_users_sessions(service: SessionService) -> None:
    """With user_id only that user's old sessions go; other users' old sessions stay."""
    for i in range(6):
        await _session(service, f"u{i % 2}", f"s{i}", 100.0 + i)
    assert await service.delete_sessions(app_name=APP, user_id="u1", updated_before=1e9) == 3
    assert await _ids(service) == {"s0", "s2", "s4"}
    assert await service.get_user_state(app_name=APP, user_id="u1") == {"u": "u1"}


async def test_nothing_to_delete_returns_zero(service: SessionService) -> None:
    """No session qualifies (or the app has none): 0, nothing touched."""
    await _session(service, "u", "s", 100.0)
    assert await service.delete_sessions(app_name=APP, updated_before=100.0) == 0
    assert await service.delete_sessions(app_name="empty", updated_before=1e9) == 0
    assert await service.delete_sessions(app_name=APP, updated_before=-math.inf) == 0
    assert await _ids(service) == {"s"}


@pytest.mark.parametrize(
    ("count", "batch_size", "batches"),
    [(7, 3, [3, 3, 1]), (6, 3, [3, 3]), (6, 500, [6]), (1, 1, [1]), (0, 2, [0])],
)
async def test_batches_of_batch_size(
    service: SessionService, count: int, batch_size: int, batches: list[int]
) -> None:
    """N sessions go in ceil(N / batch_size) batches (one for none), oldest first."""
    for i in range(count):
        await _session(service, "u", f"s{i}", 100.0 + i)
    await _session(service, "u", "new", 10_000.0)
    seen: list[int] = []
    deleted = await service.delete_sessions(
        app_name=APP, updated_before=1000.0, batch_size=batch_size, progress=seen.append
    )
    assert deleted == count and seen == batches
    assert await _ids(service) == {"new"}


async def test_ties_in_update_time_are_all_deleted_across_batches(service: SessionService) -> None:
    """Many sessions with one update time, split over batches by (user, id), all go."""
    for i in range(5):
        await _session(service, f"u{i % 2}", f"s{i}", 100.0)
    seen: list[int] = []
    deleted = await service.delete_sessions(
        app_name=APP, updated_before=100.5, batch_size=2, progress=seen.append
    )
    assert deleted == 5 and seen == [2, 2, 1]
    assert await _ids(service) == set()


async def test_a_session_appended_to_between_batches_is_kept_if_it_no_longer_qualifies(
    service: SessionService, db_url: str
) -> None:
    """An append between two batches saves its session, unless its time still qualifies."""
    for i in range(6):
        await _session(service, "u", f"s{i}", 100.0 + i)
    sessions = {}
    for sid in ("s4", "s5"):
        got = await service.get_session(app_name=APP, user_id="u", session_id=sid)
        assert got is not None
        sessions[sid] = got

    def append_elsewhere() -> None:
        """Between batches 1 and 2: two appends through another service (another pool or
        connection, as another process would make them), while this one waits."""

        async def appends() -> None:
            async with adk_sessions.connect(db_url) as other:
                await other.append_event(sessions["s4"], Event(author="late", timestamp=5000.0))
                await other.append_event(sessions["s5"], Event(author="late", timestamp=90.0))

        worker = threading.Thread(target=anyio.run, args=(appends,))
        worker.start()
        worker.join()

    calls: list[int] = []

    def progress(count: int) -> None:
        calls.append(count)
        if len(calls) == 1:
            append_elsewhere()

    deleted = await service.delete_sessions(
        app_name=APP, updated_before=1000.0, batch_size=2, progress=progress
    )
    # s4 now updated at 5000: kept. s5's append kept its time (105 > 90): still deleted.
    assert deleted == 5 and calls == [2, 2, 1]
    assert await _ids(service) == {"s4"}
    kept = await service.get_session(app_name=APP, user_id="u", session_id="s4")
    assert kept is not None and kept.revision == 3 and kept.last_update_time == 5000.0


@pytest.mark.parametrize(
    ("kwargs", "named"),
    [
        ({"app_name": ""}, "app_name"),
        ({"app_name": 3}, "app_name"),
        ({"user_id": ""}, "user_id"),
        ({"user_id": "bad\nid"}, "user_id"),
        ({"updated_before": None}, "updated_before"),
        ({"updated_before": "yesterday"}, "updated_before"),
        ({"updated_before": math.nan}, "updated_before"),
        ({"updated_before": True}, "updated_before"),
        ({"batch_size": 0}, "batch_size"),
        ({"batch_size": -1}, "batch_size"),
        ({"batch_size": 2.0}, "batch_size"),
        ({"batch_size": True}, "batch_size"),
        ({"batch_size": 2**63}, "batch_size"),
    ],
)
async def test_bad_arguments_are_refused_and_nothing_deleted(
    service: SessionService, kwargs: dict[str, Any], named: str
) -> None:
    """Bad arguments raise InvalidArgumentError naming the argument; nothing is deleted."""
    await _session(service, "u", "s", 100.0)
    call: dict[str, Any] = {"app_name": APP, "updated_before": 1e9, **kwargs}
    with pytest.raises(InvalidArgumentError, match=named):
        await service.delete_sessions(**call)
    assert await _ids(service) == {"s"}


@pytest.mark.parametrize(
    ("kwargs", "named"),
    [
        ({"app_name": ""}, "app_name"),
        ({"user_id": "bad\x00id"}, "user_id"),
        ({"updated_before": "yesterday"}, "updated_before"),
        ({"updated_before": math.nan}, "updated_before"),
    ],
)
async def test_count_sessions_refuses_bad_arguments(
    service: SessionService, kwargs: dict[str, Any], named: str
) -> None:
    """count_sessions checks its arguments as delete_sessions does."""
    with pytest.raises(InvalidArgumentError, match=named):
        await service.count_sessions(**{"app_name": APP, **kwargs})


async def test_count_sessions_counts_what_a_prune_would_delete(service: SessionService) -> None:
    """count_sessions(updated_before=t) equals what delete_sessions then deletes; it only reads."""
    for i in range(5):
        await _session(service, f"u{i % 2}", f"s{i}", 100.0 + i)
    assert await service.count_sessions(app_name=APP) == 5
    assert await service.count_sessions(app_name=APP, updated_before=103.0) == 3
    assert await service.count_sessions(app_name=APP, user_id="u0", updated_before=103.0) == 2
    assert await service.count_sessions(app_name="none") == 0
    assert await _ids(service) == {f"s{i}" for i in range(5)}
    assert await service.delete_sessions(app_name=APP, updated_before=103.0) == 3


async def test_list_apps_names_the_apps_with_sessions(service: SessionService) -> None:
    """list_apps returns each app with at least one session once, in byte order."""
    assert await service.list_apps() == []
    for app in ("b", "a", "ä", "b", "a-1"):
        await service.create_session(app_name=app, user_id="u", state={"app:k": 1})
    await service.create_session(app_name="gone", user_id="u")
    await service.delete_sessions(app_name="gone", updated_before=math.inf)
    assert await service.list_apps() == ["a", "a-1", "b", "ä"]


async def test_state_written_after_a_prune_starts_from_the_kept_scopes(
    service: SessionService,
) -> None:
    """After a prune, a new session of the user sees the app and user state kept."""
    await _session(service, "u", "old", 100.0)
    await service.delete_sessions(app_name=APP, updated_before=1e9)
    fresh = await service.create_session(app_name=APP, user_id="u")
    await service.append_event(
        fresh, Event(author="x", actions=EventActions(state_delta={"user:n": 2}))
    )
    got = await service.get_session(app_name=APP, user_id="u", session_id=fresh.id)
    assert got is not None and got.state == {"app:a": APP, "user:u": "u", "user:n": 2}


async def test_cancelled_prune_keeps_committed_batches_and_can_finish(
    service: SessionService,
) -> None:
    """Cancelled mid-way, finished batches stay deleted, none half; a rerun deletes the rest."""
    for i in range(6):
        await _session(service, "u", f"s{i}", 100.0 + i)
    seen: list[int] = []
    with anyio.CancelScope() as scope:

        def progress(count: int) -> None:
            seen.append(count)
            scope.cancel()

        await service.delete_sessions(
            app_name=APP, updated_before=1e9, batch_size=2, progress=progress
        )
    assert seen == [2]
    assert await _ids(service) == {"s2", "s3", "s4", "s5"}
    assert await service.delete_sessions(app_name=APP, updated_before=1e9) == 4
    assert (await service.status())["events"] == 0
