"""Conformance: create, get, list, delete and the state scopes."""

from __future__ import annotations

import math
from typing import Any

import anyio
import pytest

from adk_sessions import Event, EventActions, SessionService
from adk_sessions.errors import InvalidArgumentError, SessionExistsError

pytestmark = pytest.mark.anyio

APP, USER = "app", "user"


async def test_create_generates_uuid_when_id_missing_or_empty(service: SessionService) -> None:
    """create_session makes a uuid4 id for None and for ""."""
    a = await service.create_session(app_name=APP, user_id=USER)
    b = await service.create_session(app_name=APP, user_id=USER, session_id="")
    assert len(a.id) == 36 and len(b.id) == 36 and a.id != b.id
    assert a.revision == 0 and a.events == [] and a.last_update_time > 0


@pytest.mark.parametrize("sid", ["plain", "with/slash", "ünï cødé 🚀", " spaced ", "a%2Fb"])
async def test_ids_are_stored_exactly(service: SessionService, sid: str) -> None:
    """Session ids (and names) come back exactly as given."""
    await service.create_session(app_name="äpp/1", user_id="üser 1", session_id=sid)
    got = await service.get_session(app_name="äpp/1", user_id="üser 1", session_id=sid)
    assert got is not None and got.id == sid and got.app_name == "äpp/1"


async def test_duplicate_id_raises_exists_naming_it(service: SessionService) -> None:
    """A second create of an id raises SessionExistsError naming the id; the first is kept."""
    await service.create_session(app_name=APP, user_id=USER, session_id="s1", state={"k": 1})
    with pytest.raises(SessionExistsError, match="s1"):
        await service.create_session(app_name=APP, user_id=USER, session_id="s1", state={"k": 2})
    got = await service.get_session(app_name=APP, user_id=USER, session_id="s1")
    assert got is not None and got.state == {"k": 1}


async def test_same_id_for_other_user_is_a_different_session(service: SessionService) -> None:
    """Ids are unique per (app, user), not globally."""
    await service.create_session(app_name=APP, user_id="u1", session_id="s")
    await service.create_session(app_name=APP, user_id="u2", session_id="s")
    await service.create_session(app_name="other", user_id="u1", session_id="s")
    assert len((await service.list_sessions(app_name=APP)).sessions) == 2


async def test_concurrent_creates_of_one_id_one_fails(service: SessionService) -> None:
    """Two racing creates of one id: exactly one SessionExistsError."""
    outcomes: list[str] = []

    async def create() -> None:
        try:
            await service.create_session(app_name=APP, user_id=USER, session_id="race")
            outcomes.append("created")
        except SessionExistsError:
            outcomes.append("exists")

    async with anyio.create_task_group() as tg:
        for _ in range(2):
            tg.start_soon(create)
    assert sorted(outcomes) == ["created", "exists"]


@pytest.mark.parametrize(
    ("field", "value"), [("app_name", ""), ("user_id", ""), ("app_name", None), ("user_id", 3)]
)
async def test_empty_names_rejected(service: SessionService, field: str, value: Any) -> None:
    """Empty or non-string app_name/user_id raise InvalidArgumentError naming the field."""
    kwargs: dict[str, Any] = {"app_name": APP, "user_id": USER, field: value}
    with pytest.raises(InvalidArgumentError, match=field):
        await service.create_session(**kwargs)
    assert (await service.list_sessions(app_name=APP)).sessions == []


class _Custom:
    pass


@pytest.mark.parametrize(
    "value",
    [
        (1, 2),
        {1, 2},
        _Custom(),
        math.nan,
        math.inf,
        -math.inf,
        "nul\x00byte",
        {"nested": [1, math.nan]},
        {"nested": {"k": "\x00"}},
        {1: "int key"},
        b"bytes",
    ],
)
async def test_non_json_state_rejected_and_nothing_written(
    service: SessionService, value: Any
) -> None:
    """Non-JSON state values raise InvalidArgumentError naming the key; nothing is stored."""
    with pytest.raises(InvalidArgumentError, match="bad_key"):
        await service.create_session(
            app_name=APP,
            user_id=USER,
            session_id="s",
            state={"app:a": 1, "bad_key": value},
        )
    assert await service.get_session(app_name=APP, user_id=USER, session_id="s") is None
    assert await service.get_app_state(app_name=APP) == {}


async def test_state_split_into_scopes_and_temp_dropped(service: SessionService) -> None:
    """create_session stores app:/user: keys in their scopes, drops temp:, merges on read."""
    s = await service.create_session(
        app_name=APP,
        user_id=USER,
        state={"k": "v", "app:a": 1, "user:u": [1, {"x": None}], "temp:t": 9},
    )
    assert s.state == {"k": "v", "app:a": 1, "user:u": [1, {"x": None}]}
    assert await service.get_app_state(app_name=APP) == {"a": 1}
    assert await service.get_user_state(app_name=APP, user_id=USER) == {"u": [1, {"x": None}]}
    got = await service.get_session(app_name=APP, user_id=USER, session_id=s.id)
    assert got == s


