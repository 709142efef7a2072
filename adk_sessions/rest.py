"""The REST session model: ADK's JSON form of sessions, create requests and route parameters.

No web framework is needed here; :mod:`adk_sessions.asgi` serves these models over HTTP.

The JSON form is the one ADK's Python API server sends (pydantic with camelCase aliases):

- a session is ``{"id", "appName", "userId", "lastUpdateTime", "events", "state"}``, with
  ``lastUpdateTime`` in epoch seconds as a float;
- an event is ``{"id", "invocationId", "author", "timestamp", "actions": {"stateDelta",
  "artifactDelta", ...}, ...}``; ``partial``, ``branch`` and ``content`` appear when set.

Only the top-level key names of an event and of its ``actions`` are converted between the
library's snake_case and camelCase (``turn_complete`` <-> ``turnComplete``); values (``content``,
``state``, metadata) are passed through verbatim, exactly as stored. Decoding accepts both the
camelCase and the snake_case name of every field, as ADK's pydantic models do. An ``extra`` key
that is already camelCase in the library form (unusual: ADK dumps snake_case) comes back
snake_case after a round trip; every other key round-trips unchanged.

Every decoding or validation failure raises :class:`~adk_sessions.errors.InvalidArgumentError`
(a ``ValueError``) whose message names the offending field, e.g. ``events[2].timestamp``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from ._models import Event, EventActions
from ._models import Session as CoreSession
from .errors import InvalidArgumentError

__all__ = (
    "CreateSessionRequest",
    "Session",
    "SessionID",
    "event_from_json",
    "event_to_json",
)

_SNAKE = re.compile(r"[a-z][a-z0-9]*(?:_[a-z][a-z0-9]*)+")
_CAMEL = re.compile(r"[a-z][a-z0-9]*(?:[A-Z][a-z0-9]*)+")
_UPPER = re.compile(r"[A-Z]")

# (camelCase JSON name, library attribute name) of the Event fields.
_EVENT_FIELDS = (
    ("id", "id"),
    ("invocationId", "invocation_id"),
    ("author", "author"),
    ("timestamp", "timestamp"),
    ("partial", "partial"),
    ("branch", "branch"),
    ("content", "content"),
    ("actions", "actions"),
)
_ACTION_FIELDS = (("stateDelta", "state_delta"), ("artifactDelta", "artifact_delta"))
_SESSION_FIELDS = (
    ("id", "id"),
    ("appName", "app_name"),
    ("userId", "user_id"),
    ("lastUpdateTime", "last_update_time"),
    ("events", "events"),
    ("state", "state"),
)
_CREATE_FIELDS = (("state", "state"), ("events", "events"), ("sessionId", "session_id"))


def _to_camel(key: str) -> str:
    if not _SNAKE.fullmatch(key):
        return key
    first, *rest = key.split("_")
    return first + "".join(part[0].upper() + part[1:] for part in rest)


def _to_snake(key: str) -> str:
    if not _CAMEL.fullmatch(key):
        return key
    return _UPPER.sub(lambda m: "_" + m.group(0).lower(), key)


def _invalid(where: str, problem: str) -> InvalidArgumentError:
    return InvalidArgumentError(f"{where}: {problem}")


def _pick(
    data: Mapping[str, Any], fields: Sequence[tuple[str, str]], where: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Split ``data`` into known fields (by attribute name) and the rest (keys as given)."""
    known: dict[str, Any] = {}
    for camel, snake in fields:
        if camel in data and snake != camel and snake in data:
            raise _invalid(where, f"both {camel!r} and {snake!r} given; send one")
        if camel in data:
            known[snake] = data[camel]
        elif snake in data:
            known[snake] = data[snake]
    names = {name for pair in fields for name in pair}
    rest = {key: value for key, value in data.items() if key not in names}
    return known, rest


def _object(value: object, where: str) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise _invalid(where, f"must be a JSON object, not {_json_type(value)}")
    for key in value:
        if not isinstance(key, str):
            raise _invalid(where, f"keys must be strings, not {_json_type(key)}")
    return dict(value)


def _string(value: object, where: str) -> str:
    if not isinstance(value, str):
        raise _invalid(where, f"must be a string, not {_json_type(value)}")
    return value


def _number(value: object, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _invalid(where, f"must be a number, not {_json_type(value)}")
    result = float(value)
    if not math.isfinite(result):
        raise _invalid(where, "must be a finite number")
    return result


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, Sequence):
        return "an array"
    if isinstance(value, Mapping):
        return "an object"
    return type(value).__name__


