"""Conformance: append_event and event reads."""

from __future__ import annotations

import copy
import math
from typing import Any

import attrs
import pytest

from adk_sessions import Event, EventActions, Session, SessionService
from adk_sessions.errors import (
    InvalidArgumentError,
    SessionNotFoundError,
    StaleSessionError,
)

pytestmark = pytest.mark.anyio

APP, USER = "app", "user"


async def _new(service: SessionService, **state: Any) -> Session:
    return await service.create_session(app_name=APP, user_id=USER, state=state or None)


async def _reload(service: SessionService, s: Session, **kwargs: Any) -> Session:
    got = await service.get_session(app_name=APP, user_id=USER, session_id=s.id, **kwargs)
    assert got is not None
    return got


def _ev(delta: dict[str, Any] | None = None, **kwargs: Any) -> Event:
    return Event(author="agent", actions=EventActions(state_delta=delta or {}), **kwargs)


async def test_append_advances_session_and_reload_is_equal(service: SessionService) -> None:
    """After appends, get_session equals the caller's session (state, events, revision, time)."""
    s = await _new(service, a=1)
    content = {"role": "model", "parts": [{"text": "héllo"}]}
    for i in range(3):
        await service.append_event(s, _ev({"a": i, "app:x": i, "user:y": [i]}, content=content))
    assert s.revision == 3 and len(s.events) == 3
    assert s.state == {"a": 2, "app:x": 2, "user:y": [2]}
    assert await _reload(service, s) == s


async def test_partial_events_are_not_stored(service: SessionService) -> None:
    """A partial event is returned as is and writes nothing."""
    s = await _new(service)
    ev = _ev({"k": 1}, partial=True)
    assert await service.append_event(s, ev) is ev
    assert s.revision == 0 and s.events == [] and s.state == {}
    assert (await _reload(service, s)).revision == 0


async def test_temp_keys_visible_in_session_not_stored(service: SessionService) -> None:
    """temp: keys reach the caller's state but neither storage nor the stored event."""
    s = await _new(service)
    ev = _ev({"temp:t": 1, "k": 2})
    stored = await service.append_event(s, ev)
    assert ev.actions.state_delta == {"temp:t": 1, "k": 2}  # the caller's event is untouched
    assert stored.actions.state_delta == {"k": 2}
    assert s.state == {"temp:t": 1, "k": 2}
    got = await _reload(service, s)
    assert got.state == {"k": 2}
    assert got.events[0].actions.state_delta == {"k": 2}


async def test_events_keep_append_order_not_timestamp_order(service: SessionService) -> None:
    """Events come back in append order even when timestamps go backwards."""
    s = await _new(service)
    for ts in [300.0, 100.0, 200.0]:
        await service.append_event(s, _ev(timestamp=ts))
    got = await _reload(service, s)
    assert [e.timestamp for e in got.events] == [300.0, 100.0, 200.0]


async def test_last_update_time_never_moves_backwards(service: SessionService) -> None:
    """last_update_time is the max of the previous value and the event timestamp."""
    s = await _new(service)
    created = s.last_update_time
    await service.append_event(s, _ev(timestamp=created - 100))
    assert s.last_update_time == created
    later = created + 50.123456789
    await service.append_event(s, _ev(timestamp=later))
    assert s.last_update_time == later
    assert (await _reload(service, s)).last_update_time == later


@pytest.mark.parametrize("ts", [1732170000.1234567, 0.1 + 0.2, 1e-300, 2.0**52 + 0.5, 1e15])
async def test_timestamps_are_bit_exact(service: SessionService, ts: float) -> None:
    """Event timestamps round-trip bit-exact."""
    s = await _new(service)
    await service.append_event(s, _ev(timestamp=ts))
    got = await _reload(service, s)
    assert got.events[0].timestamp.hex() == ts.hex()


