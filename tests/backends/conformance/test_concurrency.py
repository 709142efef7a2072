"""Conformance: concurrent writers and cancellation."""

from __future__ import annotations

import copy
from typing import Any

import anyio
import pytest

from adk_sessions import Event, EventActions, Session, SessionService
from adk_sessions.errors import StaleSessionError

pytestmark = pytest.mark.anyio

APP = "app"


def _fold(events: list[Event]) -> dict[str, Any]:
    state: dict[str, Any] = {}
    for ev in events:
        state.update(ev.actions.state_delta)
    return state


async def test_one_winner_among_copies_of_one_revision(service: SessionService) -> None:
    """20 tasks appending through copies of one revision: one wins, 19 get StaleSessionError."""
    s = await service.create_session(app_name=APP, user_id="u")
    wins: list[int] = []
    stale: list[int] = []

    async def writer(i: int) -> None:
        mine = copy.deepcopy(s)
        try:
            await service.append_event(mine, Event(author=f"w{i}"))
            wins.append(i)
        except StaleSessionError:
            stale.append(i)

    async with anyio.create_task_group() as tg:
        for i in range(20):
            tg.start_soon(writer, i)
    assert len(wins) == 1 and len(stale) == 19
    got = await service.get_session(app_name=APP, user_id="u", session_id=s.id)
    assert got is not None and got.revision == 1 and got.events[0].author == f"w{wins[0]}"


async def test_twenty_retrying_writers_lose_nothing(service: SessionService) -> None:
    """20 tasks retrying on staleness: no gap, no duplicate, state is the fold of the events."""
    s = await service.create_session(app_name=APP, user_id="u")
    per_writer = 5
    committed: dict[int, str] = {}  # revision the append reported -> event id
    stale_count = 0

    async def writer(i: int) -> None:
        nonlocal stale_count
        mine = copy.deepcopy(s)
        done = 0
        while done < per_writer:
            ev = Event(
                author=f"w{i}",
                id=f"w{i}-{done}",
                actions=EventActions(state_delta={f"w{i}": done, "last": f"w{i}-{done}"}),
            )
            try:
                await service.append_event(mine, ev)
            except StaleSessionError:
                stale_count += 1
                fresh = await service.get_session(app_name=APP, user_id="u", session_id=s.id)
                assert fresh is not None
                mine = fresh
                continue
            assert mine.revision not in committed
            committed[mine.revision] = ev.id
            done += 1

    async with anyio.create_task_group() as tg:
        for i in range(20):
            tg.start_soon(writer, i)
    got = await service.get_session(app_name=APP, user_id="u", session_id=s.id)
    assert got is not None
    assert got.revision == 20 * per_writer == len(got.events) == len(committed)
    # Every acknowledged event is stored at the revision its writer's session reported (the
    # order in which the writers' tasks resumed need not be the commit order).
    assert [e.id for e in got.events] == [committed[r] for r in range(1, got.revision + 1)]
    assert len({e.id for e in got.events}) == len(got.events)
    assert got.state == _fold(got.events)
    assert got.state["last"] == committed[got.revision]
    assert stale_count > 0  # the writers really did collide


async def test_fifty_sessions_share_app_and_user_state(service: SessionService) -> None:
    """50 sessions appending at once with app: and user: keys: no update is lost."""
    sessions = [
        await service.create_session(app_name=APP, user_id=f"u{i % 5}", session_id=f"s{i}")
        for i in range(50)
    ]
    rounds = 3

    async def run(s: Session, i: int) -> None:
        for r in range(rounds):
            delta = {f"app:s{i}": r, f"user:s{i}": r, "mine": r, "app:shared": r}
            await service.append_event(
                s, Event(author="a", actions=EventActions(state_delta=delta))
            )

    async with anyio.create_task_group() as tg:
        for i, s in enumerate(sessions):
            tg.start_soon(run, s, i)
    app_state = await service.get_app_state(app_name=APP)
    assert {k: v for k, v in app_state.items() if k != "shared"} == {
        f"s{i}": rounds - 1 for i in range(50)
    }
    assert app_state["shared"] == rounds - 1
    for u in range(5):
        user_state = await service.get_user_state(app_name=APP, user_id=f"u{u}")
        assert user_state == {f"s{i}": rounds - 1 for i in range(u, 50, 5)}
    for s in sessions:
        got = await service.get_session(app_name=APP, user_id=s.user_id, session_id=s.id)
        assert got is not None and got.revision == rounds and got.state["mine"] == rounds - 1


async def test_cancellation_never_splits_storage_and_session(service: SessionService) -> None:
    """Cancelled at any point, an append is either stored and applied, or neither; the
    service keeps working (no connection is left inside a transaction)."""
    s = await service.create_session(app_name=APP, user_id="u")
    outcomes = {"stored": 0, "cancelled": 0}
    step = 0.0002
    for i in range(400):  # sweep delays 0, step, ... 39 * step; widen the sweep on slow machines
        if i % 40 == 0 and i:
            if min(outcomes.values()) >= 3:
                break
            step *= 2
        delay = (i % 40) * step
        before = copy.deepcopy(s)
        ev = Event(author="a", id=f"e{i}", actions=EventActions(state_delta={"i": i}))
        with anyio.move_on_after(delay):
            await service.append_event(s, ev)
        got = await service.get_session(app_name=APP, user_id="u", session_id=s.id)
        assert got is not None
        if got.revision == before.revision:
            assert s == before, "cancelled append changed the caller's session"
            outcomes["cancelled"] += 1
        else:
            assert got == s and s.revision == before.revision + 1
            outcomes["stored"] += 1
    assert outcomes["cancelled"] > 0 and outcomes["stored"] > 0
    final = Event(author="a", id="final")
    await service.append_event(s, final)
    got = await service.get_session(app_name=APP, user_id="u", session_id=s.id)
    assert got == s and got.events[-1].id == "final"
