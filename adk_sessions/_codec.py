"""Rows to models, and list-page tokens: the one place that knows the row shapes."""

from __future__ import annotations

import base64
import binascii
import json
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import attrs

from ._dialect import Row
from ._models import Event, Session
from ._validate import check_text
from .errors import InvalidArgumentError

__all__ = ("Cursor", "decode_token", "encode_token", "events_from_rows", "session_from_row")

Decode = Callable[[Any], Any]


def events_from_rows(rows: Sequence[Row], decode: Decode) -> list[Event]:
    """Build events from ``get_events`` rows (newest first) in append order.

    Args:
        rows: Rows with an ``event`` column, newest first.
        decode: The dialect's JSON decoder.

    Returns:
        The events, oldest first.
    """
    return [Event.from_dict(decode(row["event"])) for row in reversed(rows)]


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
    """
    state = decode(row["state"])
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


def _token_fields(token: str) -> tuple[str, str | None, float, str, str] | None:
    """The fields of a well-formed token, or ``None`` for any malformed one.

    Malformed covers everything a client could send: bad base64 or JSON, nesting deep enough to
    exhaust the recursion limit, an update time over 1e308 (decoded as infinity) or an integer
    too large for a float, NUL characters or lone surrogates in the strings.
    """
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        version, app, user_filter, update_time, user_id, session_id = json.loads(raw)
        if type(version) is not int or version != _TOKEN_VERSION:
            return None
        if type(update_time) not in (int, float) or not math.isfinite(float(update_time)):
            return None
        if not all(isinstance(v, str) for v in (app, user_id, session_id)) or not (
            user_filter is None or isinstance(user_filter, str)
        ):
            return None
        for value in (app, user_filter, user_id, session_id):
            if value is not None:
                check_text("page_token", value)
    except (TypeError, ValueError, OverflowError, RecursionError, binascii.Error):
        return None  # InvalidArgumentError from check_text is a ValueError
    return app, user_filter, float(update_time), user_id, session_id


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
    fields = _token_fields(token)
    if fields is None:
        raise InvalidArgumentError(f"page_token {token!r} was not issued by list_sessions")
    app, user_filter_, update_time, user_id, session_id = fields
    if app != app_name or user_filter_ != user_filter:
        raise InvalidArgumentError(
            f"page_token {token!r} belongs to another query (app_name/user_id differ)"
        )
    return Cursor(
        app_name=app,
        user_filter=user_filter_,
        update_time=update_time,
        user_id=user_id,
        session_id=session_id,
    )
