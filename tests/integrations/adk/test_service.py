"""AdkSessionService keeps google-adk's BaseSessionService contract, on every backend."""

from __future__ import annotations

import copy
import datetime
import importlib
import time
from pathlib import Path
from typing import Any

import pytest
from google.adk.errors.already_exists_error import AlreadyExistsError
from google.adk.errors.session_not_found_error import SessionNotFoundError
from google.adk.events import Event, EventActions
from google.adk.sessions import BaseSessionService, Session
from google.adk.sessions.base_session_service import GetSessionConfig
from google.genai import types
from pydantic import BaseModel

import adk_sessions
from adk_sessions._adk_compat import StaleSessionError
from adk_sessions.adk import AdkSessionService

pytestmark = pytest.mark.anyio


def _event(text: str = "hi", *, author: str = "user", **kwargs: Any) -> Event:
    return Event(
        invocation_id="inv-1",
        author=author,
        content=types.Content(role="user", parts=[types.Part(text=text)]),
        **kwargs,
    )


async def test_is_a_base_session_service(adk_service: AdkSessionService) -> None:
    """The service is a google-adk BaseSessionService."""
    assert isinstance(adk_service, BaseSessionService)


async def test_created_session_reloads_equal(adk_service: AdkSessionService) -> None:
    """get_session returns a session equal to create_session's, marker and time included."""
    created = await adk_service.create_session(
        app_name="app", user_id="u", state={"k": 1, "app:a": 2, "user:b": 3, "temp:t": 4}
    )
    loaded = await adk_service.get_session(app_name="app", user_id="u", session_id=created.id)
    assert loaded == created
    assert created.state == {"k": 1, "app:a": 2, "user:b": 3}
    assert created._storage_update_marker is not None


async def test_appended_session_reloads_equal(adk_service: AdkSessionService) -> None:
    """After appends the caller's session equals a fresh get_session, time and marker too."""
    session = await adk_service.create_session(app_name="app", user_id="u", session_id="s1")
    for i in range(3):
        event = _event(f"m{i}", actions=EventActions(state_delta={"n": i, "user:seen": i}))
        assert await adk_service.append_event(session, event) is event
    loaded = await adk_service.get_session(app_name="app", user_id="u", session_id="s1")
    assert loaded == session
    assert loaded is not None and loaded.state == {"n": 2, "user:seen": 2}


async def test_create_with_existing_id_raises_already_exists(
    adk_service: AdkSessionService,
) -> None:
    """A second create with the same id raises google-adk's AlreadyExistsError."""
    await adk_service.create_session(app_name="app", user_id="u", session_id="dup")
    with pytest.raises(AlreadyExistsError, match="dup"):
        await adk_service.create_session(app_name="app", user_id="u", session_id="dup")


async def test_missing_session_is_none(adk_service: AdkSessionService) -> None:
    """get_session of an unknown or another user's session returns None."""
    await adk_service.create_session(app_name="app", user_id="u", session_id="s")
    assert await adk_service.get_session(app_name="app", user_id="u", session_id="x") is None
    assert await adk_service.get_session(app_name="app", user_id="v", session_id="s") is None


async def test_get_session_config_filters_events(adk_service: AdkSessionService) -> None:
    """num_recent_events and after_timestamp select events as google-adk's config says."""
    session = await adk_service.create_session(app_name="app", user_id="u", session_id="s")
    base = time.time()
    for i in range(5):
        await adk_service.append_event(session, _event(f"m{i}", timestamp=base + i))

    async def texts(config: GetSessionConfig) -> list[str]:
        got = await adk_service.get_session(
            app_name="app", user_id="u", session_id="s", config=config
        )
        assert got is not None
        return [str(e.content.parts[0].text) for e in got.events]  # type: ignore[union-attr,index]

    assert await texts(GetSessionConfig(num_recent_events=2)) == ["m3", "m4"]
    assert await texts(GetSessionConfig(num_recent_events=0)) == []
    assert await texts(GetSessionConfig(after_timestamp=base + 3)) == ["m3", "m4"]
    assert await texts(GetSessionConfig(after_timestamp=base + 1, num_recent_events=1)) == ["m4"]
    assert await texts(GetSessionConfig()) == [f"m{i}" for i in range(5)]


async def test_list_sessions_merges_state_without_events(adk_service: AdkSessionService) -> None:
    """list_sessions gives every session of the app (or of one user) with state, no events."""
    a = await adk_service.create_session(app_name="app", user_id="u", state={"x": 1})
    await adk_service.append_event(a, _event(actions=EventActions(state_delta={"app:g": 1})))
    b = await adk_service.create_session(app_name="app", user_id="v", state={"user:y": 2})
    await adk_service.create_session(app_name="other", user_id="u")
    everyone = await adk_service.list_sessions(app_name="app")
    assert {s.id for s in everyone.sessions} == {a.id, b.id}
    assert all(s.events == [] for s in everyone.sessions)
    only_v = await adk_service.list_sessions(app_name="app", user_id="v")
    assert [s.id for s in only_v.sessions] == [b.id]
    assert only_v.sessions[0].state == {"user:y": 2, "app:g": 1}


