"""The REST session model: JSON encoding, validation, route parameters (no database)."""

from __future__ import annotations

import json
import math
import time
from typing import Any

import pytest

from adk_sessions import Event, EventActions, rest
from adk_sessions import Session as CoreSession
from adk_sessions.errors import InvalidArgumentError

TIMESTAMP = 1_700_000_000.123_456_7  # not representable in fewer digits: bit-exactness shows


def _event(**overrides: Any) -> Event:
    fields: dict[str, Any] = {
        "id": "e1",
        "invocation_id": "inv-1",
        "author": "agent",
        "timestamp": TIMESTAMP,
        "content": {"role": "model", "parts": [{"text": "héllo ✓", "function_call": None}]},
        "actions": EventActions(
            state_delta={"k": 1, "user:name": "Ada"},
            artifact_delta={"report.txt": 2},
            extra={"transfer_to_agent": "helper", "skip_summarization": True},
        ),
        "extra": {"turn_complete": True, "usage_metadata": {"prompt_token_count": 3}},
    }
    fields.update(overrides)
    return Event(**fields)


def _core_session(**overrides: Any) -> CoreSession:
    fields: dict[str, Any] = {
        "id": "s1",
        "app_name": "app",
        "user_id": "u1",
        "state": {"k": 1, "app:theme": "dark", "nested": {"a_b": [1, 2.5, None]}},
        "events": [_event(), _event(id="e2", partial=None, branch="root.sub", content=None)],
        "last_update_time": TIMESTAMP + 1,
        "revision": 2,
    }
    fields.update(overrides)
    return CoreSession(**fields)


# --- events ------------------------------------------------------------------------------------


def test_event_json_uses_camel_case_names() -> None:
    """Event field names, action names and extra names are camelCase in the JSON form."""
    data = rest.event_to_json(_event(branch="root"))
    assert data == {
        "id": "e1",
        "invocationId": "inv-1",
        "author": "agent",
        "timestamp": TIMESTAMP,
        "branch": "root",
        "content": {"role": "model", "parts": [{"text": "héllo ✓", "function_call": None}]},
        "actions": {
            "stateDelta": {"k": 1, "user:name": "Ada"},
            "artifactDelta": {"report.txt": 2},
            "transferToAgent": "helper",
            "skipSummarization": True,
        },
        "turnComplete": True,
        "usageMetadata": {"prompt_token_count": 3},
    }


def test_event_json_leaves_out_unset_optional_fields() -> None:
    """partial, branch and content appear only when set, like exclude_none in ADK."""
    data = rest.event_to_json(Event(author="user", id="e", timestamp=1.5))
    assert set(data) == {"id", "invocationId", "author", "timestamp", "actions"}
    assert data["actions"] == {"stateDelta": {}, "artifactDelta": {}}


def test_event_round_trips_through_json_text() -> None:
    """An event encoded, dumped to JSON text, loaded and decoded is equal, timestamp bit-exact."""
    event = _event(partial=False, branch="b")
    back = rest.event_from_json(json.loads(json.dumps(rest.event_to_json(event))))
    assert back == event
    assert back.timestamp.hex() == event.timestamp.hex()


def test_event_from_json_accepts_snake_case_names() -> None:
    """The library's snake_case form (google-adk's model_dump) decodes to the same event."""
    event = _event()
    assert rest.event_from_json(event.to_dict()) == event


def test_event_from_json_rejects_a_field_given_twice() -> None:
    """A field sent under both its camelCase and snake_case names is ambiguous."""
    data = rest.event_to_json(_event())
    data["invocation_id"] = "other"
    with pytest.raises(InvalidArgumentError, match="invocationId"):
        rest.event_from_json(data)


@pytest.mark.parametrize(
    "key",
    ["a_1", "x1_y", "snake_case_key", "_private", "already", "with-dash", "UPPER_CASE"],
)
def test_event_extra_keys_round_trip(key: str) -> None:
    """Extra keys in snake_case or any non-camelCase spelling survive a JSON round trip."""
    event = Event(author="a", id="e", timestamp=1.0, extra={key: {"inner_key": 1}})
    assert rest.event_from_json(rest.event_to_json(event)).extra == {key: {"inner_key": 1}}


