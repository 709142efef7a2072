"""Conformance: retrying an append whose reply was lost (an idempotent retry)."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from adk_sessions import Event, EventActions, Session, SessionService
from adk_sessions.errors import InvalidArgumentError, StaleSessionError

pytestmark = pytest.mark.anyio

APP, USER = "app", "user"


def _ev(delta: dict[str, Any] | None = None, **kwargs: Any) -> Event:
    return Event(author="agent", actions=EventActions(state_delta=delta or {}), **kwargs)


async def _stored(service: SessionService, s: Session) -> Session:
    got = await service.get_session(app_name=APP, user_id=USER, session_id=s.id)
    assert got is not None
    return got


async def _lost_reply(service: SessionService, s: Session, event: Event) -> Session:
    """Append through a copy, as if the caller never got the reply; return its stale copy."""
    in_hand = copy.deepcopy(s)
    await service.append_event(s, event)
    return in_hand


def _without_temp(s: Session) -> Session:
    """The caller's session as storage holds it (temp: keys are never stored)."""
    stored = copy.deepcopy(s)
    stored.state = {k: v for k, v in s.state.items() if not k.startswith("temp:")}
    return stored


async def test_retry_of_the_same_event_is_taken_as_done(service: SessionService) -> None:
    """The same event retried on the copy whose reply was lost advances that copy exactly as the
    append did and stores nothing new."""
    s = await service.create_session(app_name=APP, user_id=USER, state={"a": 0})
    ev = _ev(
        {"a": 1, "app:n": 1, "user:m": [1], "temp:t": "x"}, content={"parts": [{"text": "hi"}]}
    )
    in_hand = await _lost_reply(service, s, ev)
    before = await service.status()
    returned = await service.append_event(in_hand, ev)
    assert in_hand == s
    assert in_hand.state["temp:t"] == "x"
    assert returned == s.events[-1]
    assert await service.status() == before
    assert await _stored(service, s) == _without_temp(s)


async def test_retry_with_other_content_is_invalid(service: SessionService) -> None:
    """The same event id with other content is an InvalidArgumentError; nothing changes."""
    s = await service.create_session(app_name=APP, user_id=USER)
    ev = _ev({"a": 1}, id="e1")
    in_hand = await _lost_reply(service, s, ev)
    snapshot = copy.deepcopy(in_hand)
    with pytest.raises(InvalidArgumentError, match="e1"):
        await service.append_event(in_hand, _ev({"a": 2}, id="e1", timestamp=ev.timestamp))
    assert in_hand == snapshot
    assert await _stored(service, s) == s


async def test_other_event_on_a_copy_one_behind_is_stale(service: SessionService) -> None:
    """Another event on a copy one revision behind is stale, as before."""
    s = await service.create_session(app_name=APP, user_id=USER)
    in_hand = await _lost_reply(service, s, _ev(id="e1"))
    with pytest.raises(StaleSessionError):
        await service.append_event(in_hand, _ev(id="e2"))
    assert (await _stored(service, s)).revision == 1


async def test_retry_two_behind_is_stale(service: SessionService) -> None:
    """Retrying an event that is no longer the last one stored is stale: the caller must
    reload (the session moved on past it)."""
    s = await service.create_session(app_name=APP, user_id=USER)
    ev = _ev(id="e1")
    in_hand = await _lost_reply(service, s, ev)
    await service.append_event(s, _ev(id="e2"))
    with pytest.raises(StaleSessionError):
        await service.append_event(in_hand, ev)
    assert [e.id for e in (await _stored(service, s)).events] == ["e1", "e2"]


async def test_repeated_retries_are_idempotent(service: SessionService) -> None:
    """Every further retry of the same event on a fresh stale copy is taken as done too."""
    s = await service.create_session(app_name=APP, user_id=USER)
    ev = _ev({"k": 1}, id="once")
    in_hand = await _lost_reply(service, s, ev)
    for _ in range(3):
        again = copy.deepcopy(in_hand)
        await service.append_event(again, ev)
        assert again == s
    assert [e.id for e in (await _stored(service, s)).events] == ["once"]
