"""Every class of bad input is an InvalidArgumentError (a ValueError) and writes nothing.

Each case runs against a database holding one session with an event and state in all three
scopes; afterwards the row counts, that session (as stored and as held by the caller), the app
and user scopes and the session list are exactly as before. An event may be refused when it is
built or when it is appended: both are inside the checked block.
"""

from __future__ import annotations

import base64
import copy
import json
import sqlite3
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import pytest

from adk_sessions import Event, EventActions, Session, SessionService
from adk_sessions.errors import InvalidArgumentError, StorageError

pytestmark = pytest.mark.anyio

APP, USER, SID = "bad-app", "bad-user", "bad-session"
HUGE_INT = 10**5000  # over the 4,300 digits Python converts to text
CONTROLS = [chr(c) for c in range(0x20)] + ["\x7f"]
# Core field names that Event.extra / EventActions.extra must not shadow.
EVENT_FIELDS = {
    "id": "other-id",
    "invocation_id": "inv",
    "author": "someone",
    "timestamp": "abc",
    "partial": False,
    "branch": "b",
    "content": {"parts": []},
    "actions": 5,
}
ACTION_FIELDS = {"state_delta": {"b": 2}, "artifact_delta": {"f": 1}}

Case = Callable[[SessionService, Session], Awaitable[object]]


async def _seed(service: SessionService) -> Session:
    session = await service.create_session(
        app_name=APP, user_id=USER, session_id=SID, state={"a": 1, "app:x": 1, "user:y": 1}
    )
    await service.append_event(
        session,
        Event(
            id="e1",
            author="user",
            content={"parts": [{"text": "hi"}]},
            actions=EventActions(state_delta={"a": 2, "app:x": 2, "user:y": 2}),
        ),
    )
    return session


async def _snapshot(service: SessionService) -> tuple[Any, ...]:
    """Everything a bad call could have changed."""
    return (
        await service.status(),
        await service.get_session(app_name=APP, user_id=USER, session_id=SID),
        await service.get_app_state(app_name=APP),
        await service.get_user_state(app_name=APP, user_id=USER),
        await service.list_sessions(app_name=APP),
    )


async def _refused(service: SessionService, *cases: Case) -> None:
    """Run each case; assert InvalidArgumentError each time and that nothing changed."""
    session = await _seed(service)
    before = await _snapshot(service)
    in_hand = copy.deepcopy(session)
    for case in cases:
        with pytest.raises(InvalidArgumentError) as info:
            await case(service, session)
        assert isinstance(info.value, ValueError)
        assert session == in_hand, "the caller's session changed"
    assert await _snapshot(service) == before, "something was written"


def _append(event: Callable[[], Event]) -> Case:
    """A case appending the event ``event()`` builds (building is inside the checked block)."""

    async def case(service: SessionService, session: Session) -> object:
        return await service.append_event(session, event())

    return case


def _create(**kwargs: Any) -> Case:
    async def case(service: SessionService, session: Session) -> object:
        return await service.create_session(**{"app_name": APP, "user_id": USER, **kwargs})

    return case


def _get(**kwargs: Any) -> Case:
    async def case(service: SessionService, session: Session) -> object:
        return await service.get_session(
            **{"app_name": APP, "user_id": USER, "session_id": SID, **kwargs}
        )

    return case


def _list(**kwargs: Any) -> Case:
    async def case(service: SessionService, session: Session) -> object:
        return await service.list_sessions(**{"app_name": APP, **kwargs})

    return case


def _delete(**kwargs: Any) -> Case:
    async def case(service: SessionService, session: Session) -> object:
        await service.delete_session(
            **{"app_name": APP, "user_id": USER, "session_id": SID, **kwargs}
        )
        return None

    return case


def _append_id(event_id: str) -> Case:
    return _append(lambda: Event(id=event_id, author="a"))


def _delta(delta: dict[str, Any]) -> Case:
    return _append(lambda: Event(author="a", actions=EventActions(state_delta=delta)))


# --- Event.extra / EventActions.extra naming a core field ---------------------------------------


@pytest.mark.parametrize(("field", "value"), sorted(EVENT_FIELDS.items()))
async def test_event_extra_naming_a_core_field(
    service: SessionService, field: str, value: object
) -> None:
    """Event.extra with a core field's name (id, timestamp, actions, ...) is refused."""
    await _refused(service, _append(lambda: Event(author="a", extra={field: value})))


