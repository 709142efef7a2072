"""The adapter on every supported google-adk: hooks present, fallbacks safe, ADK's exceptions."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from google.adk.events import Event, EventActions
from google.adk.sessions import BaseSessionService, Session
from google.adk.sessions.database_session_service import DatabaseSessionService
from google.genai import types

from adk_sessions import _adk_compat as compat
from adk_sessions.adk import AdkSessionService

pytestmark = pytest.mark.anyio

_METHOD_HOOKS = ("_apply_temp_state", "_trim_temp_delta_state", "_update_session_state")


def _event(text: str, **kwargs: object) -> Event:
    return Event(
        invocation_id="inv",
        author="user",
        content=types.Content(role="user", parts=[types.Part(text=text)]),
        **kwargs,  # type: ignore[arg-type]
    )


def test_google_adk_has_every_hook_the_adapter_uses() -> None:
    """The installed google-adk has every private hook the adapter calls (CI: the newest too)."""
    assert compat.missing_hooks() == [], (
        f"google-adk {compat.ADK_VERSION} removed {compat.missing_hooks()}: the adapter runs "
        "on its fallbacks; check adk_sessions/_adk_compat.py against this release"
    )


@pytest.fixture
def without_hooks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Simulate a google-adk without the private hooks and without the session marker slot."""
    for name in _METHOD_HOOKS:
        monkeypatch.delattr(BaseSessionService, name)
    monkeypatch.delitem(Session.__private_attributes__, "_storage_update_marker")


@pytest.mark.usefixtures("without_hooks")
async def test_missing_hooks_are_named_and_fall_back(adk_service: AdkSessionService) -> None:
    """Without the hooks, temp keys are still never stored and stale copies are still refused."""
    assert compat.missing_hooks() == [
        "BaseSessionService._apply_temp_state",
        "BaseSessionService._trim_temp_delta_state",
        "BaseSessionService._update_session_state",
        "Session._storage_update_marker",
    ]
    session = await adk_service.create_session(app_name="app", user_id="u", session_id="s")
    assert compat.get_marker(session) is None
    assert not hasattr(session, "_storage_update_marker")
    outdated = session.model_copy(deep=True)
    event = _event("one", actions=EventActions(state_delta={"temp:t": 1, "k": 2, "user:u": 3}))
    await adk_service.append_event(session, event)
    assert event.actions.state_delta == {"k": 2, "user:u": 3}
    assert session.state == {"temp:t": 1, "k": 2, "user:u": 3}
    assert session.events == [event]

    loaded = await adk_service.get_session(app_name="app", user_id="u", session_id="s")
    assert loaded is not None
    assert loaded.state == {"k": 2, "user:u": 3}
    assert loaded.events == session.events

    # The marker-less rule: storage moved past the copy and its last event is not the newest.
    outdated.last_update_time -= 100
    with pytest.raises(compat.StaleSessionError, match="reload the session"):
        await adk_service.append_event(outdated, _event("two"))
    await adk_service.append_event(loaded, _event("three", timestamp=time.time() + 5))
    final = await adk_service.get_session(app_name="app", user_id="u", session_id="s")
    assert final is not None
    assert [e.content.parts[0].text for e in final.events] == ["one", "three"]  # type: ignore[union-attr,index]


async def _adk_error(service: BaseSessionService, case: str) -> Exception:
    """The exception the service raises for a stale copy or a deleted session."""
    created = await service.create_session(app_name="app", user_id="u", session_id=case)
    first = await service.get_session(app_name="app", user_id="u", session_id=case)
    second = await service.get_session(app_name="app", user_id="u", session_id=case)
    assert first is not None and second is not None
    if case == "stale":
        await service.append_event(first, _event("one", timestamp=time.time() + 1))
    else:
        await service.delete_session(app_name="app", user_id="u", session_id=created.id)
    with pytest.raises(ValueError) as caught:
        await service.append_event(second, _event("two", timestamp=time.time() + 2))
    return caught.value


@pytest.mark.parametrize("case", ["stale", "deleted"])
async def test_errors_are_what_database_session_service_raises(
    adk_service: AdkSessionService, tmp_path: Path, case: str
) -> None:
    """A stale or deleted session raises what this google-adk's DatabaseSessionService raises."""
    adk = DatabaseSessionService(db_url=f"sqlite+aiosqlite:///{tmp_path / 'adk.db'}")
    try:
        theirs = await _adk_error(adk, case)
    finally:
        await adk.close()
    ours = await _adk_error(adk_service, case)
    assert isinstance(ours, type(theirs)), (type(ours), type(theirs))
    assert str(ours) == str(theirs)
    if case == "stale":
        assert type(ours) is type(theirs) is compat.StaleSessionError
        assert str(ours) == compat.STALE_SESSION_MESSAGE
