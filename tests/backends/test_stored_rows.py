"""A stored row that cannot be read back is a StorageError naming the row, on every read path.

Rows are damaged with the driver itself (as a hand edit or a foreign writer would), then read
through the public API.
"""

from __future__ import annotations

import sqlite3

import pytest

import adk_sessions
from adk_sessions import Event
from adk_sessions.errors import StorageError

from .._pg import pg_connection

pytestmark = pytest.mark.anyio


async def overwrite(db_url: str, table: str, column: str, value: str, **where: object) -> None:
    """Set one JSON column of the rows matching ``where``, straight through the driver."""
    keys = list(where)
    if db_url.startswith("sqlite"):
        conn = sqlite3.connect(db_url.removeprefix("sqlite:///"))
        try:
            condition = " AND ".join(f"{key} = ?" for key in keys)
            conn.execute(
                f"UPDATE {table} SET {column} = ? WHERE {condition}",
                [value, *where.values()],
            )
            conn.commit()
        finally:
            conn.close()
        return
    async with pg_connection(db_url) as pg:
        kind = "json" if table == "adk_events" else "jsonb"
        condition = " AND ".join(f"{key} = ${n}" for n, key in enumerate(keys, start=2))
        await pg.execute(
            f"UPDATE {table} SET {column} = $1::{kind} WHERE {condition}",
            value,
            *where.values(),
        )


async def _session_with_events(service: adk_sessions.SessionService) -> None:
    session = await service.create_session(app_name="a", user_id="u", session_id="s")
    for i in range(3):
        await service.append_event(session, Event(id=f"e{i}", author="x"))


@pytest.mark.parametrize(
    "damage", ['{"id": "e1", "author": "x", "timestamp": "noon"}', "[1, 2]", '"text"']
)
async def test_unreadable_event_names_its_position(db_url: str, damage: str) -> None:
    """get_session of a session whose second event is not an event raises naming position 2."""
    async with adk_sessions.connect(db_url) as service:
        await _session_with_events(service)
        await overwrite(db_url, "adk_events", "event", damage, session_id="s", seq=2)
        with pytest.raises(StorageError, match=r"'s'.* position 2 "):
            await service.get_session(app_name="a", user_id="u", session_id="s")
        recent = await service.get_session(
            app_name="a", user_id="u", session_id="s", num_recent_events=1
        )
        assert recent is not None and [e.id for e in recent.events] == ["e2"]


async def test_unreadable_state_is_a_storage_error(db_url: str) -> None:
    """A session state that is not a JSON object fails get_session and list_sessions alike."""
    async with adk_sessions.connect(db_url) as service:
        await _session_with_events(service)
        await overwrite(db_url, "adk_sessions", "state", "[1]", id="s")
        with pytest.raises(StorageError, match=r"'s'.*not a JSON object"):
            await service.get_session(app_name="a", user_id="u", session_id="s")
        with pytest.raises(StorageError, match=r"'s'.*not a JSON object"):
            await service.list_sessions(app_name="a")
