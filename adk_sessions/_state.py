"""State scopes: validation, splitting a delta by prefix, merging the scopes back.

Pure functions, no I/O. ``app:``/``user:`` keys are stored without their prefix in their own scope,
``temp:`` keys are never stored, everything else belongs to the session.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import attrs

from ._json import needs_positional
from .errors import InvalidArgumentError

APP_PREFIX = "app:"
USER_PREFIX = "user:"
TEMP_PREFIX = "temp:"
SCOPE_PREFIXES = (APP_PREFIX, USER_PREFIX, TEMP_PREFIX)

# Python refuses to print integers of more than 4,300 digits (and so to store or read them back);
# state keeps well below that.
_MAX_INT_DIGITS = 4000
_MAX_INT = 10**_MAX_INT_DIGITS


def _text_problem(text: str) -> str | None:
    """Why a string cannot be stored as given on every backend, or None."""
    if "\x00" in text:
        return "contains NUL (\\x00)"
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            return "contains a lone surrogate (not valid Unicode text)"
    return None


def _check(value: Any, key: str, depth: int = 0) -> bool:
    """Raise InvalidArgumentError unless ``value`` is plain JSON that every backend stores as is.

    Returns:
        Whether the value holds a float that :func:`encode_state` must write positionally.
    """
    kind = type(value)
    if value is None or kind is bool:
        return False
    if kind is int:
        if value.bit_length() > 13_000 and abs(value) >= _MAX_INT:
            raise InvalidArgumentError(
                f"state key {key!r}: integer of more than {_MAX_INT_DIGITS} digits"
            )
        return False
    if kind is str:
        problem = _text_problem(value)
        if problem:
            raise InvalidArgumentError(f"state key {key!r}: a string {problem}")
        return False
    if kind is float:
        if not math.isfinite(value):
            raise InvalidArgumentError(f"state key {key!r}: {value!r} is not a JSON number")
        return needs_positional(value)
    if depth > 100:
        raise InvalidArgumentError(f"state key {key!r}: value nests deeper than 100 levels")
    found = False
    if kind is list:
        for item in value:
            found = _check(item, key, depth + 1) or found
        return found
    if kind is dict:
        for k, item in value.items():
            if type(k) is not str:
                raise InvalidArgumentError(
                    f"state key {key!r}: nested dict key {k!r} is not a string"
                )
            problem = _text_problem(k)
            if problem:
                raise InvalidArgumentError(f"state key {key!r}: a nested key {problem}")
            found = _check(item, key, depth + 1) or found
        return found
    raise InvalidArgumentError(
        f"state key {key!r}: {kind.__name__} is not JSON "
        "(allowed: str, int, float, bool, None, list, dict with str keys)"
    )


def validate_state(state: Mapping[str, Any]) -> bool:
    """Check every key and value of a state mapping or delta.

    ``temp:`` keys are checked too: they live in the caller's session only, but a delta is
    either valid as a whole or rejected as a whole.

    Args:
        state: The mapping to check.

    Returns:
        Whether some float needs positional encoding (pass it to :func:`encode_state`).

    Raises:
        InvalidArgumentError: Naming the first offending top-level key.
    """
    if not isinstance(state, Mapping):
        raise InvalidArgumentError(f"state must be a dict, not {type(state).__name__}")
    found = False
    for key, value in state.items():
        if type(key) is not str:
            raise InvalidArgumentError(f"state key {key!r} is not a string")
        problem = _text_problem(key)
        if problem:
            raise InvalidArgumentError(f"state key {key!r} {problem}")
        found = _check(value, key) or found
    return found


@attrs.frozen(kw_only=True)
class ScopedDelta:
    """A state delta split by scope, prefixes stripped; ``temp:`` keys dropped."""

    app: dict[str, Any]
    user: dict[str, Any]
    session: dict[str, Any]


def split_delta(delta: Mapping[str, Any]) -> ScopedDelta:
    """Split a delta by prefix into app, user and session parts.

    Args:
        delta: A validated state delta.

    Returns:
        The three parts, each possibly empty.
    """
    app: dict[str, Any] = {}
    user: dict[str, Any] = {}
    session: dict[str, Any] = {}
    for key, value in delta.items():
        if key.startswith(APP_PREFIX):
            app[key[len(APP_PREFIX) :]] = value
        elif key.startswith(USER_PREFIX):
            user[key[len(USER_PREFIX) :]] = value
        elif not key.startswith(TEMP_PREFIX):
            session[key] = value
    return ScopedDelta(app=app, user=user, session=session)


def without_temp(delta: Mapping[str, Any]) -> dict[str, Any]:
    """Return ``delta`` without its ``temp:`` keys (a new dict)."""
    return {k: v for k, v in delta.items() if not k.startswith(TEMP_PREFIX)}


def prefixed_scopes(app: Mapping[str, Any], user: Mapping[str, Any]) -> dict[str, Any]:
    """Return the app and user scopes with their prefixes put back, as one dict.

    Args:
        app: The app scope, keys without prefix.
        user: The user scope, keys without prefix.

    Returns:
        A new dict of ``app:``/``user:`` keys.
    """
    overlay = {APP_PREFIX + key: value for key, value in app.items()}
    overlay.update({USER_PREFIX + key: value for key, value in user.items()})
    return overlay


def merge_state(
    app: Mapping[str, Any], user: Mapping[str, Any], session: Mapping[str, Any]
) -> dict[str, Any]:
    """Merge the three stored scopes into the state a caller sees.

    App and user keys are re-prefixed and win over a same-named session key.

    Args:
        app: The app scope, keys without prefix.
        user: The user scope, keys without prefix.
        session: The session scope.

    Returns:
        A new merged dict.
    """
    return {**session, **prefixed_scopes(app, user)}