async def test_num_recent_events_and_after(service: SessionService) -> None:
    """num_recent_events gives the last N; after is inclusive; together the last N of those."""
    s = await _new(service)
    for i in range(10):
        await service.append_event(s, _ev(timestamp=1000.0 + i, id=f"e{i}"))

    def ids(sess: Session) -> list[str]:
        return [e.id for e in sess.events]

    assert ids(await _reload(service, s, num_recent_events=3)) == ["e7", "e8", "e9"]
    assert ids(await _reload(service, s, num_recent_events=0)) == []
    assert len((await _reload(service, s, num_recent_events=None)).events) == 10
    assert len((await _reload(service, s, num_recent_events=50)).events) == 10
    assert ids(await _reload(service, s, after=1007.0)) == ["e7", "e8", "e9"]
    assert ids(await _reload(service, s, after=1003.0, num_recent_events=2)) == ["e8", "e9"]
    assert ids(await _reload(service, s, after=5000.0)) == []
    reloaded = await _reload(service, s, num_recent_events=2)
    assert reloaded.revision == 10 and reloaded.state == s.state


async def test_stale_session_rejected_and_unchanged(service: SessionService) -> None:
    """An append through an outdated copy raises StaleSessionError and changes nothing."""
    s = await _new(service)
    old = copy.deepcopy(s)
    await service.append_event(s, _ev({"k": 1}))
    before = copy.deepcopy(old)
    with pytest.raises(StaleSessionError, match="reload") as info:
        await service.append_event(old, _ev({"k": 2}))
    assert isinstance(info.value, ValueError)
    assert old == before
    got = await _reload(service, s)
    assert got.revision == 1 and got.state == {"k": 1}


async def test_stale_does_not_depend_on_timestamps(service: SessionService) -> None:
    """A fresh copy appends even when its last_update_time is far in the past."""
    s = await _new(service)
    s.last_update_time = 0.0
    await service.append_event(s, _ev({"k": 1}))
    assert s.revision == 1


async def test_append_to_missing_or_deleted_session(service: SessionService) -> None:
    """Appending to a never-created, deleted or other user's session: SessionNotFoundError."""
    s = await _new(service)
    ghost = Session(id="ghost", app_name=APP, user_id=USER)
    with pytest.raises(SessionNotFoundError):
        await service.append_event(ghost, _ev())
    other = attrs.evolve(s, user_id="someone else", events=[], state={})
    with pytest.raises(SessionNotFoundError):
        await service.append_event(other, _ev())
    await service.delete_session(app_name=APP, user_id=USER, session_id=s.id)
    before = copy.deepcopy(s)
    with pytest.raises(SessionNotFoundError, match=s.id):
        await service.append_event(s, _ev({"k": 1}))
    assert s == before


async def test_duplicate_event_id_rejected_nothing_written(service: SessionService) -> None:
    """A second append of an existing event id raises InvalidArgumentError; nothing changes."""
    s = await _new(service)
    await service.append_event(s, _ev({"k": 1}, id="dup"))
    before = copy.deepcopy(s)
    with pytest.raises(InvalidArgumentError, match="dup"):
        await service.append_event(s, _ev({"k": 2, "app:a": 1}, id="dup"))
    assert s == before
    got = await _reload(service, s)
    assert got == s and await service.get_app_state(app_name=APP) == {}
    await service.append_event(s, _ev({"k": 3}))  # the service still works
    assert (await _reload(service, s)).revision == 2


@pytest.mark.parametrize(
    "delta",
    [{"bad": math.nan}, {"bad": "a\x00b"}, {"bad": (1,)}, {"app:bad": {1, 2}}, {"bad": object()}],
)
async def test_bad_delta_rejected_nothing_written(
    service: SessionService, delta: dict[str, Any]
) -> None:
    """Non-JSON delta values raise InvalidArgumentError naming the key; nothing changes."""
    s = await _new(service)
    before = copy.deepcopy(s)
    with pytest.raises(InvalidArgumentError, match="bad"):
        await service.append_event(s, _ev(delta))
    assert s == before
    assert (await _reload(service, s)).revision == 0


