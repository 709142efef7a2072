"""A real google-adk Runner on AdkSessionService: history and state survive, races are caught."""

from __future__ import annotations

from typing import Any

import anyio
import pytest
from google.adk.runners import Runner

from adk_sessions._adk_compat import StaleSessionError
from adk_sessions.adk import AdkSessionService

from ._scripted import APP, make_agent, run_turn

pytestmark = pytest.mark.anyio


def _texts(events: list[Any]) -> list[str]:
    out = []
    for event in events:
        for part in event.content.parts if event.content else []:
            if part.text:
                out.append(f"{event.author}: {part.text}")
            elif part.function_call:
                out.append(f"{event.author}: call {part.function_call.args}")
            elif part.function_response:
                out.append(f"{event.author}: result {part.function_response.response}")
    return out


async def test_multi_turn_history_and_state_reload_equal(
    adk_service: AdkSessionService, db_url: str
) -> None:
    """Two tool-calling turns reload, through a new service, exactly as the Runner saw them."""
    runner = Runner(app_name=APP, agent=make_agent(), session_service=adk_service)
    session = await adk_service.create_session(
        app_name=APP, user_id="ann", state={"user:name": "Ann", "temp:dropped": 1}
    )
    seen = await run_turn(runner, "ann", session.id, "bump 2")
    seen += await run_turn(runner, "ann", session.id, "bump 5")

    async with AdkSessionService(db_url) as fresh:
        loaded = await fresh.get_session(app_name=APP, user_id="ann", session_id=session.id)
        assert loaded is not None
        assert [e for e in loaded.events if e.author != "user"] == seen
        assert _texts(loaded.events) == [
            "user: bump 2",
            "counter: call {'amount': 2}",
            "counter: result {'count': 2, 'seen_temp': 2}",
            "counter: the count is 2",
            "user: bump 5",
            "counter: call {'amount': 5}",
            "counter: result {'count': 7, 'seen_temp': 5}",
            "counter: the count is 7",
        ]
        assert loaded.state == {
            "count": 7,
            "history": [2, 5],
            "app:total": 7,
            "user:calls": 2,
            "user:name": "Ann",
        }
        assert all(
            not key.startswith("temp:") for e in loaded.events for key in e.actions.state_delta
        )
        assert await fresh.get_user_state(app_name=APP, user_id="ann") == {
            "calls": 2,
            "name": "Ann",
        }
        assert await fresh.get_app_state(app_name=APP) == {"total": 7}
        reloaded_again = await adk_service.get_session(
            app_name=APP, user_id="ann", session_id=session.id
        )
        assert reloaded_again == loaded


async def test_two_sessions_run_concurrently(adk_service: AdkSessionService) -> None:
    """Turns of two users' sessions interleave; each history and state add up on its own."""
    runner = Runner(app_name=APP, agent=make_agent(), session_service=adk_service)
    ids = {
        user: (await adk_service.create_session(app_name=APP, user_id=user)).id
        for user in ("ann", "bob")
    }
    amounts = {"ann": [1, 2, 3], "bob": [10, 20, 30]}

    async def converse(user: str) -> None:
        for amount in amounts[user]:
            await run_turn(runner, user, ids[user], f"bump {amount}")

    async with anyio.create_task_group() as tg:
        for user in ids:
            tg.start_soon(converse, user)

    for user, session_id in ids.items():
        loaded = await adk_service.get_session(app_name=APP, user_id=user, session_id=session_id)
        assert loaded is not None
        assert len(loaded.events) == 4 * len(amounts[user])
        assert loaded.state["count"] == sum(amounts[user])
        assert loaded.state["history"] == amounts[user]
        assert loaded.state["user:calls"] == 3
        # The tool's read-modify-write of app:total races across sessions by design; the
        # shared scope must still read the same from every session.
        assert loaded.state["app:total"] == (await adk_service.get_app_state(app_name=APP))["total"]
        assert len({e.id for e in loaded.events}) == len(loaded.events)


async def test_concurrent_turns_on_one_session_one_is_stale(
    adk_service: AdkSessionService,
) -> None:
    """Two simultaneous turns on one session: one StaleSessionError, a clean history, and on."""
    both_in_model = anyio.Event()
    arrived = 0

    async def gate() -> None:
        nonlocal arrived
        arrived += 1
        if arrived == 2:
            both_in_model.set()
        with anyio.fail_after(20):
            await both_in_model.wait()

    runner = Runner(app_name=APP, agent=make_agent(gate), session_service=adk_service)
    session = await adk_service.create_session(app_name=APP, user_id="ann")
    results: dict[int, list[Any]] = {}
    stale: list[int] = []

    async def turn(amount: int) -> None:
        try:
            results[amount] = await run_turn(runner, "ann", session.id, f"bump {amount}")
        except StaleSessionError:
            stale.append(amount)
            both_in_model.set()

    async with anyio.create_task_group() as tg:
        tg.start_soon(turn, 3)
        tg.start_soon(turn, 4)

    assert len(stale) == 1
    (winner,) = results
    loaded = await adk_service.get_session(app_name=APP, user_id="ann", session_id=session.id)
    assert loaded is not None
    assert loaded.state == {
        "count": winner,
        "history": [winner],
        "app:total": winner,
        "user:calls": 1,
    }
    assert len({e.id for e in loaded.events}) == len(loaded.events)
    assert loaded.events[-3:] == results[winner]
    user_turns = [t for t in _texts(loaded.events) if t.startswith("user: ")]
    assert f"user: bump {winner}" in user_turns and len(user_turns) <= 2
    assert [e.timestamp for e in loaded.events] == sorted(e.timestamp for e in loaded.events)

    arrived = 2  # the gate stays open from here on
    more = await run_turn(runner, "ann", session.id, "bump 1")
    after = await adk_service.get_session(app_name=APP, user_id="ann", session_id=session.id)
    assert after is not None
    assert after.events[: len(loaded.events)] == loaded.events
    assert after.events[-3:] == more
    assert after.state["count"] == winner + 1