@pytest.mark.parametrize(("field", "value"), sorted(ACTION_FIELDS.items()))
async def test_actions_extra_naming_a_core_field(
    service: SessionService, field: str, value: object
) -> None:
    """EventActions.extra with state_delta/artifact_delta is refused (one delta, not two)."""
    await _refused(
        service,
        _append(
            lambda: Event(
                author="a", actions=EventActions(state_delta={"a": 1}, extra={field: value})
            )
        ),
    )


async def test_create_with_a_shadowing_event_leaves_no_session(service: SessionService) -> None:
    """create_session(events=[event whose extra names "id"]) is refused and creates nothing."""

    async def create(service: SessionService, session: Session) -> object:
        events = [Event(author="a", extra={"id": "x"})]
        return await service.create_session(
            app_name=APP, user_id=USER, session_id="new", events=events
        )

    await _refused(service, create)


# --- numeric extremes --------------------------------------------------------------------------

NUMERIC_CASES: dict[str, Case] = {
    "event timestamp 10**400": _append(lambda: Event(author="a", timestamp=10**400)),
    "event timestamp inf": _append(lambda: Event(author="a", timestamp=float("inf"))),
    "event timestamp -inf": _append(lambda: Event(author="a", timestamp=float("-inf"))),
    "event timestamp nan": _append(lambda: Event(author="a", timestamp=float("nan"))),
    "get after 10**400": _get(after=10**400),
    "get after nan": _get(after=float("nan")),
    "create last_update_time 10**400": _create(last_update_time=10**400),
    "create last_update_time inf": _create(last_update_time=float("inf")),
    "create last_update_time nan": _create(last_update_time=float("nan")),
    "page_size 2**63": _list(page_size=2**63),
    "page_size 10**30": _list(page_size=10**30),
    "num_recent_events 2**63": _get(num_recent_events=2**63),
    "num_recent_events 10**30": _get(num_recent_events=10**30),
    "create state int of 5001 digits": _create(state={"big": HUGE_INT}),
    "create app state int of 5001 digits": _create(state={"app:big": HUGE_INT}),
    "delta int of 5001 digits": _delta({"big": HUGE_INT}),
    "delta nested int of 5001 digits": _delta({"big": {"deep": [1, HUGE_INT]}}),
    "delta user int of 5001 digits": _delta({"user:big": HUGE_INT}),
    "delta nan": _delta({"x": float("nan")}),
    "delta inf": _delta({"x": [float("inf")]}),
    "event content int of 5001 digits": _append(lambda: Event(author="a", content={"n": HUGE_INT})),
    "event extra float inf": _append(lambda: Event(author="a", extra={"score": float("inf")})),
}


@pytest.mark.parametrize("name", sorted(NUMERIC_CASES))
async def test_numeric_extremes(service: SessionService, name: str) -> None:
    """Non-finite or overflowing numbers, counts >= 2**63 and 5,001-digit ints are refused."""
    await _refused(service, NUMERIC_CASES[name])


# --- lone surrogates ---------------------------------------------------------------------------

LONE = "\ud800"
SURROGATE_CASES: dict[str, Case] = {
    "create app_name": _create(app_name=f"app{LONE}"),
    "create user_id": _create(user_id=f"u{LONE}"),
    "create session_id": _create(session_id=f"s{LONE}"),
    "get session_id": _get(session_id=f"s{LONE}"),
    "list user_id": _list(user_id=f"u{LONE}"),
    "delete session_id": _delete(session_id=f"s{LONE}"),
    "event id": _append(lambda: Event(id=f"e{LONE}", author="a")),
    "event author": _append(lambda: Event(author=f"a{LONE}")),
    "event invocation_id": _append(lambda: Event(author="a", invocation_id=f"i{LONE}")),
    "event branch": _append(lambda: Event(author="a", branch=f"b{LONE}")),
    "event content": _append(
        lambda: Event(author="a", content={"parts": [{"text": f"hi {LONE}"}]})
    ),
    "event content key": _append(lambda: Event(author="a", content={f"k{LONE}": 1})),
    "event extra value": _append(lambda: Event(author="a", extra={"note": LONE})),
    "event extra key": _append(lambda: Event(author="a", extra={f"n{LONE}": 1})),
    "artifact_delta key": _append(
        lambda: Event(author="a", actions=EventActions(artifact_delta={f"f{LONE}": 1}))
    ),
    "actions extra value": _append(
        lambda: Event(author="a", actions=EventActions(extra={"transfer_to_agent": LONE}))
    ),
    "create state key": _create(state={f"k{LONE}": 1}),
    "create state value": _create(state={"k": f"v{LONE}"}),
    "create user state value": _create(state={"user:k": [LONE]}),
    "delta key": _delta({f"k{LONE}": 1}),
    "delta app key": _delta({f"app:k{LONE}": 1}),
    "delta value": _delta({"k": LONE}),
    "delta nested key": _delta({"k": {f"x{LONE}": 1}}),
}