async def test_scopes_are_shared_and_isolated(service: SessionService) -> None:
    """App state is shared by all users, user state by one user's sessions only."""
    await service.create_session(app_name=APP, user_id="u1", state={"app:a": 1, "user:x": 1})
    s2 = await service.create_session(app_name=APP, user_id="u1", state={"own": 2})
    s3 = await service.create_session(app_name=APP, user_id="u2", state={"user:x": 3})
    assert s2.state == {"own": 2, "app:a": 1, "user:x": 1}
    assert s3.state == {"app:a": 1, "user:x": 3}
    other = await service.create_session(app_name="other", user_id="u1")
    assert other.state == {}


async def test_get_missing_or_other_users_session_is_none(service: SessionService) -> None:
    """get_session of a missing session or of another user's returns None."""
    s = await service.create_session(app_name=APP, user_id="u1")
    assert await service.get_session(app_name=APP, user_id="u2", session_id=s.id) is None
    assert await service.get_session(app_name=APP, user_id="u1", session_id="nope") is None
    assert await service.get_session(app_name="x", user_id="u1", session_id=s.id) is None


async def test_delete_removes_session_and_events_keeps_scopes(service: SessionService) -> None:
    """delete_session removes the session and its events; app/user state stay; missing: no-op."""
    s = await service.create_session(app_name=APP, user_id=USER, state={"app:a": 1, "user:u": 2})
    await service.append_event(s, Event(author="user"))
    await service.delete_session(app_name=APP, user_id=USER, session_id=s.id)
    await service.delete_session(app_name=APP, user_id=USER, session_id=s.id)
    assert await service.get_session(app_name=APP, user_id=USER, session_id=s.id) is None
    assert await service.get_app_state(app_name=APP) == {"a": 1}
    assert await service.get_user_state(app_name=APP, user_id=USER) == {"u": 2}
    # the id is free again, and the new session has no leftover events
    again = await service.create_session(app_name=APP, user_id=USER, session_id=s.id)
    got = await service.get_session(app_name=APP, user_id=USER, session_id=again.id)
    assert got is not None and got.events == [] and got.revision == 0
    assert (await service.status())["events"] == 0


async def test_unknown_scopes_read_empty(service: SessionService) -> None:
    """get_user_state/get_app_state of unknown names return {}."""
    assert await service.get_app_state(app_name="none") == {}
    assert await service.get_user_state(app_name="none", user_id="none") == {}


async def _make_sessions(service: SessionService, n: int, users: int) -> list[tuple[str, str]]:
    keys = []
    for i in range(n):
        s = await service.create_session(
            app_name=APP,
            user_id=f"u{i % users}",
            session_id=f"s{i:03d}",
            state={"i": i, "user:name": f"u{i % users}"},
        )
        keys.append((s.user_id, s.id))
    return keys


async def test_list_orders_by_update_time_then_user_and_id(service: SessionService) -> None:
    """list_sessions: oldest update first; state merged; no events; per-user filter."""
    await _make_sessions(service, 6, 2)
    first = await service.get_session(app_name=APP, user_id="u0", session_id="s000")
    assert first is not None
    await service.append_event(first, Event(author="a", timestamp=first.last_update_time + 1000))
    page = await service.list_sessions(app_name=APP)
    ids = [s.id for s in page.sessions]
    assert ids[-1] == "s000" and sorted(ids[:-1]) == ["s001", "s002", "s003", "s004", "s005"]
    times = [s.last_update_time for s in page.sessions]
    assert times == sorted(times)
    assert all(s.events == [] for s in page.sessions)
    by_id = {s.id: s for s in page.sessions}
    assert by_id["s003"].state == {"i": 3, "user:name": "u1"}
    assert by_id["s000"].revision == 1
    mine = await service.list_sessions(app_name=APP, user_id="u1")
    assert [s.id for s in mine.sessions] == ["s001", "s003", "s005"]
    assert page.next_page_token is None


async def test_list_ties_broken_by_user_then_id(service: SessionService) -> None:
    """Sessions with equal update times are listed by (user_id, id)."""
    future = 4_000_000_000.0  # later than every creation time, so it becomes the update time
    for user, sid in [("b", "1"), ("a", "2"), ("a", "1"), ("b", "0")]:
        s = await service.create_session(app_name=APP, user_id=user, session_id=sid)
        await service.append_event(s, Event(author="x", timestamp=future))
    page = await service.list_sessions(app_name=APP)
    expected = [("a", "1"), ("a", "2"), ("b", "0"), ("b", "1")]
    assert [(s.user_id, s.id) for s in page.sessions] == expected


@pytest.mark.parametrize("user_id", [None, "u1"])
async def test_list_pagination_walks_every_session_once(
    service: SessionService, user_id: str | None
) -> None:
    """Keyset pages of size 3 return every session exactly once, in order, then no token."""
    await _make_sessions(service, 11, 2)
    full = await service.list_sessions(app_name=APP, user_id=user_id)
    seen: list[str] = []
    token = None
    pages = 0
    while True:
        page = await service.list_sessions(
            app_name=APP, user_id=user_id, page_size=3, page_token=token
        )
        pages += 1
        assert len(page.sessions) <= 3
        seen += [s.id for s in page.sessions]
        token = page.next_page_token
        if token is None:
            break
    assert seen == [s.id for s in full.sessions]
    assert pages == math.ceil(len(seen) / 3)


