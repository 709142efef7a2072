"""Rows to models, and list-page tokens: the one place that knows the row shapes."""

from __future__ import annotations

import base64
import json
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import attrs

from ._dialect import Row
from ._models import Event, Session, event_from_stored
from ._validate import check_text
from .errors import InvalidArgumentError, StorageError

__all__ = ("Cursor", "decode_token", "encode_token", "events_from_rows", "session_from_row")

Decode = Callable[[Any], Any]


def events_from_rows(rows: Sequence[Row], decode: Decode, *, session_id: str) -> list[Event]:
    """Build events from ``get_events`` rows (newest first) in append order.

    Args:
        rows: Rows with ``seq`` and ``event`` columns, newest first.
        decode: The dialect's JSON decoder.
        session_id: The session, for the message of a row that cannot be read.

    Returns:
        The events, oldest first.

    Raises:
        StorageError: A stored row is not an event (written by hand, or by an old version that
            let an ``extra`` key shadow a field); names the session and the event's position.
    """
    events = []
    for row in reversed(rows):
        try:
            events.append(event_from_stored(decode(row["event"])))
        except Exception as exc:  # any malformed row, reported as such
            raise StorageError(
                f"session {session_id!r}: the event stored at position {row['seq']} cannot be "
                f"read ({type(exc).__name__}: {exc}); repair or delete that row"
            ) from exc
    return events


def session_from_row(
    row: Row,
    *,
    app_name: str,
    session_id: str,
    user_id: str,
    scopes: Mapping[str, Any],
    decode: Decode,
    events: list[Event] | None = None,
) -> Session:
    """Build a session from a sessions row and its app/user scopes.

    Args:
        row: A row with ``state``, ``update_time`` and ``revision``.
        app_name: The app.
        session_id: The session id.
        user_id: The user.
        scopes: The ``app:``/``user:`` keys (:func:`prefixed_scopes`), laid over the session's
            own state; the session keeps references to their values.
        decode: The dialect's JSON decoder.
        events: The events, if read.

    Returns:
        The session with merged state.

    Raises:
        StorageError: The stored state is not a JSON object.
    """
    state = decode(row["state"])
    if not isinstance(state, dict):
        raise StorageError(f"session {session_id!r}: the stored state is not a JSON object")
    state.update(scopes)
    return Session(
        id=session_id,
        app_name=app_name,
        user_id=user_id,
        state=state,
        events=events if events is not None else [],
        last_update_time=row["update_time"],
        revision=row["revision"],
    )


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
            version != _TOKEN_VERSION
            or type(update_time) not in (int, float)
            or not math.isfinite(update_time)
            or not all(type(v) is str for v in (app, user_id, session_id))
            or not (user_filter_ is None or type(user_filter_) is str)
        ):
            raise foreign
        for text in (app, user_id, session_id, user_filter_ or ""):
            check_text("page_token", text)
        cursor = Cursor(
            app_name=app,
            user_filter=user_filter_,
            update_time=float(update_time),
            user_id=user_id,
            session_id=session_id,
        )
    except InvalidArgumentError as exc:
        raise foreign from exc
    except Exception as exc:  # any malformed shape, RecursionError included
        raise foreign from exc
    if cursor.app_name != app_name or cursor.user_filter != user_filter:
        raise InvalidArgumentError(
            f"page_token {token!r:.80} belongs to another query (app_name/user_id differ)"
        )
    return cursor
