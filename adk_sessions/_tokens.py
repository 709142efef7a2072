"""List-page tokens: the keyset cursor of a page, bound to the query it answers, made opaque."""

from __future__ import annotations

import base64
import json
import math
from typing import Any

import attrs

from ._dialects.base import Row
from ._validate import check_name
from .errors import InvalidArgumentError

__all__ = ("START", "Cursor", "decode_token", "encode_token", "next_token")


@attrs.frozen(kw_only=True)
class Cursor:
    """Where a list page ends: the sort key of its last session, bound to the query it answers."""

    app_name: str
    user_filter: str | None
    update_time: float
    user_id: str
    session_id: str

    def page_params(self, app_name: str, *, limit: int | None) -> dict[str, Any]:
        """The parameters of the list query for the page after this cursor."""
        return {
            "app_name": app_name,
            "after_time": self.update_time,
            "after_user": self.user_id,
            "after_id": self.session_id,
            "limit": limit,
        }


START = Cursor(app_name="", user_filter=None, update_time=-math.inf, user_id="", session_id="")
"""The cursor before the first session: every update time is > -inf."""


def next_token(last: Row, *, app_name: str, user_filter: str | None) -> str:
    """The token of the page after the one whose last row is ``last``."""
    return encode_token(
        Cursor(
            app_name=app_name,
            user_filter=user_filter,
            update_time=last["update_time"],
            user_id=last["user_id"],
            session_id=last["id"],
        )
    )


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