async def test_delete_session_removes_it(adk_service: AdkSessionService) -> None:
    """delete_session removes the session; deleting a missing one is a no-op."""
    s = await adk_service.create_session(app_name="app", user_id="u", state={"user:k": 1})
    await adk_service.append_event(s, _event())
    await adk_service.delete_session(app_name="app", user_id="u", session_id=s.id)
    await adk_service.delete_session(app_name="app", user_id="u", session_id=s.id)
    assert await adk_service.get_session(app_name="app", user_id="u", session_id=s.id) is None
    assert await adk_service.get_user_state(app_name="app", user_id="u") == {"k": 1}


async def test_user_and_app_state_without_session(adk_service: AdkSessionService) -> None:
    """get_user_state/get_app_state return the scopes without prefixes ({} when none)."""
    assert await adk_service.get_user_state(app_name="app", user_id="u") == {}
    await adk_service.create_session(
        app_name="app", user_id="u", state={"user:a": 1, "app:b": 2, "c": 3}
    )
    assert await adk_service.get_user_state(app_name="app", user_id="u") == {"a": 1}
    assert await adk_service.get_app_state(app_name="app") == {"b": 2}


async def test_partial_event_is_not_stored(adk_service: AdkSessionService) -> None:
    """A partial event comes back untouched and nothing is written."""
    session = await adk_service.create_session(app_name="app", user_id="u")
    event = _event(partial=True, actions=EventActions(state_delta={"k": 1}))
    assert await adk_service.append_event(session, event) is event
    assert session.events == [] and "k" not in session.state
    loaded = await adk_service.get_session(app_name="app", user_id="u", session_id=session.id)
    assert loaded == session


async def test_temp_keys_applied_in_memory_and_trimmed(adk_service: AdkSessionService) -> None:
    """temp: keys reach session.state, leave the caller's event, and are never stored."""
    session = await adk_service.create_session(app_name="app", user_id="u")
    event = _event(actions=EventActions(state_delta={"temp:t": 1, "k": 2}))
    await adk_service.append_event(session, event)
    assert event.actions.state_delta == {"k": 2}
    assert session.state == {"temp:t": 1, "k": 2}
    loaded = await adk_service.get_session(app_name="app", user_id="u", session_id=session.id)
    assert loaded is not None
    assert loaded.state == {"k": 2}
    assert loaded.events == session.events


async def test_stale_copy_raises_adk_stale_session_error(adk_service: AdkSessionService) -> None:
    """Appending through an outdated copy raises StaleSessionError and stores nothing."""
    first = await adk_service.create_session(app_name="app", user_id="u", session_id="s")
    second = await adk_service.get_session(app_name="app", user_id="u", session_id="s")
    assert second is not None
    await adk_service.append_event(first, _event("one"))
    with pytest.raises(StaleSessionError):
        await adk_service.append_event(second, _event("two"))
    loaded = await adk_service.get_session(app_name="app", user_id="u", session_id="s")
    assert loaded == first


async def test_append_to_deleted_session_raises_not_found(adk_service: AdkSessionService) -> None:
    """Appending to a deleted session raises google-adk's SessionNotFoundError."""
    session = await adk_service.create_session(app_name="app", user_id="u")
    await adk_service.delete_session(app_name="app", user_id="u", session_id=session.id)
    with pytest.raises(SessionNotFoundError):
        await adk_service.append_event(session, _event())


async def test_markerless_session_follows_adk_fallback(adk_service: AdkSessionService) -> None:
    """Without a marker, a session is current iff its last event is the newest stored one."""
    session = await adk_service.create_session(app_name="app", user_id="u", session_id="s")
    await adk_service.append_event(session, _event("one", timestamp=time.time() + 10))
    current = await adk_service.get_session(app_name="app", user_id="u", session_id="s")
    assert current is not None
    current._storage_update_marker = None
    current.last_update_time -= 100
    await adk_service.append_event(current, _event("two"))
    assert current._storage_update_marker is not None

    outdated = session.model_copy(deep=True)
    outdated._storage_update_marker = None
    outdated.last_update_time -= 100
    with pytest.raises(StaleSessionError):
        await adk_service.append_event(outdated, _event("three"))

    loaded = await adk_service.get_session(app_name="app", user_id="u", session_id="s")
    assert loaded == current


async def test_markerless_session_not_older_than_storage_is_accepted(
    adk_service: AdkSessionService,
) -> None:
    """Without a marker, a session whose last_update_time is not older than storage is current."""
    session = await adk_service.create_session(app_name="app", user_id="u", session_id="s")
    await adk_service.append_event(session, _event("one"))
    by_hand = session.model_copy(update={"events": []})
    by_hand._storage_update_marker = None
    await adk_service.append_event(by_hand, _event("two"))
    loaded = await adk_service.get_session(app_name="app", user_id="u", session_id="s")
    assert loaded is not None and len(loaded.events) == 2


class _Point(BaseModel):
    x: int


