"""Session and event models: plain attrs values, no I/O."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import attrs

from .errors import InvalidArgumentError

__all__ = ("Event", "EventActions", "ListSessionsResponse", "Session")


def _new_id() -> str:
    return str(uuid.uuid4())


# Deeper than any real event content (the HTTP service accepts JSON of the same depth).
MAX_DEPTH = 200


def copy_json(value: Any, depth: int = 0) -> Any:
    """Copy the dicts and lists of a JSON-like value; other values are shared (immutable).

    Models copy what callers hand them, so that mutating a dict after building an event (or a
    dict an event was read from) never changes the event.

    Raises:
        InvalidArgumentError: The value nests deeper than :data:`MAX_DEPTH` levels.
    """
    kind = type(value)
    if kind is dict or kind is list or kind is tuple:
        if depth >= MAX_DEPTH:
            raise InvalidArgumentError(f"value nests deeper than {MAX_DEPTH} levels")
        depth += 1
        if kind is dict:
            return {key: copy_json(item, depth) for key, item in value.items()}
        if kind is list:
            return [copy_json(item, depth) for item in value]
        return tuple(copy_json(item, depth) for item in value)
    return value


def _seconds(value: float) -> float:
    try:
        return float(value)
    except OverflowError:
        raise InvalidArgumentError("event timestamp is too large for a float") from None


def _copy_dict(value: Mapping[str, Any]) -> dict[str, Any]:
    return {key: copy_json(item) for key, item in value.items()}


def _copy_optional(value: Mapping[str, Any] | None) -> dict[str, Any] | None:
    return None if value is None else _copy_dict(value)


def _no_shadowing(
    instance: object, attribute: attrs.Attribute[Any], value: Mapping[str, Any]
) -> None:
    """An attrs validator: ``extra`` keys must not name a field (they would override it)."""
    clash = json_fields(type(instance)).intersection(value)
    if clash:
        raise InvalidArgumentError(
            f"{type(instance).__name__}.extra must not hold the field(s) {sorted(clash)}; "
            "set them as fields, not as extra keys"
        )


def json_fields(model: type[Any]) -> frozenset[str]:
    """The keys of a model's JSON form that are its fields (every other key is in ``extra``).

    The attrs class definitions below are the one list of these names; everything else (the
    JSON forms, the REST names, the stored-row reader) is derived from them.
    """
    return _JSON_FIELDS[model]


@attrs.frozen(kw_only=True)
class EventActions:
    """What an event does besides carrying content.

    Attributes:
        state_delta: State changes (``app:``/``user:``/``temp:`` prefixes select the scope).
        artifact_delta: Artifact name to the version the event wrote.
        extra: Every other action (``transfer_to_agent``, ``escalate``, ``compaction``, ...),
            kept verbatim in google-adk's JSON form.
    """

    state_delta: dict[str, Any] = attrs.field(factory=dict, converter=_copy_dict)
    artifact_delta: dict[str, int] = attrs.field(factory=dict, converter=_copy_dict)
    extra: dict[str, Any] = attrs.field(factory=dict, converter=_copy_dict, validator=_no_shadowing)

    def to_dict(self) -> dict[str, Any]:
        """Return the snake_case JSON form google-adk uses for ``EventActions``.

        Returns:
            A new dict; ``extra`` keys are merged in after the two delta fields.
        """
        return _to_json(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> EventActions:
        """Read the JSON form back; unknown keys go to ``extra``.

        Args:
            data: A mapping as produced by :meth:`to_dict` or google-adk's ``model_dump``.

        Returns:
            The actions, holding copies of ``data``'s values.
        """
        return cls(**_action_fields(data))


@attrs.frozen(kw_only=True)
class Event:
    """One entry of a session's append-only history.

    Attributes:
        id: Unique within the session (a uuid4 string by default).
        invocation_id: The invocation that produced the event.
        author: ``"user"`` or the name of the agent.
        timestamp: Epoch seconds (a float, stored bit-exact).
        partial: ``True`` for streaming chunks, which are never stored.
        branch: The agent branch, for multi-agent runs.
        content: The message content in google-genai's JSON form.
        actions: State/artifact deltas and other actions.
        extra: Every other field of google-adk's event, verbatim (usage metadata, error codes, ...).
    """

    id: str = attrs.field(factory=_new_id)
    invocation_id: str = ""
    author: str
    timestamp: float = attrs.field(factory=time.time)
    actions: EventActions = attrs.field(factory=EventActions)
    partial: bool | None = None
    branch: str | None = None
    content: dict[str, Any] | None = attrs.field(default=None, converter=_copy_optional)
    extra: dict[str, Any] = attrs.field(factory=dict, converter=_copy_dict, validator=_no_shadowing)

    def to_dict(self) -> dict[str, Any]:
        """Return the snake_case JSON form google-adk's ``Event.model_dump`` gives.

        That is ``model_dump(mode="json", exclude_none=True)``.

        Returns:
            A new dict; ``None`` fields are left out, ``extra`` keys merged in.
        """
        return _to_json(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Event:
        """Read the JSON form back losslessly; unknown keys go to ``extra``.

        Args:
            data: A mapping as produced by :meth:`to_dict` or google-adk's ``model_dump``.

        Returns:
            The event, holding copies of ``data``'s values (mutating ``data`` later does not
            change it). A missing or empty ``id`` gets a new one, a missing ``timestamp`` the
            current time, a missing ``author``/``invocation_id`` ``""``.

        Raises:
            InvalidArgumentError: A field has the wrong type (``actions`` not a mapping, a
                ``timestamp`` that is not a number).
        """
        fields = _event_fields(data)
        actions = fields.get("actions")
        if actions is not None and not isinstance(actions, Mapping):
            raise InvalidArgumentError(f"event actions must be a JSON object, not {actions!r:.60}")
        timestamp = fields.get("timestamp")
        if timestamp is not None:
            if isinstance(timestamp, bool) or not isinstance(timestamp, (int, float)):
                raise InvalidArgumentError(
                    f"event timestamp must be a number, not {timestamp!r:.60}"
                )
            fields["timestamp"] = _seconds(timestamp)
        if actions is not None:
            fields["actions"] = EventActions.from_dict(actions)
        return cls(**fields)


def _to_json(model: Event | EventActions) -> dict[str, Any]:
    """A model's JSON form: its fields in definition order (``None`` left out), then ``extra``."""
    data: dict[str, Any] = {}
    for name in _FIELD_ORDER[type(model)]:
        value = getattr(model, name)
        if value is not None:
            data[name] = value.to_dict() if isinstance(value, EventActions) else value
    data.update(model.extra)
    return data