def test_event_from_json_fills_defaults() -> None:
    """A missing id gets a uuid, a missing timestamp the current time, invocationId ''."""
    before = time.time()
    event = rest.event_from_json({"author": "user", "id": ""})
    assert len(event.id) == 36
    assert before <= event.timestamp <= time.time()
    assert event.invocation_id == ""
    assert event.actions == EventActions()


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({}, "event.author"),
        ({"author": None}, "event.author"),
        ({"author": 3}, "event.author"),
        ({"author": "a", "id": 7}, "event.id"),
        ({"author": "a", "timestamp": "now"}, "event.timestamp"),
        ({"author": "a", "timestamp": True}, "event.timestamp"),
        ({"author": "a", "timestamp": math.inf}, "event.timestamp"),
        ({"author": "a", "invocationId": []}, "event.invocationId"),
        ({"author": "a", "partial": "yes"}, "event.partial"),
        ({"author": "a", "branch": 1}, "event.branch"),
        ({"author": "a", "content": "text"}, "event.content"),
        ({"author": "a", "actions": []}, "event.actions"),
        ({"author": "a", "actions": {"stateDelta": [1]}}, "event.actions.stateDelta"),
        ({"author": "a", "actions": {"artifactDelta": {"f": "2"}}}, "event.actions.artifactDelta"),
        ({"author": "a", "actions": {"artifactDelta": {"f": True}}}, "event.actions.artifactDelta"),
    ],
)
def test_event_from_json_names_the_bad_field(data: dict[str, Any], field: str) -> None:
    """Every malformed field is rejected with an InvalidArgumentError naming it."""
    with pytest.raises(InvalidArgumentError, match=field.replace(".", r"\.")):
        rest.event_from_json(data)


@pytest.mark.parametrize("data", [None, [], "event", 3])
def test_event_from_json_rejects_non_objects(data: object) -> None:
    """An event must be a JSON object."""
    with pytest.raises(InvalidArgumentError, match="must be a JSON object"):
        rest.event_from_json(data)


# --- sessions ----------------------------------------------------------------------------------


def test_session_json_has_exactly_the_adk_fields() -> None:
    """to_json gives id, appName, userId, lastUpdateTime (float seconds), events and state."""
    data = rest.Session.from_session(_core_session()).to_json()
    assert list(data) == ["id", "appName", "userId", "lastUpdateTime", "events", "state"]
    assert data["lastUpdateTime"] == TIMESTAMP + 1
    assert isinstance(data["lastUpdateTime"], float)
    assert [e["id"] for e in data["events"]] == ["e1", "e2"]
    assert data["state"] == {"k": 1, "app:theme": "dark", "nested": {"a_b": [1, 2.5, None]}}
    json.dumps(data, allow_nan=False)  # JSON-ready as is


def test_session_round_trips_to_and_from_the_core_model() -> None:
    """core -> REST -> JSON text -> REST -> core gives back an equal session."""
    core = _core_session()
    model = rest.Session.from_session(core)
    back = rest.Session.from_json(json.loads(json.dumps(model.to_json())))
    assert back == model
    assert back.to_session(revision=core.revision) == core


def test_from_session_copies_state_and_events() -> None:
    """The REST model does not share the core session's state dict or event list."""
    core = _core_session()
    model = rest.Session.from_session(core)
    core.state["later"] = True
    core.events.append(_event(id="e3"))
    assert "later" not in model.state
    assert len(model.events) == 2


def test_from_session_validates() -> None:
    """A core session without an update time is refused, as ADK's FromSession does."""
    with pytest.raises(InvalidArgumentError, match="last_update_time"):
        rest.Session.from_session(_core_session(last_update_time=0.0))


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"id": ""}, "session id"),
        ({"app_name": ""}, "session app_name"),
        ({"user_id": ""}, "session user_id"),
        ({"last_update_time": 0.0}, "last_update_time"),
        ({"last_update_time": math.nan}, "last_update_time"),
        ({"state": None}, "state"),
        ({"events": None}, "events"),
        ({"events": [_event(), _event()]}, "duplicate event id 'e1'"),
        ({"events": [{"author": "a"}]}, "must be an Event"),
    ],
)
def test_session_validate_rejects(changes: dict[str, Any], message: str) -> None:
    """validate() requires ids, an update time, a state dict and a list of unique events."""
    fields: dict[str, Any] = {
        "id": "s",
        "app_name": "a",
        "user_id": "u",
        "last_update_time": 1.0,
        "events": [],
        "state": {},
    }
    fields.update(changes)
    with pytest.raises(InvalidArgumentError, match=message):
        rest.Session(**fields).validate()


def test_session_from_json_defaults_and_aliases() -> None:
    """Absent events/state decode as empty, snake_case names work, unknown keys are ignored."""
    model = rest.Session.from_json(
        {"id": "s", "app_name": "a", "userId": "u", "last_update_time": 5, "revision": 9}
    )
    assert model == rest.Session(id="s", app_name="a", user_id="u", last_update_time=5.0)
    assert isinstance(model.last_update_time, float)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"appName": "a", "userId": "u", "lastUpdateTime": 1}, "session id is required"),
        ({"id": "s", "userId": "u", "lastUpdateTime": 1}, "app_name is required"),
        ({"id": "s", "appName": "a", "lastUpdateTime": 1}, "user_id is required"),
        ({"id": "s", "appName": "a", "userId": "u"}, "last_update_time is required"),
        ({"id": "s", "appName": "a", "userId": "u", "lastUpdateTime": "1"}, "lastUpdateTime"),
        ({"id": "", "appName": "a", "userId": "u", "lastUpdateTime": 1}, "session id"),
        ({"id": 1, "appName": "a", "userId": "u", "lastUpdateTime": 1}, "session.id"),
        (
            {"id": "s", "appName": "a", "userId": "u", "lastUpdateTime": 1, "events": {}},
            "session.events",
        ),
        (
            {"id": "s", "appName": "a", "userId": "u", "lastUpdateTime": 1, "events": [{}]},
            r"session\.events\[0\]\.author",
        ),
        (
            {"id": "s", "appName": "a", "userId": "u", "lastUpdateTime": 1, "state": []},
            "session.state",
        ),
    ],
)
def test_session_from_json_rejects(data: dict[str, Any], message: str) -> None:
    """Missing, empty or mistyped session fields are rejected, naming the field."""
    with pytest.raises(InvalidArgumentError, match=message):
        rest.Session.from_json(data)