async def test_non_json_state_converted_like_adk(adk_service: AdkSessionService) -> None:
    """Datetimes, sets, models and callables in state are stored as google-adk converts them."""
    state: dict[str, Any] = {
        "when": datetime.datetime(2024, 5, 6, 7, 8, 9, tzinfo=datetime.timezone.utc),
        "tags": {"b"},
        "point": _Point(x=1),
        "tuple": (1, 2),
        "user:fn": len,
    }
    session = await adk_service.create_session(app_name="app", user_id="u", state=state)
    expected = {
        "when": "2024-05-06T07:08:09Z",
        "tags": ["b"],
        "point": {"x": 1},
        "tuple": [1, 2],
        "user:fn": "<built-in function len>",
    }
    # google-adk's own converter, where the installed release has one (2.8.0 and later).
    session_util = importlib.import_module("google.adk.sessions._session_util")
    make_json_safe_state = getattr(session_util, "make_json_safe_state", None)
    if make_json_safe_state is not None:
        assert make_json_safe_state(state) == expected
    assert session.state == expected
    event = _event(actions=EventActions(state_delta={"later": datetime.date(2024, 1, 2)}))
    await adk_service.append_event(session, event)
    loaded = await adk_service.get_session(app_name="app", user_id="u", session_id=session.id)
    assert loaded is not None
    assert loaded.state == {**expected, "later": "2024-01-02"}


async def test_event_without_id_gets_its_stored_id(adk_service: AdkSessionService) -> None:
    """An event appended without an id gets the id it is stored under."""
    session = await adk_service.create_session(app_name="app", user_id="u")
    event = _event()
    event.id = ""
    await adk_service.append_event(session, event)
    loaded = await adk_service.get_session(app_name="app", user_id="u", session_id=session.id)
    assert event.id and loaded is not None and loaded.events == [event]


async def test_url_service_connects_lazily_and_reconnects(db_url: str) -> None:
    """A URL-built service connects on first use, and again after close()."""
    adk = AdkSessionService(uri=db_url, agents_dir="/nonexistent")
    assert adk.service is None
    created = await adk.create_session(app_name="app", user_id="u")
    assert adk.service is not None
    await adk.close()
    assert adk.service is None
    assert await adk.get_session(app_name="app", user_id="u", session_id=created.id) == created
    await adk.flush()
    await adk.close()


async def test_given_service_used_as_is_and_left_open(db_url: str) -> None:
    """A core service passed in is used as is, and close() leaves it open."""
    async with adk_sessions.connect(db_url) as core:
        async with AdkSessionService(core) as adk:
            assert adk.service is core
            created = await adk.create_session(app_name="app", user_id="u")
        stored = await core.get_session(app_name="app", user_id="u", session_id=created.id)
        assert stored is not None and stored.id == created.id


@pytest.mark.parametrize("form", ["positional", "db_url", "sqlalchemy", "db_path", "path"])
async def test_adk_constructor_forms_reach_one_database(tmp_path: Path, form: str) -> None:
    """DatabaseSessionService and SqliteSessionService constructor forms all work unchanged."""
    db = tmp_path / "forms.db"
    service = {
        "positional": lambda: AdkSessionService(f"sqlite:///{db}"),
        "db_url": lambda: AdkSessionService(db_url=f"sqlite:///{db}"),
        "sqlalchemy": lambda: AdkSessionService(f"sqlite+aiosqlite:///{db}"),
        "db_path": lambda: AdkSessionService(db_path=str(db)),
        "path": lambda: AdkSessionService(str(db)),
    }[form]()
    async with service:
        await service.create_session(app_name="app", user_id="u", session_id=form)
    async with AdkSessionService(f"sqlite:///{db}") as check:
        assert await check.get_session(app_name="app", user_id="u", session_id=form)


def test_constructor_requires_exactly_one_source() -> None:
    """No URL, or two of them, is a TypeError."""
    with pytest.raises(TypeError):
        AdkSessionService()
    with pytest.raises(TypeError):
        AdkSessionService("sqlite:///a.db", uri="sqlite:///b.db")


async def test_loaded_sessions_are_ordinary_pydantic_sessions(
    adk_service: AdkSessionService,
) -> None:
    """Sessions assembled without validation behave as validated ones: dump, copy, assign."""
    from adk_sessions import adk

    assert adk._build_session is adk._assembled_session  # the fast path, on this google-adk
    created = await adk_service.create_session(
        app_name="app", user_id="u", session_id="s", state={"k": [1], "user:u": 2}
    )
    await adk_service.append_event(created, _event(actions=EventActions(state_delta={"n": 1})))
    loaded = await adk_service.get_session(app_name="app", user_id="u", session_id="s")
    listed = (await adk_service.list_sessions(app_name="app")).sessions[0]
    assert loaded is not None
    validated = Session.model_validate(loaded.model_dump())
    assert loaded.model_dump() == validated.model_dump()
    assert loaded.model_fields_set == validated.model_fields_set
    assert Session.model_validate_json(loaded.model_dump_json()) == validated
    assert copy.deepcopy(loaded) == loaded and loaded.model_copy() == loaded
    assert listed.model_dump() == {**validated.model_dump(), "events": []}
    loaded.state = {"replaced": True}
    assert loaded.state == {"replaced": True}
    assert loaded._storage_update_marker == created._storage_update_marker
