"""Session and event models: plain attrs values, no I/O."""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping
from typing import Any

import attrs

from .errors import InvalidArgumentError

__all__ = ("Event", "EventActions", "ListSessionsResponse", "Session")

# Keys of google-adk's JSON event form that are fields here; every other key goes to ``extra``.
EVENT_KEYS = frozenset(
    {"id", "invocation_id", "author", "timestamp", "partial", "branch", "content", "actions"}
)
ACTION_KEYS = frozenset({"state_delta", "artifact_delta"})


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


def _no_shadowing(reserved: frozenset[str]) -> Any:
    """An attrs validator: ``extra`` keys must not name a field (they would override it)."""

    def check(instance: object, attribute: attrs.Attribute[Any], value: Mapping[str, Any]) -> None:
        clash = reserved.intersection(value)
        if clash:
            raise InvalidArgumentError(
                f"{type(instance).__name__}.extra must not hold the field(s) {sorted(clash)}; "
                "set them as fields, not as extra keys"
            )

    return check


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
    extra: dict[str, Any] = attrs.field(
        factory=dict, converter=_copy_dict, validator=_no_shadowing(ACTION_KEYS)
    )

    def to_dict(self) -> dict[str, Any]:
        """Return the snake_case JSON form google-adk uses for ``EventActions``.

        Returns:
            A new dict; ``extra`` keys are merged in after the two delta fields.
        """
        return {
            "state_delta": self.state_delta,
            "artifact_delta": self.artifact_delta,
            **self.extra,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> EventActions:
        """Read the JSON form back; unknown keys go to ``extra``.

        Args:
            data: A mapping as produced by :meth:`to_dict` or google-adk's ``model_dump``.

        Returns:
            The actions, holding copies of ``data``'s values.
        """
        return cls(
            state_delta=data.get("state_delta") or {},
            artifact_delta=data.get("artifact_delta") or {},
            extra={k: v for k, v in data.items() if k not in ACTION_KEYS},
        )


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

    author: str
    invocation_id: str = ""
    id: str = attrs.field(factory=_new_id)
    timestamp: float = attrs.field(factory=time.time)
    partial: bool | None = None
    branch: str | None = None
    content: dict[str, Any] | None = attrs.field(default=None, converter=_copy_optional)
    actions: EventActions = attrs.field(factory=EventActions)
    extra: dict[str, Any] = attrs.field(
        factory=dict, converter=_copy_dict, validator=_no_shadowing(EVENT_KEYS)
    )

    def to_dict(self) -> dict[str, Any]:
        """Return the snake_case JSON form google-adk's ``Event.model_dump`` gives.

        That is ``model_dump(mode="json", exclude_none=True)``.

        Returns:
            A new dict; ``None`` fields are left out, ``extra`` keys merged in.
        """
        data: dict[str, Any] = {
            "id": self.id,
            "invocation_id": self.invocation_id,
            "author": self.author,
            "timestamp": self.timestamp,
            "actions": self.actions.to_dict(),
        }
        if self.partial is not None:
            data["partial"] = self.partial
        if self.branch is not None:
            data["branch"] = self.branch
        if self.content is not None:
            data["content"] = self.content
        data.update(self.extra)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Event:
        """Read the JSON form back losslessly; unknown keys go to ``extra``.

        Args:
            data: A mapping as produced by :meth:`to_dict` or google-adk's ``model_dump``.

        Returns:
            The event, holding copies of ``data``'s values (mutating ``data`` later does not
            change it).

        Raises:
            InvalidArgumentError: A field has the wrong type (``actions`` not a mapping, a
                ``timestamp`` that is not a number).
        """
        actions = data.get("actions")
        if actions is not None and not isinstance(actions, Mapping):
            raise InvalidArgumentError(f"event actions must be a JSON object, not {actions!r:.60}")
        timestamp = data.get("timestamp")
        if timestamp is not None and (
            isinstance(timestamp, bool) or not isinstance(timestamp, (int, float))
        ):
            raise InvalidArgumentError(f"event timestamp must be a number, not {timestamp!r:.60}")
        return cls(
            id=data["id"] if data.get("id") else _new_id(),
            invocation_id=data.get("invocation_id") or "",
            author=data.get("author") or "",
            timestamp=time.time() if timestamp is None else _seconds(timestamp),
            partial=data.get("partial"),
            branch=data.get("branch"),
            content=data.get("content"),
            actions=EventActions.from_dict(actions) if actions else EventActions(),
            extra={}
            if data.keys() <= EVENT_KEYS
            else {k: v for k, v in data.items() if k not in EVENT_KEYS},
        )


def event_from_stored(data: dict[str, Any]) -> Event:
    """Build an event from JSON just decoded from the database, which nobody else holds.

    The copies and checks of :meth:`Event.from_dict` are skipped (the row was checked when it
    was appended, and the decoded dicts are new); reading 1,000 events is the hot path of every
    google-adk turn.

    Raises:
        TypeError, ValueError, KeyError, AttributeError: The row is not an event's JSON form
            (the caller turns this into a ``StorageError`` naming the row).
    """
    actions_data = data.get("actions") or {}
    actions = object.__new__(EventActions)
    for name, value in (
        ("state_delta", actions_data.get("state_delta") or {}),
        ("artifact_delta", actions_data.get("artifact_delta") or {}),
        ("extra", {k: v for k, v in actions_data.items() if k not in ACTION_KEYS}),
    ):
        object.__setattr__(actions, name, value)
    event = object.__new__(Event)
    for name, value in (
        ("id", data["id"]),
        ("invocation_id", data.get("invocation_id") or ""),
        ("author", data.get("author") or ""),
        ("timestamp", float(data["timestamp"])),
        ("partial", data.get("partial")),
        ("branch", data.get("branch")),
        ("content", data.get("content")),
        ("actions", actions),
        (
            "extra",
            {}
            if data.keys() <= EVENT_KEYS
            else {k: v for k, v in data.items() if k not in EVENT_KEYS},
        ),
    ):
        object.__setattr__(event, name, value)
    return event


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
