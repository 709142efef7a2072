"""Conformance: writing the app and user scopes directly (importers, admin tools)."""

from __future__ import annotations

from typing import Any

import pytest

from adk_sessions import SessionService
from adk_sessions.errors import InvalidArgumentError

pytestmark = pytest.mark.anyio

APP, USER = "app", "user"


async def test_scope_updates_merge_shallowly_and_show_in_sessions(service: SessionService) -> None:
    """update_app_state/update_user_state merge like an event's app:/user: delta would, return
    the scope, and every session of the app/user sees the result."""
    s = await service.create_session(app_name=APP, user_id=USER, state={"app:a": 1, "user:u": 1})
    assert await service.update_app_state(app_name=APP, delta={"b": [2], "a": None}) == {
        "a": None,
        "b": [2],
    }
    assert await service.update_user_state(app_name=APP, user_id=USER, delta={"v": {"x": 1}}) == {
        "u": 1,
        "v": {"x": 1},
    }
    got = await service.get_session(app_name=APP, user_id=USER, session_id=s.id)
    assert got is not None
    assert got.state == {"app:a": None, "app:b": [2], "user:u": 1, "user:v": {"x": 1}}
    assert await service.get_app_state(app_name=APP) == {"a": None, "b": [2]}
    assert await service.get_user_state(app_name=APP, user_id="other") == {}


async def test_scope_update_creates_a_missing_scope(service: SessionService) -> None:
    """A scope that does not exist yet is created by its first update (no session needed)."""
    assert await service.update_user_state(app_name="new", user_id="u", delta={"k": 1.5}) == {
        "k": 1.5
    }
    assert await service.list_sessions(app_name="new") == await service.list_sessions(
        app_name="nobody"
    )


@pytest.mark.parametrize(
    "delta",
    [{"app:k": 1}, {"user:k": 1}, {"temp:k": 1}, {"k": float("nan")}, {"k": "\x00"}, {1: 2}],
    ids=["app-prefix", "user-prefix", "temp-prefix", "nan", "nul", "int-key"],
)
async def test_bad_scope_deltas_write_nothing(service: SessionService, delta: Any) -> None:
    """A prefixed key or a value that is not JSON is an InvalidArgumentError; nothing written."""
    await service.update_app_state(app_name=APP, delta={"keep": 1})
    with pytest.raises(InvalidArgumentError):
        await service.update_app_state(app_name=APP, delta=delta)
    with pytest.raises(InvalidArgumentError):
        await service.update_user_state(app_name=APP, user_id=USER, delta=delta)
    assert await service.get_app_state(app_name=APP) == {"keep": 1}
    assert await service.get_user_state(app_name=APP, user_id=USER) == {}
