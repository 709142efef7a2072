"""google-adk's side of the faults: NaN state, a new event loop per Runner.run, unclosed services.

Collected only where google-adk is installed (``tests/faults/conftest.py``).
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import textwrap
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import pytest
from google.adk.events import Event as AdkEvent
from google.adk.events import EventActions as AdkEventActions

import adk_sessions
from adk_sessions.adk import AdkSessionService

from ..integrations.adk._scripted import APP
from ._checks import integrity_check

CHECKOUT = Path(__file__).resolve().parents[2]

NON_FINITE = {
    "nan": float("nan"),
    "inf": float("inf"),
    "-inf": float("-inf"),
    "nested nan": [1, {"x": float("nan")}],
    "app nan": float("nan"),
    "user inf": float("inf"),
}


@pytest.mark.anyio
@pytest.mark.parametrize("case", sorted(NON_FINITE))
async def test_non_finite_state_delta_raises_and_leaves_session_unchanged(
    db_url: str, case: str
) -> None:
    """NaN/Infinity in an ADK state delta: ValueError, caller's session and storage unchanged."""
    key = {"app nan": "app:k", "user inf": "user:k"}.get(case, "k")
    async with AdkSessionService(db_url) as service:
        session = await service.create_session(app_name=APP, user_id="u", state={"k": 1})
        before = session.model_copy(deep=True)
        event = AdkEvent(
            invocation_id="inv",
            author="agent",
            actions=AdkEventActions(state_delta={key: NON_FINITE[case]}),
        )
        with pytest.raises(ValueError):
            await service.append_event(session, event)
        assert session == before
        stored = await service.get_session(app_name=APP, user_id="u", session_id=session.id)
        assert stored is not None
        assert stored.events == [] and stored.state == {"k": 1}
        async with adk_sessions.connect(db_url) as core:
            assert (await core.status())["events"] == 0
            assert await core.get_app_state(app_name=APP) == {}
            assert await core.get_user_state(app_name=APP, user_id="u") == {}
        # The session still takes appends.
        fine = AdkEvent(invocation_id="inv", author="agent")
        await service.append_event(session, fine)
        assert len(session.events) == 1


# Two turns through google-adk's sync Runner.run, which drives each call in a new event loop in a
# thread of its own; the session is created, read and closed with asyncio.run (more new loops).
# Run in a child process, so that a service stuck on a dead loop fails the test instead of
# hanging the suite.
SYNC_RUNNER = textwrap.dedent(
    """
    import asyncio, json, sys
    sys.path.append(sys.argv[2])  # the checkout, for tests.integrations.adk._scripted
    from google.adk.runners import Runner
    from google.genai import types
    from adk_sessions.adk import AdkSessionService
    from tests.integrations.adk._scripted import APP, make_agent

    service = AdkSessionService(sys.argv[1])
    runner = Runner(app_name=APP, agent=make_agent(), session_service=service)
    session = asyncio.run(service.create_session(app_name=APP, user_id="ann"))

    def turn(amount):
        message = types.Content(role="user", parts=[types.Part(text=f"bump {amount}")])
        return list(runner.run(user_id="ann", session_id=session.id, new_message=message))

    turns = [len(turn(2)), len(turn(5))]
    loaded = asyncio.run(service.get_session(app_name=APP, user_id="ann", session_id=session.id))
    asyncio.run(service.close())
    print(json.dumps({"turns": turns, "events": len(loaded.events), "state": loaded.state}))
    """
)


def test_sync_runner_run_with_a_new_event_loop_per_call(db_url: str) -> None:
    """google-adk's sync Runner.run (a new event loop per call) works on AdkSessionService(url)."""
    done = subprocess.run(
        [sys.executable, "-c", SYNC_RUNNER, db_url, str(CHECKOUT)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["turns"] == [3, 3]  # call, result, reply per turn
    assert report["events"] == 8  # plus the two user messages
    assert report["state"] == {"count": 7, "history": [2, 5], "app:total": 7, "user:calls": 2}


@pytest.mark.anyio
async def test_adk_retry_after_a_lost_reply_advances_the_callers_session(db_url: str) -> None:
    """AdkSessionService: the same event retried after a lost reply succeeds, stores once."""
    async with AdkSessionService(db_url) as service:
        session = await service.create_session(app_name=APP, user_id="u")
        event = AdkEvent(
            invocation_id="inv",
            author="agent",
            actions=AdkEventActions(state_delta={"k": 1, "temp:t": 1}),
        )
        await service.append_event(session.model_copy(deep=True), event)  # the lost reply
        await service.append_event(session, event)
        assert [e.id for e in session.events] == [event.id]
        assert session.state["k"] == 1
        stored = await service.get_session(app_name=APP, user_id="u", session_id=session.id)
        assert stored is not None and [e.id for e in stored.events] == [event.id]
        await service.append_event(session, AdkEvent(invocation_id="inv", author="agent"))
        assert len(session.events) == 2


UNCLOSED_ADK = textwrap.dedent(
    """
    import asyncio, sys
    from google.adk.events import Event, EventActions
    from adk_sessions.adk import AdkSessionService

    SERVICE = AdkSessionService(sys.argv[1])  # held until exit, never closed, as adk web does

    async def main():
        for i in range(10):
            session = await SERVICE.create_session(app_name="exit", user_id="u", session_id=f"s{i}")
            await SERVICE.append_event(
                session,
                Event(invocation_id="i", author="a", actions=EventActions(state_delta={"n": i})),
            )
        print("done", flush=True)

    asyncio.run(main())
    """
)


def _unclosed_child(url: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", UNCLOSED_ADK, url], capture_output=True, text=True, timeout=120
    )


def test_unclosed_adk_service_on_sqlite_leaves_a_whole_db_file_and_no_noise(
    tmp_path: Path,
) -> None:
    """An AdkSessionService never closed: the .db file alone holds its writes; stderr empty."""
    db = tmp_path / "adk.db"
    done = _unclosed_child(f"sqlite:///{db}")
    alone = tmp_path / "alone"
    alone.mkdir()
    (alone / "copy.db").write_bytes(db.read_bytes())
    assert integrity_check(str(alone / "copy.db")) == "ok"

    async def count() -> int:
        async with AdkSessionService(f"sqlite:///{alone / 'copy.db'}") as service:
            listed = await service.list_sessions(app_name="exit", user_id="u")
            return len(listed.sessions)

    assert (done.returncode, done.stdout.strip()) == (0, "done"), done.stderr
    assert asyncio.run(count()) == 10
    assert done.stderr == ""


def test_unclosed_adk_service_on_postgres_exits_without_noise(
    fresh_pg_database: Callable[[], Coroutine[Any, Any, str]],
) -> None:
    """An AdkSessionService on PostgreSQL never closed: exit status 0, stderr empty."""
    done = _unclosed_child(asyncio.run(fresh_pg_database()))
    assert (done.returncode, done.stdout.strip(), done.stderr) == (0, "done", "")