def event_to_json(event: Event) -> dict[str, Any]:
    """Encode an event in ADK's camelCase JSON form.

    Args:
        event: The library's event.

    Returns:
        A new JSON-ready dict: ``id``, ``invocationId``, ``author``, ``timestamp``, ``actions``
        (``stateDelta``, ``artifactDelta`` and every other action camelCased), then
        ``partial``/``branch``/``content`` when set and every ``extra`` field camelCased.
    """
    actions: dict[str, Any] = {
        "stateDelta": event.actions.state_delta,
        "artifactDelta": event.actions.artifact_delta,
    }
    actions.update((_to_camel(k), v) for k, v in event.actions.extra.items())
    data: dict[str, Any] = {
        "id": event.id,
        "invocationId": event.invocation_id,
        "author": event.author,
        "timestamp": event.timestamp,
        "actions": actions,
    }
    if event.partial is not None:
        data["partial"] = event.partial
    if event.branch is not None:
        data["branch"] = event.branch
    if event.content is not None:
        data["content"] = event.content
    data.update((_to_camel(k), v) for k, v in event.extra.items())
    return data


def _actions_from_json(value: object, where: str) -> EventActions:
    if value is None:
        return EventActions()
    data = _object(value, where)
    known, rest = _pick(data, _ACTION_FIELDS, where)
    state_delta = known.get("state_delta")
    artifact_delta = known.get("artifact_delta")
    state = {} if state_delta is None else _object(state_delta, f"{where}.stateDelta")
    artifacts = {} if artifact_delta is None else _object(artifact_delta, f"{where}.artifactDelta")
    for name, version in artifacts.items():
        if isinstance(version, bool) or not isinstance(version, int):
            raise _invalid(f"{where}.artifactDelta[{name!r}]", "must be an integer version")
    return EventActions(
        state_delta=state,
        artifact_delta=artifacts,
        extra={_to_snake(k): v for k, v in rest.items()},
    )


def event_from_json(data: object, *, where: str = "event") -> Event:
    """Decode an event from its JSON form (camelCase or snake_case field names).

    Args:
        data: A decoded JSON object.
        where: How error messages name this event (``"events[3]"``, ...).

    Returns:
        The event. A missing or empty ``id`` gets a fresh uuid4, a missing ``timestamp`` the
        current time, a missing ``invocationId`` ``""``; unknown fields go to ``extra``
        (camelCase names converted back to snake_case).

    Raises:
        InvalidArgumentError: ``data`` is not an object, ``author`` is missing, or a field has
            the wrong JSON type (the message names the field).
    """
    known, rest = _pick(_object(data, where), _EVENT_FIELDS, where)
    if known.get("author") is None:
        raise _invalid(f"{where}.author", "is required")
    fields: dict[str, Any] = {
        "author": _string(known["author"], f"{where}.author"),
        "actions": _actions_from_json(known.get("actions"), f"{where}.actions"),
        "extra": {_to_snake(k): v for k, v in rest.items()},
    }
    if known.get("id") not in (None, ""):
        fields["id"] = _string(known["id"], f"{where}.id")
    if known.get("invocation_id") is not None:
        fields["invocation_id"] = _string(known["invocation_id"], f"{where}.invocationId")
    if known.get("timestamp") is not None:
        fields["timestamp"] = _number(known["timestamp"], f"{where}.timestamp")
    partial = known.get("partial")
    if partial is not None and not isinstance(partial, bool):
        raise _invalid(f"{where}.partial", f"must be a boolean, not {_json_type(partial)}")
    fields["partial"] = partial
    if known.get("branch") is not None:
        fields["branch"] = _string(known["branch"], f"{where}.branch")
    if known.get("content") is not None:
        fields["content"] = _object(known["content"], f"{where}.content")
    return Event(**fields)


def _events_from_json(value: object, where: str) -> list[Event]:
    if isinstance(value, str | bytes) or not isinstance(value, Sequence):
        raise _invalid(where, f"must be a JSON array, not {_json_type(value)}")
    return [event_from_json(item, where=f"{where}[{i}]") for i, item in enumerate(value)]


def _check_event_ids(events: Sequence[object], where: str) -> None:
    seen: set[str] = set()
    for i, event in enumerate(events):
        if not isinstance(event, Event):
            raise _invalid(f"{where}[{i}]", f"must be an Event, not {type(event).__name__}")
        if event.id in seen:
            raise _invalid(f"{where}[{i}].id", f"duplicate event id {event.id!r}")
        seen.add(event.id)