async def test_bad_event_fields_rejected(service: SessionService) -> None:
    """NaN timestamps, empty ids and non-JSON content raise InvalidArgumentError."""
    s = await _new(service)
    for ev in [_ev(timestamp=math.nan), _ev(id=""), _ev(content={"x": math.inf})]:
        with pytest.raises(InvalidArgumentError):
            await service.append_event(s, ev)
    assert (await _reload(service, s)).revision == 0


async def test_delta_is_shallow_and_none_is_stored(service: SessionService) -> None:
    """A dict value replaces the stored dict; None is stored, not a delete."""
    s = await _new(service, d={"a": 1, "b": 2}, keep=1, **{"app:d": {"x": 1}})
    await service.append_event(s, _ev({"d": {"c": 3}, "keep": None, "app:d": {"y": None}}))
    got = await _reload(service, s)
    assert got.state == {"d": {"c": 3}, "keep": None, "app:d": {"y": None}}
    assert await service.get_app_state(app_name=APP) == {"d": {"y": None}}


async def test_json_values_round_trip(service: SessionService) -> None:
    """State values of every JSON type come back equal, floats exactly."""
    values = {
        "s": 'ünï\n"q"',
        "i": 2**62,
        "neg": -7,
        "f": 0.1 + 0.2,
        "t": True,
        "fa": False,
        "n": None,
        "l": [1, "2", [3.5]],
        "d": {"nested": {"deep": [None]}},
        "empty": {},
    }
    s = await _new(service)
    await service.append_event(s, _ev(values))
    got = await _reload(service, s)
    assert got.state == values
    assert got.state["f"].hex() == (0.1 + 0.2).hex()
    assert type(got.state["i"]) is int and type(got.state["f"]) is float


async def test_event_fields_round_trip(service: SessionService) -> None:
    """Every Event field, extra keys and extra actions included, reloads equal."""
    s = await _new(service)
    ev = Event(
        id="e-1",
        invocation_id="inv",
        author="bot",
        timestamp=123.25,
        branch="a.b",
        content={"role": "model", "parts": [{"text": "hi"}, {"function_call": {"name": "f"}}]},
        actions=EventActions(
            state_delta={"k": 1},
            artifact_delta={"file.txt": 2},
            extra={"transfer_to_agent": "other", "escalate": True},
        ),
        extra={
            "turn_complete": True,
            "usage_metadata": {"total_token_count": 12},
            "future_field": [1, 2],
        },
    )
    await service.append_event(s, ev)
    got = await _reload(service, s)
    assert got.events == [ev]
    assert Event.from_dict(ev.to_dict()) == ev


async def test_deeply_nested_content_rejected(service: SessionService) -> None:
    """Event content nested beyond the JSON encoder's depth raises InvalidArgumentError."""
    s = await _new(service)
    deep: dict[str, Any] = {}
    node = deep
    for _ in range(100_000):  # deeper than any CPython's JSON encoder goes (3.13 encodes 5,000)
        node["x"] = {}
        node = node["x"]
    with pytest.raises(InvalidArgumentError):
        await service.append_event(s, _ev(content=deep))
    assert (await _reload(service, s)).revision == 0


@pytest.mark.parametrize("value", [2.5e16, 1e300, -1e-7, 5e-324, [1e22, {"x": 1.5e-10}]])
async def test_floats_with_exponents_stay_floats(service: SessionService, value: Any) -> None:
    """Floats written with an exponent come back as the same floats, in every scope."""
    s = await service.create_session(app_name=APP, user_id=USER, state={"c": value})
    await service.append_event(s, _ev({"v": value, "app:v": value, "user:v": value}))
    got = await _reload(service, s)
    for key in ("c", "v", "app:v", "user:v"):
        assert got.state[key] == value
        assert repr(got.state[key]) == repr(value)  # floats, not integers or rounded decimals
