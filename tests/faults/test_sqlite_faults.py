"""SQLite faults: a full disk, and a read-only URL that must never write.

The disk is filled with ``PRAGMA max_page_count`` on the service's writer connection (reached
through the dialect's write interface, as no public API should offer it). The other URL cases
(unknown or repeated parameters, a missing directory, a missing file with ``mode=ro``) are pinned
by tests/backends/test_connect.py.
"""

from __future__ import annotations

import copy
import hashlib
import sqlite3
from collections.abc import Generator, Mapping
from pathlib import Path
from typing import Any

import pytest

import adk_sessions
from adk_sessions import Event, EventActions, SessionService
from adk_sessions._dialects.base import statement
from adk_sessions._queries import Query
from adk_sessions.errors import AdkSessionsError, StorageError

from ._checks import check_invariants, integrity_check, read_rows

pytestmark = pytest.mark.anyio

APP, USER = "disk-app", "disk-user"
BIG = "x" * 300_000  # far more than the pages a full database has left


async def _set_max_pages(service: SessionService, pages: int) -> None:
    """Run ``PRAGMA max_page_count`` on the service's writer (below the size: no room left).

    Through the dialect's write interface (a transaction body yielding its statements), the
    only way to reach the writer connection; the setting belongs to the connection.
    """

    def body() -> Generator[tuple[Query, Mapping[str, Any]], Any, None]:
        yield statement(f"PRAGMA max_page_count = {pages}"), {}

    await service._dialect.write(body, lambda _: None)


async def _snapshot(service: SessionService, session_id: str) -> tuple[Any, ...]:
    return (
        await service.status(),
        await service.get_session(app_name=APP, user_id=USER, session_id=session_id),
        await service.get_app_state(app_name=APP),
        await service.get_user_state(app_name=APP, user_id=USER),
    )


async def test_disk_full_is_typed_leaves_caller_unchanged_and_recovers(tmp_path: Path) -> None:
    """Disk full: StorageError, session and storage unchanged, writes resume when space returns."""
    path = tmp_path / "full.db"
    url = f"sqlite:///{path}"
    async with adk_sessions.connect(url) as service:
        session = await service.create_session(
            app_name=APP, user_id=USER, session_id="s", state={"app:a": 1, "user:u": 1}
        )
        await service.append_event(
            session, Event(id="e1", author="a", actions=EventActions(state_delta={"n": 1}))
        )
        await _set_max_pages(service, 1)  # clamped to the current size: not one page more
        before = await _snapshot(service, "s")
        in_hand = copy.deepcopy(session)
        big = Event(
            id="e2",
            author="a",
            content={"parts": [{"text": BIG}]},
            actions=EventActions(state_delta={"n": 2, "app:a": BIG, "user:u": BIG}),
        )
        failures: list[type[BaseException]] = []
        for attempt in range(3):  # the same failure every time, nothing accumulates
            with pytest.raises(StorageError) as info:
                await service.append_event(session, big)
            failures.append(type(info.value))
            assert info.value.__cause__ is not None
            assert session == in_hand, attempt
            assert await _snapshot(service, "s") == before, attempt
        with pytest.raises(StorageError):
            await service.create_session(
                app_name=APP, user_id=USER, session_id="new", state={"big": BIG}
            )
        with pytest.raises(StorageError):
            await service.append_event(
                session, Event(id="e2", author="a", actions=EventActions(state_delta={"b": BIG}))
            )
        assert await _snapshot(service, "s") == before
        assert await service.get_session(app_name=APP, user_id=USER, session_id="new") is None
        stored_before = await read_rows(url, APP)

        await _set_max_pages(service, 2**32 - 2)  # space returns
        await service.append_event(session, big)
        assert session.revision == 2
        created = await service.create_session(app_name=APP, user_id=USER, session_id="new")
        await service.append_event(
            created, Event(author="a", actions=EventActions(state_delta={"big": BIG}))
        )
        reloaded = await service.get_session(app_name=APP, user_id=USER, session_id="s")
        assert reloaded == session
    print(f"disk-full figures (sqlite): errors {[t.__name__ for t in failures]}")
    assert stored_before.event_count == 1
    assert integrity_check(str(path)) == "ok"
    stored = await check_invariants(url, APP)
    assert stored.event_count == 3


async def _populated(path: Path) -> str:
    url = f"sqlite:///{path}"
    async with adk_sessions.connect(url) as service:
        session = await service.create_session(
            app_name="ro", user_id="u", session_id="s", state={"app:a": 1}
        )
        await service.append_event(session, Event(id="e1", author="a"))
    return url


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


async def test_read_only_url_reads_and_refuses_writes(tmp_path: Path) -> None:
    """?mode=ro: reads work, every write raises StorageError, the file is not modified."""
    path = tmp_path / "ro.db"
    await _populated(path)
    digest = _digest(path)
    async with adk_sessions.connect(f"sqlite:///{path}?mode=ro") as service:
        session = await service.get_session(app_name="ro", user_id="u", session_id="s")
        assert session is not None and [e.id for e in session.events] == ["e1"]
        assert session.state == {"app:a": 1}
        assert len((await service.list_sessions(app_name="ro")).sessions) == 1
        in_hand = copy.deepcopy(session)
        with pytest.raises(StorageError):
            await service.append_event(session, Event(id="e2", author="a"))
        assert session == in_hand
        with pytest.raises(StorageError):
            await service.create_session(app_name="ro", user_id="u", session_id="t")
        with pytest.raises(StorageError):
            await service.delete_session(app_name="ro", user_id="u", session_id="s")
        assert (await service.status())["events"] == 1
    assert _digest(path) == digest


async def test_read_only_url_creates_no_table(tmp_path: Path) -> None:
    """?mode=ro on an existing database without the schema: no table is created."""
    path = tmp_path / "empty.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE other (x)")
    conn.close()
    digest = _digest(path)
    try:
        service = await adk_sessions.connect(f"sqlite:///{path}?mode=ro")
    except AdkSessionsError:
        pass
    else:
        await service.close()
    conn = sqlite3.connect(path)
    tables = [row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
    conn.close()
    assert tables == ["other"]
    assert _digest(path) == digest