# --- create requests ---------------------------------------------------------------------------


def test_create_request_round_trips() -> None:
    """A create request encodes to camelCase JSON and decodes back equal."""
    request = rest.CreateSessionRequest(
        state={"a": 1, "user:b": [True]}, events=[_event(), _event(id="e2")], session_id="s-1"
    )
    data = json.loads(json.dumps(request.to_json()))
    assert set(data) == {"state", "events", "sessionId"}
    assert rest.CreateSessionRequest.from_json(data) == request


@pytest.mark.parametrize("data", [None, {}, {"state": None, "events": None, "sessionId": None}])
def test_create_request_may_be_empty(data: object) -> None:
    """An empty body, an empty object and null fields all mean 'no state, no events'."""
    request = rest.CreateSessionRequest.from_json(data)
    assert request == rest.CreateSessionRequest()
    assert request.to_json() == {}


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ([], "request body: must be a JSON object"),
        ({"stat": {}}, "unknown field.*'stat'"),
        ({"state": [1]}, "state: must be a JSON object"),
        ({"events": {"author": "a"}}, "events: must be a JSON array"),
        ({"events": "abc"}, "events: must be a JSON array"),
        ({"events": [1]}, r"events\[0\]: must be a JSON object"),
        ({"events": [{"author": "a", "id": "x"}, {"author": "b", "id": "x"}]}, "duplicate"),
        ({"sessionId": 5}, "sessionId"),
        ({"sessionId": "a", "session_id": "a"}, "both"),
    ],
)
def test_create_request_rejects(data: object, message: str) -> None:
    """Malformed create bodies are rejected with a message naming the problem."""
    with pytest.raises(InvalidArgumentError, match=message):
        rest.CreateSessionRequest.from_json(data)


def test_create_request_validate_checks_constructed_values() -> None:
    """validate() also catches bad values built in Python, not only bad JSON."""
    with pytest.raises(InvalidArgumentError, match="state key 1"):
        rest.CreateSessionRequest(state={1: "x"}).validate()  # type: ignore[dict-item]
    with pytest.raises(InvalidArgumentError, match="duplicate event id"):
        rest.CreateSessionRequest(events=[_event(), _event()]).validate()
    rest.CreateSessionRequest(state={"a": 1}, events=[_event()]).validate()


# --- route parameters --------------------------------------------------------------------------


def test_session_id_from_http_parameters() -> None:
    """app_name, user_id and session_id are read; other keys are ignored."""
    ids = rest.SessionID.from_http_parameters(
        {"app_name": "app", "user_id": "u/1", "session_id": "s ✓", "format": "json"}
    )
    assert ids == rest.SessionID(app_name="app", user_id="u/1", session_id="s ✓")
    ids.validate()


@pytest.mark.parametrize("session_id", [None, ""])
def test_session_id_is_optional(session_id: str | None) -> None:
    """A missing or empty session_id gives None (the collection routes)."""
    params = {"app_name": "app", "user_id": "u"}
    if session_id is not None:
        params["session_id"] = session_id
    assert rest.SessionID.from_http_parameters(params).session_id is None


@pytest.mark.parametrize(
    ("params", "name"),
    [
        ({"user_id": "u"}, "app_name"),
        ({"app_name": "", "user_id": "u"}, "app_name"),
        ({"app_name": None, "user_id": "u"}, "app_name"),
        ({"app_name": "a"}, "user_id"),
        ({"app_name": "a", "user_id": ""}, "user_id"),
        ({}, "app_name"),
    ],
)
def test_session_id_requires_app_and_user(params: dict[str, Any], name: str) -> None:
    """A missing or empty app_name/user_id raises a ValueError naming the parameter."""
    with pytest.raises(ValueError, match=f"^{name} is required"):
        rest.SessionID.from_http_parameters(params)


def test_session_id_rejects_non_string_values() -> None:
    """Route values must be strings; anything else is named in the error."""
    with pytest.raises(InvalidArgumentError, match="session_id must be a string"):
        rest.SessionID.from_http_parameters({"app_name": "a", "user_id": "u", "session_id": 3})


def test_session_id_validate() -> None:
    """validate() rejects a constructed SessionID with an empty required part."""
    with pytest.raises(InvalidArgumentError, match="user_id is required"):
        rest.SessionID(app_name="a", user_id="").validate()
