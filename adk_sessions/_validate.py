"""Argument checks shared by every entry point (core service, HTTP service, importer).

Pure functions, no I/O. Each raises :class:`InvalidArgumentError` naming what was wrong, so bad
input is refused before a transaction starts and never reaches a driver.
"""

from __future__ import annotations

import math
import re
from typing import Final

from .errors import InvalidArgumentError

__all__ = (
    "MAX_COUNT",
    "MAX_ID_BYTES",
    "check_count",
    "check_name",
    "check_seconds",
    "check_text",
)

MAX_ID_BYTES: Final = 512
"""The longest app name, user id, session id or event id, in UTF-8 bytes (so that the key of a
session always fits a PostgreSQL btree entry, about 2.7 kB)."""

MAX_COUNT: Final = 2**63 - 1
"""The largest count or page size accepted (a signed 64-bit integer, what both databases take)."""

# C0 controls and DEL: invisible, break logs and HTTP paths (a "\n" id could never be addressed).
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def check_text(what: str, value: str) -> str:
    """Refuse text no backend stores as given: NUL characters and lone surrogates.

    Args:
        what: What the text is, for the message.
        value: The text.

    Returns:
        ``value``.

    Raises:
        InvalidArgumentError: Naming ``what``.
    """
    if "\x00" in value:
        raise InvalidArgumentError(f"{what} contains NUL (\\x00)")
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise InvalidArgumentError(
                f"{what} is not valid Unicode text (lone surrogate at index {exc.start})"
            ) from exc
    return value


def check_name(what: str, value: object) -> str:
    """Check an app name, user id, session id or event id.

    Args:
        what: The argument's name, for the message.
        value: The value.

    Returns:
        ``value``.

    Raises:
        InvalidArgumentError: Not a non-empty string, a control character (U+0000-U+001F,
            U+007F), a lone surrogate, or longer than :data:`MAX_ID_BYTES` UTF-8 bytes.
    """
    if not isinstance(value, str) or not value:
        raise InvalidArgumentError(f"{what} must be a non-empty string, got {value!r}")
    found = _CONTROL.search(value)
    if found is not None:
        raise InvalidArgumentError(
            f"{what} {value!r} contains the control character {found.group()!r}"
        )
    check_text(what, value)
    size = len(value.encode("utf-8"))
    if size > MAX_ID_BYTES:
        raise InvalidArgumentError(f"{what} is {size} bytes long; at most {MAX_ID_BYTES} allowed")
    return value


def check_count(what: str, value: object) -> int | None:
    """Check an optional count (``num_recent_events``, ``page_size``).

    Args:
        what: The argument's name, for the message.
        value: ``None`` or an ``int`` from 0 to :data:`MAX_COUNT`.

    Returns:
        ``value``.

    Raises:
        InvalidArgumentError: Naming ``what``.
    """
    if value is None:
        return None
    if type(value) is not int or not 0 <= value <= MAX_COUNT:
        raise InvalidArgumentError(
            f"{what} must be None or an integer from 0 to 2**63-1, got {value!r}"
        )
    return value


def check_seconds(what: str, value: object, *, finite: bool) -> float | None:
    """Check optional epoch seconds (``after``, ``last_update_time``, an event's timestamp).

    Args:
        what: The argument's name, for the message.
        value: ``None``, an ``int`` or a ``float``.
        finite: Refuse infinities too (``after`` accepts them as "no bound" / "nothing").

    Returns:
        ``value`` as a float.

    Raises:
        InvalidArgumentError: Not a number, NaN, too large for a float, or infinite when
            ``finite``.
    """
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidArgumentError(f"{what} must be None or epoch seconds, got {value!r}")
    try:
        seconds = float(value)
    except OverflowError:
        raise InvalidArgumentError(
            f"{what} is too large for a float (an integer of {abs(int(value)).bit_length()} bits)"
        ) from None
    if math.isnan(seconds) or (finite and math.isinf(seconds)):
        raise InvalidArgumentError(
            f"{what} must be a finite number of epoch seconds, got {value!r}"
        )
    return seconds
