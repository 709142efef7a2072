"""The JSON codec of everything stored: one compact encoder, a fast decoder, exact floats.

Pure functions, no I/O.
"""

from __future__ import annotations

import decimal
import json
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ("dumps", "encode_state", "loads", "needs_positional")

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


def needs_positional(value: float) -> bool:
    """Whether ``repr(value)`` uses an exponent (jsonb would turn 2.5e16 into an integer)."""
    return "e" in repr(value)


def _positional(value: float) -> str:
    text = format(decimal.Decimal(repr(value)), "f")
    return text if "." in text else text + ".0"


def encode_state(state: Mapping[str, Any], *, positional_floats: bool) -> str:
    """Encode validated state for storage.

    PostgreSQL's ``jsonb`` keeps numbers as decimals and prints ``2.5e16`` back as the integer
    ``25000000000000000``; floats whose ``repr`` has an exponent are therefore written in
    positional form with a fractional part (``25000000000000000.0``), which every backend reads
    back as the same float. Such floats are rare, so the common path is plain :func:`dumps`.

    Args:
        state: Validated state (see ``_state.validate_state``).
        positional_floats: What ``validate_state`` returned for it.

    Returns:
        Compact JSON text.
    """
    if not positional_floats:
        return dumps(state)
    numbers: list[str] = []

    def swap(value: Any) -> Any:
        # Placeholders hold NUL, which validated state never contains, so they cannot clash.
        if type(value) is float and needs_positional(value):
            numbers.append(_positional(value))
            return f"\x00{len(numbers) - 1}\x00"
        if type(value) is list:
            return [swap(item) for item in value]
        if type(value) is dict:
            return {k: swap(item) for k, item in value.items()}
        return value

    text = dumps(swap(state))
    for index, number in enumerate(numbers):
        text = text.replace(f'"\\u0000{index}\\u0000"', number, 1)
    return text