async def test_list_page_size_zero_and_empty_app(service: SessionService) -> None:
    """page_size=0 gives an empty page; an unknown app lists nothing."""
    await _make_sessions(service, 2, 1)
    assert (await service.list_sessions(app_name=APP, page_size=0)).sessions == []
    empty = await service.list_sessions(app_name="nobody")
    assert empty.sessions == [] and empty.next_page_token is None


async def test_list_largest_page_size(service: SessionService) -> None:
    """The largest page size accepted (2**63 - 1) lists everything in one page."""
    await _make_sessions(service, 4, 2)
    page = await service.list_sessions(app_name=APP, page_size=2**63 - 1)
    assert len(page.sessions) == 4 and page.next_page_token is None


@pytest.mark.parametrize("token", ["garbage", "e30", "WzEsImEiXQ", "!!!", "W10"])
async def test_foreign_page_token_rejected(service: SessionService, token: str) -> None:
    """A page_token not issued by list_sessions raises InvalidArgumentError."""
    with pytest.raises(InvalidArgumentError, match="page_token"):
        await service.list_sessions(app_name=APP, page_token=token)


async def test_token_of_another_query_rejected(service: SessionService) -> None:
    """A token is bound to its app and user filter."""
    await _make_sessions(service, 3, 1)
    page = await service.list_sessions(app_name=APP, page_size=1)
    assert page.next_page_token is not None
    with pytest.raises(InvalidArgumentError, match="another query"):
        await service.list_sessions(app_name=APP, user_id="u0", page_token=page.next_page_token)


async def test_negative_counts_rejected(service: SessionService) -> None:
    """Negative page_size or num_recent_events raise InvalidArgumentError."""
    with pytest.raises(InvalidArgumentError, match="page_size"):
        await service.list_sessions(app_name=APP, page_size=-1)
    s = await service.create_session(app_name=APP, user_id=USER)
    with pytest.raises(InvalidArgumentError, match="num_recent_events"):
        await service.get_session(app_name=APP, user_id=USER, session_id=s.id, num_recent_events=-1)


async def test_create_with_events_is_one_transaction(service: SessionService) -> None:
    """create_session(events=...) stores session and events together, or neither."""
    good = [Event(author="a", actions=EventActions(state_delta={"n": i})) for i in range(3)]
    s = await service.create_session(app_name=APP, user_id=USER, session_id="ok", events=good)
    assert s.revision == 3 and s.state == {"n": 2}
    assert await service.get_session(app_name=APP, user_id=USER, session_id="ok") == s
    dup = [Event(author="a", id="same"), Event(author="a", id="same")]
    with pytest.raises(InvalidArgumentError, match="same"):
        await service.create_session(app_name=APP, user_id=USER, session_id="bad", events=dup)
    assert await service.get_session(app_name=APP, user_id=USER, session_id="bad") is None


async def test_overlong_ids_rejected_alike(service: SessionService) -> None:
    """Ids over 512 UTF-8 bytes raise InvalidArgumentError on every backend; 512 is fine."""
    ok = "é" * 256  # 512 bytes
    await service.create_session(app_name=APP, user_id=USER, session_id=ok)
    with pytest.raises(InvalidArgumentError, match="session_id"):
        await service.create_session(app_name=APP, user_id=USER, session_id=ok + "x")
    with pytest.raises(InvalidArgumentError, match="user_id"):
        await service.get_session(app_name=APP, user_id="u" * 513, session_id="s")
    assert [s.id for s in (await service.list_sessions(app_name=APP)).sessions] == [ok]


async def test_listed_sessions_do_not_share_nested_state(service: SessionService) -> None:
    """Sessions of one list page hold their own copies of nested app/user values."""
    await service.create_session(app_name=APP, user_id=USER, state={"app:cfg": {"n": [1]}})
    await service.create_session(app_name=APP, user_id=USER, state={"user:tags": ["a"]})
    first, second = (await service.list_sessions(app_name=APP, user_id=USER)).sessions
    first.state["app:cfg"]["n"].append(2)
    first.state["user:tags"].append("b")
    assert second.state == {"app:cfg": {"n": [1]}, "user:tags": ["a"]}


async def test_create_with_given_update_time(service: SessionService) -> None:
    """create_session(last_update_time=t) records t; bad values are rejected."""
    s = await service.create_session(app_name=APP, user_id=USER, last_update_time=1234.5)
    assert s.last_update_time == 1234.5
    got = await service.get_session(app_name=APP, user_id=USER, session_id=s.id)
    assert got == s
    bad_values: list[Any] = [math.nan, math.inf, "1", True]
    for bad in bad_values:
        with pytest.raises(InvalidArgumentError, match="last_update_time"):
            await service.create_session(app_name=APP, user_id=USER, last_update_time=bad)
    assert len((await service.list_sessions(app_name=APP)).sessions) == 1