@pytest.mark.parametrize("name", sorted(SURROGATE_CASES))
async def test_lone_surrogates(service: SessionService, name: str) -> None:
    """A lone surrogate in an id, state key or value, or anywhere in an event is refused."""
    await _refused(service, SURROGATE_CASES[name])


# --- control characters in names and ids -------------------------------------------------------


@pytest.mark.parametrize("field", ["app_name", "user_id", "session_id"])
async def test_control_characters_in_session_names(service: SessionService, field: str) -> None:
    """U+0000-U+001F and U+007F in app names, user ids, session ids: refused by every call."""
    cases = []
    for char in CONTROLS:
        value = f"x{char}y"
        cases += [_create(**{field: value}), _get(**{field: value}), _delete(**{field: value})]
        if field != "session_id":
            cases.append(_list(**{field: value}))
    await _refused(service, *cases)


async def test_control_characters_in_event_ids(service: SessionService) -> None:
    """U+0000-U+001F and U+007F in an event id: refused, nothing appended."""
    await _refused(service, *(_append_id(f"e{char}1") for char in CONTROLS))


# --- malformed page tokens ---------------------------------------------------------------------


def _b64(raw: bytes | str) -> str:
    data = raw.encode("utf-8", "surrogatepass") if isinstance(raw, str) else raw
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _token(*items: Any) -> str:
    return _b64(json.dumps(list(items)))


DEEP = "[" * 1000 + "]" * 1000
TOKENS: dict[str, str] = {
    "garbage": "not a token!",
    "base64 padding only": "====",
    "base64 of binary": _b64(b"\xff\xfe\x00\x01 not json"),
    "base64 of text": _b64("hello"),
    "json object": _b64("{}"),
    "json list empty": _b64("[]"),
    "json null": _b64("null"),
    "json number": _b64("1"),
    "json string": _b64('"token"'),
    "json one item": _token(1),
    "json seven items": _token(1, APP, None, 1.0, USER, SID, "more"),
    "wrong version": _token(2, APP, None, 1.0, USER, SID),
    "version true": _token(True, APP, None, 1.0, USER, SID),
    "time as text": _token(1, APP, None, "1.0", USER, SID),
    "time as bool": _token(1, APP, None, True, USER, SID),
    "time 1e309": _b64(f'[1,"{APP}",null,1e309,"{USER}","{SID}"]'),
    "time -1e309": _b64(f'[1,"{APP}",null,-1e309,"{USER}","{SID}"]'),
    "time NaN": _b64(f'[1,"{APP}",null,NaN,"{USER}","{SID}"]'),
    "time 10**400": _b64(f'[1,"{APP}",null,{10**400},"{USER}","{SID}"]'),
    "user id a number": _token(1, APP, None, 1.0, 5, SID),
    "session id a list": _token(1, APP, None, 1.0, USER, [SID]),
    "nesting 1000 deep": _b64(DEEP),
    "nesting 1000 deep inside": _b64(f'[1,"{APP}",null,1.0,"{USER}",{DEEP}]'),
    "NUL appended": _token(1, APP, None, 1.0, USER, SID) + "\x00",
    "NUL inside": "AAAA\x00AAAA",
    "NUL in user id": _token(1, APP, None, 1.0, "u\x00", SID),
    "NUL in session id": _token(1, APP, None, 1.0, USER, "s\x00"),
    "escaped lone surrogate": _b64(f'[1,"{APP}",null,1.0,"{USER}","\\ud800"]'),
    "raw lone surrogate": _b64(f'[1,"{APP}",null,1.0,"{USER}","{LONE}"]'),
    "control character": _token(1, APP, None, 1.0, USER, "s\n"),
}


