"""Rows to models: the one place that knows the row shapes."""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

import attrs

from ._dialects.base import Row
from ._json import loads
from ._models import Event, event_from_stored
from ._state import prefixed_scopes
from .errors import StorageError

_T = TypeVar("_T")

__all__ = (
    "StoredSession",
    "build_page",
    "events_from_texts",
    "session_state",
    "stored_events",
    "unreadable_event",
)

Decode = Callable[[Any], Any]


@attrs.frozen(kw_only=True)
class StoredSession:
    """A session as storage holds it, for readers that build their own event objects.

    Attributes:
        state: Merged state (app/user scopes laid over the session's own keys).
        last_update_time: Epoch seconds of the last change.
        revision: The stored revision (number of stored events).
        create_time: When this incarnation of the session was created: a session deleted and
            created again under the same id has (in practice) another one.
        events: The stored JSON text of the events read, in append order.
        seqs: The position of each of those events (1 for the first event ever stored).
    """

    state: dict[str, Any]
    last_update_time: float
    revision: int
    create_time: float
    events: list[str]
    seqs: list[int]


def stored_events(rows: Sequence[Row]) -> tuple[list[str], list[int]]:
    """Return the stored JSON text and the position of ``get_events`` rows, oldest first.

    Args:
        rows: Rows with ``seq`` and ``event`` (JSON text) columns, newest first.

    Returns:
        The texts and the positions, in append order.
    """
    ordered = rows[::-1]
    return [row["event"] for row in ordered], [row["seq"] for row in ordered]


def unreadable_event(session_id: str, seq: int, exc: Exception) -> StorageError:
    """Return the error for a stored event that cannot be read back.

    Args:
        session_id: The session.
        seq: The event's position.
        exc: What went wrong.

    Returns:
        A ``StorageError`` naming the session and the position (raise it ``from exc``).
    """
    return StorageError(
        f"session {session_id!r}: the event stored at position {seq} cannot be "
        f"read ({type(exc).__name__}: {exc}); repair or delete that row"
    )


def events_from_texts(texts: Sequence[str], seqs: Sequence[int], *, session_id: str) -> list[Event]:
    """Build events from their stored JSON text.

    Args:
        texts: The stored JSON, in append order (see :func:`stored_events`).
        seqs: Their positions.
        session_id: The session, for the message of a row that cannot be read.

    Returns:
        The events, in the same order.

    Raises:
        StorageError: A stored row is not an event (written by hand, or by an old version that
            let an ``extra`` key shadow a field); names the session and the event's position.
    """
    events = []
    for text, seq in zip(texts, seqs, strict=True):
        try:
            events.append(event_from_stored(loads(text)))
        except Exception as exc:  # any malformed row, reported as such
            raise unreadable_event(session_id, seq, exc) from exc
    return events


def session_state(
    row: Row, *, scopes: Mapping[str, Any], decode: Decode, session_id: str
) -> dict[str, Any]:
    """Return a session's merged state from its row and its app/user scopes.

    Args:
        row: A row with a ``state`` column.
        scopes: The ``app:``/``user:`` keys (:func:`prefixed_scopes`), laid over the session's
            own state; the result keeps references to their values.
        decode: The dialect's JSON decoder.
        session_id: The session, for the message of a state that cannot be read.

    Returns:
        A new dict.

    Raises:
        StorageError: The stored state is not a JSON object.
    """
    state = decode(row["state"])
    if not isinstance(state, dict):
        raise StorageError(f"session {session_id!r}: the stored state is not a JSON object")
    state.update(scopes)
    return state


def build_page(
    rows: Sequence[Row],
    build: Callable[[str, str, str, dict[str, Any], float, int], _T],
    *,
    app_name: str,
    app_state: Any,
    user_state: Any,
    one_user: bool,
    decode: Decode,
) -> list[_T]:
    """Build the sessions of a list page from its rows, in order.

    Each user's scopes are decoded once per page, however many sessions they own; nested values
    are copied per session, so that no two sessions share a mutable object.

    Args:
        rows: ``list_sessions``/``list_user_sessions`` rows.
        build: Called as ``build(app_name, user_id, session_id, state, last_update_time,
            revision)``; ``state`` is merged and the caller's to keep.
        app_name: The app.
        app_state: The app scope as stored.
        user_state: The user scope as stored, when the page is one user's.
        one_user: The page is one user's; otherwise each row carries its user's scope (its
            ``user_state`` column).
        decode: The dialect's JSON decoder.

    Returns:
        What ``build`` returned for each row.
    """
    app = decode(app_state) or {}
    overlays: dict[str, tuple[dict[str, Any], bool]] = {}
    sessions = []
    for row in rows:
        owner = row["user_id"]
        if owner not in overlays:
            stored = user_state if one_user else row["user_state"]
            overlay = prefixed_scopes(app, decode(stored) or {})
            nested = any(isinstance(v, (dict, list)) for v in overlay.values())
            overlays[owner] = (overlay, nested)
        overlay, nested = overlays[owner]
        state = session_state(
            row,
            scopes=copy.deepcopy(overlay) if nested else overlay,
            decode=decode,
            session_id=row["id"],
        )
        sessions.append(
            build(app_name, owner, row["id"], state, row["update_time"], row["revision"])
        )
    return sessions