@attrs.frozen(kw_only=True)
class Session:
    """A session in ADK's REST form.

    Attributes:
        id: The session id (JSON ``id``).
        app_name: The application (JSON ``appName``).
        user_id: The user (JSON ``userId``).
        last_update_time: Epoch seconds of the last change, a float (JSON ``lastUpdateTime``).
        events: The events, in append order (JSON ``events``).
        state: The merged state, ``app:``/``user:`` keys prefixed (JSON ``state``).
    """

    id: str
    app_name: str
    user_id: str
    last_update_time: float
    events: list[Event] = attrs.field(factory=list)
    state: dict[str, Any] = attrs.field(factory=dict)

    def validate(self) -> None:
        """Check the invariants every session sent or received must hold.

        Raises:
            InvalidArgumentError: ``id``, ``app_name`` or ``user_id`` is empty or not a string,
                ``last_update_time`` is zero or not a finite number, ``state`` is not a dict,
                or ``events`` is not a list of events with unique ids.
        """
        for name in ("app_name", "user_id", "id"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value:
                raise InvalidArgumentError(f"session {name} is required (got {value!r})")
        time = self.last_update_time
        if isinstance(time, bool) or not isinstance(time, int | float):
            raise InvalidArgumentError("session last_update_time must be a number")
        if time == 0 or not math.isfinite(time):
            raise InvalidArgumentError(f"session last_update_time must be set (got {time!r})")
        if not isinstance(self.state, dict):
            raise InvalidArgumentError("session state must be a dict")
        if not isinstance(self.events, list):
            raise InvalidArgumentError("session events must be a list")
        _check_event_ids(self.events, "session events")

    @classmethod
    def from_session(cls, session: CoreSession) -> Session:
        """Convert the library's session, copying its state and event list.

        Args:
            session: A session from the core service.

        Returns:
            The validated REST session (``revision`` is not part of the REST model).

        Raises:
            InvalidArgumentError: The session does not pass :meth:`validate`.
        """
        result = cls(
            id=session.id,
            app_name=session.app_name,
            user_id=session.user_id,
            last_update_time=session.last_update_time,
            events=list(session.events),
            state=dict(session.state),
        )
        result.validate()
        return result

    def to_session(self, *, revision: int = 0) -> CoreSession:
        """Convert to the library's session.

        Args:
            revision: The optimistic-concurrency token to give the session; the REST form does
                not carry one, so pass the revision the server reported when it matters.

        Returns:
            A new core session holding copies of the state and event list.
        """
        return CoreSession(
            id=self.id,
            app_name=self.app_name,
            user_id=self.user_id,
            state=dict(self.state),
            events=list(self.events),
            last_update_time=self.last_update_time,
            revision=revision,
        )

    def to_json(self) -> dict[str, Any]:
        """Encode as ADK's camelCase JSON.

        Returns:
            A new JSON-ready dict with ``id``, ``appName``, ``userId``, ``lastUpdateTime``,
            ``events`` and ``state``.
        """
        return {
            "id": self.id,
            "appName": self.app_name,
            "userId": self.user_id,
            "lastUpdateTime": self.last_update_time,
            "events": [event_to_json(event) for event in self.events],
            "state": self.state,
        }

    @classmethod
    def from_json(cls, data: object) -> Session:
        """Decode and validate ADK's JSON form (camelCase or snake_case names).

        Args:
            data: A decoded JSON object. ``events`` and ``state`` default to empty when absent
                or null; unknown keys are ignored.

        Returns:
            The validated session.

        Raises:
            InvalidArgumentError: A field is missing, empty or of the wrong JSON type.
        """
        known, _ = _pick(_object(data, "session"), _SESSION_FIELDS, "session")
        for name in ("id", "app_name", "user_id", "last_update_time"):
            if known.get(name) is None:
                raise InvalidArgumentError(f"session {name} is required")
        events = known.get("events")
        state = known.get("state")
        result = cls(
            id=_string(known["id"], "session.id"),
            app_name=_string(known["app_name"], "session.appName"),
            user_id=_string(known["user_id"], "session.userId"),
            last_update_time=_number(known["last_update_time"], "session.lastUpdateTime"),
            events=[] if events is None else _events_from_json(events, "session.events"),
            state={} if state is None else _object(state, "session.state"),
        )
        result.validate()
        return result


@attrs.frozen(kw_only=True)
class CreateSessionRequest:
    """The body of a create request: initial state and events, all stored in one transaction.

    Attributes:
        state: Initial state (``app:``/``user:``/``temp:`` prefixes select the scope), or
            ``None`` for none.
        events: Initial events, stored in this order, or ``None`` for none.
        session_id: The id to create (JSON ``sessionId``, as ADK's create request carries);
            ``None`` lets the route or the service choose.
    """

    state: dict[str, Any] | None = None
    events: list[Event] | None = None
    session_id: str | None = None

    def validate(self) -> None:
        """Check the request's shape.

        Raises:
            InvalidArgumentError: ``state`` is not a dict with string keys, ``events`` is not a
                list of events with unique ids, or ``session_id`` is not a string.
        """
        if self.state is not None:
            if not isinstance(self.state, dict):
                raise InvalidArgumentError("create request state must be a dict")
            for key in self.state:
                if not isinstance(key, str):
                    raise InvalidArgumentError(f"create request state key {key!r} is not a string")
        if self.events is not None:
            if not isinstance(self.events, list):
                raise InvalidArgumentError("create request events must be a list")
            _check_event_ids(self.events, "events")
        if self.session_id is not None and not isinstance(self.session_id, str):
            raise InvalidArgumentError("create request session_id must be a string")

    def to_json(self) -> dict[str, Any]:
        """Encode as camelCase JSON, leaving out fields that are ``None``.

        Returns:
            A new JSON-ready dict.
        """
        data: dict[str, Any] = {}
        if self.state is not None:
            data["state"] = self.state
        if self.events is not None:
            data["events"] = [event_to_json(event) for event in self.events]
        if self.session_id is not None:
            data["sessionId"] = self.session_id
        return data

    @classmethod
    def from_json(cls, data: object) -> CreateSessionRequest:
        """Decode and validate a request body.

        Args:
            data: A decoded JSON object, or ``None`` (an empty body) for an empty request.

        Returns:
            The validated request.

        Raises:
            InvalidArgumentError: ``data`` is not an object, has a key other than ``state``,
                ``events`` and ``sessionId`` (a typo would otherwise be silently dropped), or a
                field has the wrong JSON type.
        """
        if data is None:
            return cls()
        known, rest = _pick(_object(data, "request body"), _CREATE_FIELDS, "request body")
        if rest:
            names = ", ".join(repr(key) for key in sorted(rest))
            raise InvalidArgumentError(
                f"request body: unknown field(s) {names}; expected 'state', 'events', 'sessionId'"
            )
        state, events, session_id = known.get("state"), known.get("events"), known.get("session_id")
        result = cls(
            state=None if state is None else _object(state, "state"),
            events=None if events is None else _events_from_json(events, "events"),
            session_id=None if session_id is None else _string(session_id, "sessionId"),
        )
        result.validate()
        return result


@attrs.frozen(kw_only=True)
class SessionID:
    """The identifying route parameters of a session request.

    Attributes:
        app_name: The application; never empty.
        user_id: The user; never empty.
        session_id: The session, or ``None`` on the collection routes (or when empty).
    """

    app_name: str
    user_id: str
    session_id: str | None = None

    def validate(self) -> None:
        """Check that the required parameters are present.

        Raises:
            InvalidArgumentError: ``app_name`` or ``user_id`` is empty (the message names it),
                or ``session_id`` is not a string or ``None``.
        """
        for name in ("app_name", "user_id"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value:
                raise InvalidArgumentError(f"{name} is required and must not be empty")
        if self.session_id is not None and not isinstance(self.session_id, str):
            raise InvalidArgumentError("session_id must be a string")

    @classmethod
    def from_http_parameters(cls, params: Mapping[str, object]) -> SessionID:
        """Read and validate the ids from HTTP route parameters.

        Args:
            params: Route parameters, e.g. Starlette's ``request.path_params``:
                ``app_name`` and ``user_id`` are required, ``session_id`` optional; other keys
                are ignored. Values must be strings (already percent-decoded).

        Returns:
            The ids; an absent or empty ``session_id`` becomes ``None``.

        Raises:
            InvalidArgumentError: ``app_name`` or ``user_id`` is missing or empty (a
                ``ValueError`` whose message names the parameter), or a value is not a string.
        """
        values: dict[str, str | None] = {}
        for name in ("app_name", "user_id", "session_id"):
            value = params.get(name)
            if value is not None and not isinstance(value, str):
                raise InvalidArgumentError(f"{name} must be a string, not {type(value).__name__}")
            values[name] = value or None
        for name in ("app_name", "user_id"):
            if values[name] is None:
                raise InvalidArgumentError(f"{name} is required and must not be empty")
        return cls(
            app_name=values["app_name"] or "",
            user_id=values["user_id"] or "",
            session_id=values["session_id"],
        )