@pytest.mark.parametrize("name", sorted(TOKENS))
async def test_malformed_page_tokens(service: SessionService, name: str) -> None:
    """A page token of any malformed shape is refused, never a raw or storage error."""
    await _refused(service, _list(page_token=TOKENS[name]))


# --- a stored row that does not decode ---------------------------------------------------------


async def test_undecodable_stored_event_is_storage_error(
    service: SessionService, db_url: str
) -> None:
    """An event row corrupted behind the service's back: StorageError naming session and seq."""
    session = await _seed(service)
    await service.append_event(session, Event(id="e2", author="a"))
    corrupt = json.dumps({"id": "e2", "author": "a", "timestamp": "abc", "actions": 5})
    sql = "UPDATE adk_events SET event = {0} WHERE session_id = {1} AND seq = 2"
    if db_url.startswith("sqlite"):
        conn = sqlite3.connect(db_url.removeprefix("sqlite:///"))
        with conn:
            conn.execute(sql.format("?", "?"), (corrupt, SID))
        conn.close()
    else:
        pg = await asyncpg.connect(db_url)
        await pg.execute(sql.format("$1::json", "$2"), corrupt, SID)
        await pg.close()
    with pytest.raises(StorageError) as info:
        await service.get_session(app_name=APP, user_id=USER, session_id=SID)
    assert SID in str(info.value) and "2" in str(info.value)
    # The other events and the session itself stay readable.
    latest = await service.get_session(
        app_name=APP, user_id=USER, session_id=SID, num_recent_events=0
    )
    assert latest is not None and latest.revision == 2


# --- caller dicts are copied, never aliased ----------------------------------------------------


def _nested() -> dict[str, Any]:
    return {"parts": [{"text": "hi", "meta": {"n": 1}}], "role": "user"}


def _mutate(d: dict[str, Any]) -> None:
    d["parts"][0]["meta"]["n"] = 99
    d["parts"][0]["text"] = "changed"
    d["parts"].append({"text": "added"})
    d["role"] = "model"
    d["new"] = True


def test_from_dict_keeps_no_reference_to_its_input() -> None:
    """Event.from_dict(d) then mutating d (nested) leaves the event as it was."""
    data: dict[str, Any] = {
        "id": "e",
        "author": "a",
        "timestamp": 1.0,
        "content": _nested(),
        "actions": {"state_delta": {"k": _nested()}, "transfer_to_agent": _nested()},
        "usage_metadata": _nested(),
    }
    event = Event.from_dict(data)
    before = copy.deepcopy(event.to_dict())
    _mutate(data["content"])
    _mutate(data["actions"]["state_delta"]["k"])
    _mutate(data["actions"]["transfer_to_agent"])
    _mutate(data["usage_metadata"])
    data["actions"]["state_delta"]["added"] = 1
    data["actions"]["artifact_delta"] = {"f": 1}
    assert event.to_dict() == before


def test_constructors_keep_no_reference_to_caller_dicts() -> None:
    """Event(content=d, extra=d)/EventActions(state_delta=d, ...) then mutating d: no change."""
    content = _nested()
    extra: dict[str, Any] = {"usage_metadata": _nested()}
    nested_value = _nested()
    delta: dict[str, Any] = {"k": 1, "nested": nested_value}
    artifacts = {"f": 1}
    action_extra: dict[str, Any] = {"transfer_to_agent": _nested()}
    actions = EventActions(state_delta=delta, artifact_delta=artifacts, extra=action_extra)
    event = Event(author="a", content=content, extra=extra, actions=actions)
    before = copy.deepcopy(event.to_dict())
    _mutate(content)
    _mutate(extra["usage_metadata"])
    _mutate(nested_value)
    _mutate(action_extra["transfer_to_agent"])
    delta["k"] = 2
    artifacts["g"] = 2
    assert event.to_dict() == before
    assert actions.to_dict() == before["actions"]
