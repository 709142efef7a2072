"""Rows to models, and list-page tokens: the one place that knows the row shapes."""

from __future__ import annotations

import base64
import json
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import attrs

from ._dialect import Row
from ._models import Event, event_from_stored
from ._state import loads
from ._validate import check_name
from .errors import InvalidArgumentError, StorageError

__all__ = (
    "Cursor",
    "StoredSession",
    "decode_token",
    "encode_token",
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


@attrs.frozen(kw_only=True)
class Cursor:
    """Where a list page ends: the sort key of its last session, bound to the query it answers."""

    app_name: str
    user_filter: str | None
    update_time: float
    user_id: str
    session_id: str


_TOKEN_VERSION = 1
# Far longer than any token issued (ids are at most 512 bytes each), far shorter than a DoS.
_MAX_TOKEN_LENGTH = 8192


def encode_token(cursor: Cursor) -> str:
    """Encode a cursor as an opaque URL-safe page token."""
    payload = [
        _TOKEN_VERSION,
        cursor.app_name,
        cursor.user_filter,
        cursor.update_time,
        cursor.user_id,
        cursor.session_id,
    ]
    raw = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_token(token: str, *, app_name: str, user_filter: str | None) -> Cursor:
    """Decode a page token issued by :func:`encode_token` for the same query.

    Args:
        token: The token.
        app_name: The app of the current query.
        user_filter: The ``user_id`` filter of the current query.

    Returns:
        The cursor.

    Raises:
        InvalidArgumentError: When the token is malformed (of any shape: not base64, not JSON,
            nested, huge numbers, NUL or lone surrogates) or was issued for another query.
    """
    foreign = InvalidArgumentError(f"page_token {token!r:.80} was not issued by list_sessions")
    try:
        if len(token) > _MAX_TOKEN_LENGTH or not token.isascii():
            raise foreign
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        payload = json.loads(raw)
        version, app, user_filter_, update_time, user_id, session_id = payload
        if (
            type(version) is not int
            or version != _TOKEN_VERSION
            or type(update_time) not in (int, float)
            or not math.isfinite(update_time)
            or not all(type(v) is str for v in (app, user_id, session_id))
            or not (user_filter_ is None or type(user_filter_) is str)
        ):
            raise foreign
        # The ids of a token are ids: refused as the service refuses them (control characters,
        # lone surrogates, NUL, over MAX_ID_BYTES), so none reaches a query.
        for name in (app, user_id, session_id, *([] if user_filter_ is None else [user_filter_])):
            check_name("page_token", name)
        cursor = Cursor(
            app_name=app,
            user_filter=user_filter_,
            update_time=float(update_time),
            user_id=user_id,
            session_id=session_id,
        )
    except InvalidArgumentError as exc:
        if exc is foreign:
            raise  # not "from" itself: an exception must not be its own cause
        raise foreign from exc
    except Exception as exc:  # any malformed shape, RecursionError included
        raise foreign from exc
    if cursor.app_name != app_name or cursor.user_filter != user_filter:
        raise InvalidArgumentError(
            f"page_token {token!r:.80} belongs to another query (app_name/user_id differ)"
        )
    return cursor
