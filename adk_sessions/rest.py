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

:func:`json_schemas` derives JSON Schemas (2020-12, as OpenAPI 3.1 uses) of these models from
their attrs fields and the same JSON name tables the decoders read, so the schemas cannot drift
from what is sent and accepted; :mod:`adk_sessions.asgi` serves them in its OpenAPI document.
"""

from __future__ import annotations

import math
import re
import types
import typing
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import attrs

from ._models import Event, EventActions, json_fields
from ._models import Session as CoreSession
from ._validate import MAX_ID_BYTES
from .errors import InvalidArgumentError

__all__ = (
    "CreateSessionRequest",
    "ListSessionsResponse",
    "Session",
    "SessionID",
    "UpdateSessionRequest",
    "event_from_json",
    "event_to_json",
    "id_schema",
    "json_schemas",
)

_SNAKE = re.compile(r"[a-z][a-z0-9]*(?:_[a-z][a-z0-9]*)+")
_CAMEL = re.compile(r"[a-z][a-z0-9]*(?:[A-Z][a-z0-9]*)+")
_UPPER = re.compile(r"[A-Z]")


def _to_camel(key: str) -> str:
    if not _SNAKE.fullmatch(key):
        return key
    first, *rest = key.split("_")
    return first + "".join(part[0].upper() + part[1:] for part in rest)


# (camelCase JSON name, library attribute name) of the event fields, derived from the models
# (google-adk derives its camelCase names with one alias generator too).
_EVENT_FIELDS = tuple((_to_camel(name), name) for name in sorted(json_fields(Event)))
_ACTION_FIELDS = tuple((_to_camel(name), name) for name in sorted(json_fields(EventActions)))
_SESSION_FIELDS = (
    ("id", "id"),
    ("appName", "app_name"),
    ("userId", "user_id"),
    ("lastUpdateTime", "last_update_time"),
    ("events", "events"),
    ("state", "state"),
)
_CREATE_FIELDS = (("state", "state"), ("events", "events"), ("sessionId", "session_id"))
_UPDATE_FIELDS = (("stateDelta", "state_delta"),)
_LIST_FIELDS = (("sessions", "sessions"), ("nextPageToken", "next_page_token"))


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
    data = {_to_camel(key): value for key, value in event.to_dict().items()}
    data["actions"] = {_to_camel(key): value for key, value in data["actions"].items()}
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
class UpdateSessionRequest:
    """The body of a ``PATCH``: a state delta, appended to the session as a ``user`` event.

    Attributes:
        state_delta: The delta (JSON ``stateDelta``, as google-adk's server takes it);
            ``app:``/``user:``/``temp:`` prefixes select the scope.
    """

    state_delta: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        """Encode as camelCase JSON.

        Returns:
            ``{"stateDelta": {...}}``.
        """
        return {"stateDelta": self.state_delta}

    @classmethod
    def from_json(cls, data: object) -> UpdateSessionRequest:
        """Decode a request body.

        Args:
            data: A decoded JSON object (``stateDelta`` or ``state_delta``), or ``None`` for an
                empty body.

        Returns:
            The request.

        Raises:
            InvalidArgumentError: ``data`` is not an object, has another key, or its
                ``stateDelta`` is missing or not an object.
        """
        if not isinstance(data, Mapping):
            raise InvalidArgumentError('request body must be a JSON object {"stateDelta": {...}}')
        known, rest = _pick(_object(data, "request body"), _UPDATE_FIELDS, "request body")
        if rest:
            names = ", ".join(repr(key) for key in sorted(rest))
            raise InvalidArgumentError(
                f"request body: unknown field(s) {names}; expected 'stateDelta'"
            )
        delta = known.get("state_delta")
        if not isinstance(delta, dict):
            raise InvalidArgumentError(
                "request body: stateDelta is required and must be a JSON object"
            )
        return cls(state_delta=delta)


@attrs.frozen(kw_only=True)
class ListSessionsResponse:
    """One page of a list, as answered when the client asks for pages.

    Attributes:
        sessions: The sessions, merged state and no events (JSON ``sessions``).
        next_page_token: Pass back as ``pageToken`` for the next page; ``None`` on the last
            page (JSON ``nextPageToken``).
    """

    sessions: list[Session] = attrs.field(factory=list)
    next_page_token: str | None = None

    def to_json(self) -> dict[str, Any]:
        """Encode as camelCase JSON.

        Returns:
            ``{"sessions": [...], "nextPageToken": ...}``; the token is ``null`` on the last page.
        """
        return {
            "sessions": [session.to_json() for session in self.sessions],
            "nextPageToken": self.next_page_token,
        }


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


# --- JSON Schemas -------------------------------------------------------------------------------

_Direction = Literal["request", "response"]

# The JSON names of each model's fields: the tables the decoders above read.
_JSON_FIELDS: dict[type, tuple[tuple[str, str], ...]] = {
    Event: _EVENT_FIELDS,
    EventActions: _ACTION_FIELDS,
    Session: _SESSION_FIELDS,
    CreateSessionRequest: _CREATE_FIELDS,
    UpdateSessionRequest: _UPDATE_FIELDS,
    ListSessionsResponse: _LIST_FIELDS,
}
# Request fields that are ids, checked by ``adk_sessions._validate.check_name`` when not empty.
_ID_FIELDS = frozenset({(Event, "id"), (CreateSessionRequest, "session_id")})
# Optional response fields sent as ``null`` rather than left out (other optional ones are left out).
_SENT_AS_NULL = frozenset({(ListSessionsResponse, "next_page_token")})
_REQUEST_ROOTS = (CreateSessionRequest, UpdateSessionRequest)
_RESPONSE_ROOTS = (Session, ListSessionsResponse)
# Control characters (C0 and DEL), which no id may contain (as ``check_name``).
_ID_PATTERN = "^[^\\x00-\\x1f\\x7f]*$"


def id_schema(*, required: bool) -> dict[str, Any]:
    """The JSON Schema of an app name, user id, session id or event id.

    Args:
        required: ``True`` for a path segment (never empty); ``False`` for a body field where
            an empty id asks for a generated one.

    Returns:
        A string schema: no control characters, at most :data:`MAX_ID_BYTES` characters (the
        limit is in UTF-8 bytes, which JSON Schema cannot count; longer ids answer 400).
    """
    schema: dict[str, Any] = {
        "type": "string",
        "maxLength": MAX_ID_BYTES,
        "pattern": _ID_PATTERN,
        "description": (
            f"At most {MAX_ID_BYTES} UTF-8 bytes; no control characters (U+0000-U+001F, U+007F)."
        ),
    }
    if required:
        schema["minLength"] = 1
    return schema


def _schema_name(cls: type, direction: _Direction) -> str:
    if direction == "request" and cls not in _REQUEST_ROOTS:
        return cls.__name__ + "Input"
    return cls.__name__


def _type_schema(
    hint: object, direction: _Direction, ref: str, pending: list[tuple[type, _Direction]]
) -> dict[str, Any]:
    """The schema of one annotated type; attrs classes become ``$ref``s queued in ``pending``."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        options = [arg for arg in args if arg is not type(None)]
        assert len(options) == 1, hint
        inner = _type_schema(options[0], direction, ref, pending)
        if isinstance(inner.get("type"), str):
            return {**inner, "type": [inner["type"], "null"]}
        return {"anyOf": [inner, {"type": "null"}]}
    if origin is list:
        return {"type": "array", "items": _type_schema(args[0], direction, ref, pending)}
    if origin is dict:
        assert args[0] is str, hint
        return {
            "type": "object",
            "additionalProperties": _type_schema(args[1], direction, ref, pending),
        }
    if hint is Any:
        return {}  # any JSON value
    if isinstance(hint, type) and attrs.has(hint):
        pending.append((hint, direction))
        return {"$ref": ref + _schema_name(hint, direction)}
    names: dict[object, str] = {str: "string", float: "number", int: "integer", bool: "boolean"}
    assert hint in names, hint
    return {"type": names[hint]}


def _model_schema(
    cls: type, direction: _Direction, ref: str, pending: list[tuple[type, _Direction]]
) -> dict[str, Any]:
    """The object schema of a model, from its attrs fields and its JSON name table.

    Requests: the fields without a default are required, and every other field may be ``null``
    (the decoders read ``null`` as absent). Responses: every field that is not optional is
    always sent. A model with an ``extra`` field keeps unknown keys (they are the extra fields);
    every other model refuses them (requests) or never sends them (responses).
    """
    hints = typing.get_type_hints(cls)
    fields = {field.name: field for field in attrs.fields(cls)}
    properties: dict[str, Any] = {}
    required: list[str] = []
    for json_name, name in _JSON_FIELDS[cls]:
        hint = hints[name]
        optional = typing.get_origin(hint) in (typing.Union, types.UnionType)
        schema = _type_schema(hint, direction, ref, pending)
        if direction == "request":
            if (cls, name) in _ID_FIELDS:
                schema = id_schema(required=False)
            if fields[name].default is attrs.NOTHING:
                required.append(json_name)
            elif isinstance(schema.get("type"), str):
                schema = {**schema, "type": [schema["type"], "null"]}
            elif "$ref" in schema:
                schema = {"anyOf": [schema, {"type": "null"}]}
        elif not optional or (cls, name) in _SENT_AS_NULL:
            required.append(json_name)
        properties[json_name] = schema
    result: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        result["required"] = required
    result["additionalProperties"] = {} if "extra" in fields else False
    doc = (cls.__doc__ or "").strip().split("\n")[0].replace("``", "`")
    if doc:
        result["description"] = doc
    return result


def json_schemas(ref: str = "#/components/schemas/") -> dict[str, dict[str, Any]]:
    """JSON Schemas of the REST models, derived from their fields and JSON names.

    The request schemas (``CreateSessionRequest``, ``UpdateSessionRequest``, ``EventInput``,
    ``EventActionsInput``) describe what the decoders accept; the response schemas
    (``Session``, ``ListSessionsResponse``, ``Event``, ``EventActions``) what the encoders
    send. camelCase names are described; the decoders also accept the snake_case spelling.

    Args:
        ref: The prefix of ``$ref`` values, where the returned schemas will live.

    Returns:
        Schema name to JSON Schema (2020-12 dialect, as OpenAPI 3.1 uses).
    """
    pending: list[tuple[type, _Direction]] = [(cls, "request") for cls in _REQUEST_ROOTS]
    pending += [(cls, "response") for cls in _RESPONSE_ROOTS]
    result: dict[str, dict[str, Any]] = {}
    while pending:
        cls, direction = pending.pop(0)
        name = _schema_name(cls, direction)
        if name not in result:
            result[name] = _model_schema(cls, direction, ref, pending)
    return result
