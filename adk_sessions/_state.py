"""State scopes: validation, splitting a delta by prefix, merging the scopes back.

Pure functions, no I/O. ``app:``/``user:`` keys are stored without their prefix in their own scope,
``temp:`` keys are never stored, everything else belongs to the session.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from typing import Any

import attrs

from .errors import InvalidArgumentError

APP_PREFIX = "app:"
USER_PREFIX = "user:"
TEMP_PREFIX = "temp:"

_ENCODER = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":"))


# The decoder's C scanner; typeshed does not declare the attribute.
_SCAN: Callable[[str, int], tuple[Any, int]] = json.JSONDecoder().scan_once  # type: ignore[attr-defined]


def dumps(value: Any) -> str:
    """Encode validated JSON compactly (the one encoder used for everything stored)."""
    return _ENCODER.encode(value)


def loads(text: str) -> Any:
    """Decode JSON text read back from the database.

    The C scanner is called directly (``json.loads`` adds two regex passes for surrounding
    whitespace); text that is not one bare JSON value goes through ``json.loads`` and its errors.
    """
    try:
        value, end = _SCAN(text, 0)
    except StopIteration:
        return json.loads(text)
    if end != len(text):
        return json.loads(text)
    return value


def _check(value: Any, key: str, depth: int = 0) -> None:
    """Raise InvalidArgumentError unless ``value`` is plain JSON that every backend stores as is."""
    kind = type(value)
    if value is None or kind is bool or kind is int:
        return
    if kind is str:
        if "\x00" in value:
            raise InvalidArgumentError(f"state key {key!r}: strings must not contain NUL (\\x00)")
        return
    if kind is float:
        if not math.isfinite(value):
            raise InvalidArgumentError(f"state key {key!r}: {value!r} is not a JSON number")
        return
    if depth > 100:
        raise InvalidArgumentError(f"state key {key!r}: value nests deeper than 100 levels")
    if kind is list:
        for item in value:
            _check(item, key, depth + 1)
        return
    if kind is dict:
        for k, item in value.items():
            if type(k) is not str:
                raise InvalidArgumentError(
                    f"state key {key!r}: nested dict key {k!r} is not a string"
                )
            if "\x00" in k:
                raise InvalidArgumentError(f"state key {key!r}: nested key contains NUL (\\x00)")
            _check(item, key, depth + 1)
        return
    raise InvalidArgumentError(
        f"state key {key!r}: {kind.__name__} is not JSON "
        "(allowed: str, int, float, bool, None, list, dict with str keys)"
    )


def validate_state(state: Mapping[str, Any]) -> None:
    """Check every key and value of a state mapping or delta.

    ``temp:`` keys are checked too: they live in the caller's session only, but a delta is
    either valid as a whole or rejected as a whole.

    Args:
        state: The mapping to check.

    Raises:
        InvalidArgumentError: Naming the first offending top-level key.
    """
    if not isinstance(state, Mapping):
        raise InvalidArgumentError(f"state must be a dict, not {type(state).__name__}")
    for key, value in state.items():
        if type(key) is not str:
            raise InvalidArgumentError(f"state key {key!r} is not a string")
        if "\x00" in key:
            raise InvalidArgumentError(f"state key {key!r} contains NUL (\\x00)")
        _check(value, key)


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
