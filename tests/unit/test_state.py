"""Unit tests of the pure state helpers (no database)."""

from __future__ import annotations

import json

import pytest

from adk_sessions._json import dumps, loads
from adk_sessions._state import merge_state, split_delta, without_temp


@pytest.mark.parametrize(
    "text", ['{"a":1}', '[1,2.5,"x"]', '"s"', "3", ' {"a": 1} ', '{"f":0.30000000000000004}']
)
def test_loads_matches_json_loads(text: str) -> None:
    """loads gives what json.loads gives, surrounding whitespace included."""
    assert loads(text) == json.loads(text)


@pytest.mark.parametrize("text", ['{"a":1} x', "", "{", "nan x"])
def test_loads_rejects_what_json_rejects(text: str) -> None:
    """Malformed text raises json's own error."""
    with pytest.raises(json.JSONDecodeError):
        loads(text)


def test_split_and_merge_are_inverse() -> None:
    """split_delta strips prefixes and drops temp:; merge_state puts prefixes back."""
    delta = {"s": 1, "app:a": 2, "user:u": 3, "temp:t": 4}
    parts = split_delta(delta)
    assert (parts.app, parts.user, parts.session) == ({"a": 2}, {"u": 3}, {"s": 1})
    assert merge_state(parts.app, parts.user, parts.session) == without_temp(delta)


def test_dumps_is_compact_and_strict() -> None:
    """dumps writes compact UTF-8 JSON and refuses NaN."""
    assert dumps({"k": "é", "l": [1]}) == '{"k":"é","l":[1]}'
    with pytest.raises(ValueError, match="JSON"):
        dumps({"k": float("nan")})