def _split(data: Mapping[str, Any], names: frozenset[str]) -> dict[str, Any]:
    """Field values found in ``data`` (``None``s left out: they mean "the default") and
    ``extra``, the other keys; values are not copied."""
    fields = {name: data[name] for name in names if data.get(name) is not None}
    fields["extra"] = (
        {} if data.keys() <= names else {k: v for k, v in data.items() if k not in names}
    )
    return fields


def _action_fields(data: Mapping[str, Any]) -> dict[str, Any]:
    return _split(data, json_fields(EventActions))


def _event_fields(data: Mapping[str, Any]) -> dict[str, Any]:
    fields = _split(data, json_fields(Event))
    if not fields.get("id"):  # "" as google-adk writes before an id is given
        fields.pop("id", None)
    fields.setdefault("author", "")
    return fields


def event_from_stored(data: dict[str, Any]) -> Event:
    """Build an event from JSON just decoded from the database, which nobody else holds.

    The copies and checks of :meth:`Event.from_dict` are skipped (the row was checked when it
    was appended, and the decoded dicts are new); reading 1,000 events is the hot path of every
    core read.

    Raises:
        TypeError, ValueError, KeyError, AttributeError: The row is not an event's JSON form
            (the caller turns this into a ``StorageError`` naming the row).
    """
    fields = _event_fields(data)
    fields["actions"] = _unchecked(EventActions, _action_fields(fields.get("actions") or {}))
    fields["timestamp"] = float(data["timestamp"])
    return _unchecked(Event, fields)


_M = TypeVar("_M")


def _unchecked(model: type[_M], fields: dict[str, Any]) -> _M:
    """An instance of ``model`` holding ``fields`` as they are (the rest at their defaults),
    without the converters and validators of its ``__init__``."""
    instance = object.__new__(model)
    for name, factory, default in _SLOTS[model]:
        if name in fields:
            object.__setattr__(instance, name, fields[name])
        else:
            object.__setattr__(instance, name, default if factory is None else factory())
    return instance


# Each model's JSON fields, in definition order (the order of its JSON form).
_FIELD_ORDER: dict[type[Any], tuple[str, ...]] = {
    model: tuple(f.name for f in attrs.fields(model) if f.name != "extra")
    for model in (Event, EventActions)
}
_JSON_FIELDS: dict[type[Any], frozenset[str]] = {
    model: frozenset(names) for model, names in _FIELD_ORDER.items()
}
# Each model's fields with their default: (name, factory or None, default).
_SLOTS: dict[type[Any], tuple[tuple[str, Callable[[], Any] | None, Any], ...]] = {
    model: tuple(
        (f.name, f.default.factory, None)
        if isinstance(f.default, attrs.Factory)  # type: ignore[arg-type]
        else (f.name, None, f.default)
        for f in attrs.fields(model)
    )
    for model in (Event, EventActions)
}


@attrs.define(kw_only=True)
class Session:
    """A conversation: merged state plus the event history.

    Mutable because :meth:`SessionService.append_event` advances it after each commit.

    Attributes:
        id: The session id, unique per (app_name, user_id).
        app_name: The application.
        user_id: The user.
        state: Merged state: session keys plain, app/user keys re-prefixed with ``app:``/``user:``.
        events: The events read or appended, in append order.
        last_update_time: Epoch seconds of the last change; never moves backwards.
        revision: Optimistic-concurrency token: 0 when created, +1 per stored event.
    """

    id: str
    app_name: str
    user_id: str
    state: dict[str, Any] = attrs.field(factory=dict)
    events: list[Event] = attrs.field(factory=list)
    last_update_time: float = 0.0
    revision: int = 0


@attrs.frozen(kw_only=True)
class ListSessionsResponse:
    """One page of :meth:`SessionService.list_sessions`.

    Attributes:
        sessions: Sessions with merged state and no events.
        next_page_token: Pass back as ``page_token`` for the next page; ``None`` on the last page.
    """

    sessions: list[Session] = attrs.field(factory=list)
    next_page_token: str | None = None
