"""Rows to models, and list-page tokens: the one place that knows the row shapes."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence
from typing import Any

import attrs

from ._dialect import Row
from ._models import Event
from ._state import loads
from .errors import InvalidArgumentError

__all__ = (
    "Cursor",
    "StoredSession",
    "decode_token",
    "encode_token",
    "event_texts",
    "events_from_texts",
)


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
    """

    state: dict[str, Any]
    last_update_time: float
    revision: int
    create_time: float
    events: list[str]


def event_texts(rows: Sequence[Row]) -> list[str]:
    """Return the stored JSON of ``get_events`` rows (newest first) in append order.

    Args:
        rows: Rows with an ``event`` column holding JSON text, newest first.

    Returns:
        The texts, oldest first.
    """
    return [row["event"] for row in reversed(rows)]


def events_from_texts(texts: Sequence[str]) -> list[Event]:
    """Build events from their stored JSON text.

    Args:
        texts: JSON texts as :func:`event_texts` returns them.

    Returns:
        The events, in the same order.
    """
    return [Event.from_dict(loads(text)) for text in texts]


@attrs.frozen(kw_only=True)
class Cursor:
    """Where a list page ends: the sort key of its last session, bound to the query it answers."""

    app_name: str
    user_filter: str | None
    update_time: float
    user_id: str
    session_id: str


_TOKEN_VERSION = 1


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
        InvalidArgumentError: When the token is malformed or was issued for another query.
    """
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        version, app, user_filter_, update_time, user_id, session_id = json.loads(raw)
    except (TypeError, ValueError, binascii.Error) as exc:
        raise InvalidArgumentError(f"page_token {token!r} was not issued by list_sessions") from exc
    if (
        version != _TOKEN_VERSION
        or type(update_time) not in (int, float)
        or not all(isinstance(v, str) for v in (app, user_id, session_id))
    ):
        raise InvalidArgumentError(f"page_token {token!r} was not issued by list_sessions")
    if app != app_name or user_filter_ != user_filter:
        raise InvalidArgumentError(
            f"page_token {token!r} belongs to another query (app_name/user_id differ)"
        )
    return Cursor(
        app_name=app,
        user_filter=user_filter_,
        update_time=float(update_time),
        user_id=user_id,
        session_id=session_id,
    )
