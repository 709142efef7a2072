"""Reads of the last N events cost O(N) rows however long the history is.

Asserted through counts, never timers: PostgreSQL's ``EXPLAIN ANALYZE`` row counts, SQLite's
virtual-machine steps and query plans. Each backend gets one database per module holding a session
of 10,000 events, one of 100 events and 1,000 small sessions of 100 users.
"""

from __future__ import annotations

import asyncio
import json
import math
import sqlite3
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import adk_sessions
from adk_sessions import Event
from adk_sessions._queries import Query, load_queries

from .._pg import pg_connection

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

APP, USER = "app", "u"
BIG, SMALL = 10_000, 100
USERS, SESSIONS_PER_USER = 100, 10
# Rows a plan node may read beyond N (the row that stops a backward scan, and such).
SLACK = 2


def _events(count: int) -> list[Event]:
    return [
        Event(id=f"e{i:05d}", invocation_id="inv", author="user", timestamp=1000.0 + i)
        for i in range(1, count + 1)
    ]


async def _populate(url: str, **options: Any) -> None:
    async with adk_sessions.connect(url, **options) as service:
        for session_id, count in (("big", BIG), ("small", SMALL)):
            session = await service.create_session(
                app_name=APP, user_id=USER, session_id=session_id, events=_events(count)
            )
            assert session.revision == count
        for user in range(USERS):
            await asyncio.gather(
                *(
                    service.create_session(
                        app_name=APP, user_id=f"user{user:03d}", session_id=f"s{k}"
                    )
                    for k in range(SESSIONS_PER_USER)
                )
            )


# list_user_sessions parameters for the first page of one of the 100 users.
_FIRST_USER_PAGE: dict[str, Any] = {
    "app_name": APP,
    "user_id": "user042",
    "after_time": -math.inf,
    "after_id": "",
    "limit": SESSIONS_PER_USER + 1,
}


@pytest.fixture(scope="module")
def pg_history_url(create_pg_database: Callable[[str], Awaitable[str]]) -> str:
    """A PostgreSQL database with the long history, analyzed."""

    async def build() -> str:
        url = await create_pg_database("history")
        await _populate(url, server_settings={"synchronous_commit": "off"})
        async with pg_connection(url) as conn:
            await conn.execute("ANALYZE")
        return url

    return asyncio.run(build())


@pytest.fixture(scope="module")
def sqlite_history_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An SQLite file with the long history."""
    path = tmp_path_factory.mktemp("history") / "sessions.db"
    asyncio.run(_populate(f"sqlite:///{path}", synchronous="OFF"))
    return path


@pytest.fixture(params=["sqlite", "postgres"])
def history_url(request: pytest.FixtureRequest) -> str:
    """The URL of the long-history database of each backend."""
    if request.param == "sqlite":
        return f"sqlite:///{request.getfixturevalue('sqlite_history_path')}"
    url: str = request.getfixturevalue("pg_history_url")
    return url


# --- through the public API ----------------------------------------------------------------------


async def test_recent_events_are_the_last_n_in_order(history_url: str) -> None:
    """get_session(num_recent_events=20) on 10,000 events gives exactly the last 20, in order."""
    async with adk_sessions.connect(history_url) as service:
        before = service.round_trips
        session = await service.get_session(
            app_name=APP, user_id=USER, session_id="big", num_recent_events=20
        )
        assert service.round_trips - before == 2  # the session row, then one events query
    assert session is not None
    assert session.revision == BIG
    assert [e.id for e in session.events] == [f"e{i:05d}" for i in range(BIG - 19, BIG + 1)]
    assert [e.timestamp for e in session.events] == [1000.0 + i for i in range(BIG - 19, BIG + 1)]


async def test_recent_events_after_a_time(history_url: str) -> None:
    """With after=t and N the read gives the last N of the events at or after t, in order."""
    async with adk_sessions.connect(history_url) as service:
        session = await service.get_session(
            app_name=APP,
            user_id=USER,
            session_id="big",
            num_recent_events=5,
            after=1000.0 + BIG - 2,
        )
    assert session is not None
    assert [e.id for e in session.events] == [f"e{i:05d}" for i in range(BIG - 2, BIG + 1)]


async def test_events_after_a_revision_are_the_newer_ones_in_order(history_url: str) -> None:
    """The internal read of the events after revision r gives seq r+1.. as stored, in 2 trips."""
    async with adk_sessions.connect(history_url) as service:
        before = service.round_trips
        stored = await service._get_stored_session(
            app_name=APP, user_id=USER, session_id="big", after_revision=BIG - 3
        )
        assert service.round_trips - before == 2
        unchanged = await service._get_stored_session(
            app_name=APP, user_id=USER, session_id="big", after_revision=BIG
        )
    assert stored is not None and unchanged is not None
    assert stored.revision == BIG
    assert [json.loads(text)["id"] for text in stored.events] == [
        f"e{i:05d}" for i in range(BIG - 2, BIG + 1)
    ]
    assert unchanged.events == []


# --- PostgreSQL: EXPLAIN ANALYZE row counts -----------------------------------------------------


def _nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", []):
        yield from _nodes(child)


def _rows_read(node: dict[str, Any]) -> float:
    """Rows a node produced or threw away, over all its loops."""
    per_loop = (
        node["Actual Rows"]
        + node.get("Rows Removed by Filter", 0)
        + node.get("Rows Removed by Index Recheck", 0)
        + node.get("Rows Removed by Join Filter", 0)
    )
    return float(per_loop * node["Actual Loops"])


def _literal(value: object) -> str:
    """A SQL literal for a test-controlled value (for EXECUTE of a prepared statement)."""
    if value is None:
        return "NULL"
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    if isinstance(value, float) and math.isinf(value):
        return "'-Infinity'" if value < 0 else "'Infinity'"
    return repr(value)


async def _explain(
    url: str, query: Query, params: dict[str, Any], *, generic: bool
) -> dict[str, Any]:
    """EXPLAIN ANALYZE the loaded query with real parameters; the custom or the generic plan.

    asyncpg prepares every statement, and after five runs PostgreSQL may switch a prepared
    statement to a generic plan (parameters unknown at planning time), so both are checked.
    """
    args = [params[name] for name in query.params]
    async with pg_connection(url) as conn:
        if not generic:
            text = await conn.fetchval(
                "EXPLAIN (ANALYZE, FORMAT JSON) " + query.statements[0], *args
            )
        else:
            await conn.execute(f"PREPARE probe AS {query.statements[0]}")
            await conn.execute("SET plan_cache_mode = force_generic_plan")
            text = await conn.fetchval(
                "EXPLAIN (ANALYZE, FORMAT JSON) EXECUTE probe("
                + ", ".join(_literal(a) for a in args)
                + ")"
            )
    plan: dict[str, Any] = json.loads(text)[0]["Plan"]
    return plan


@pytest.mark.parametrize("generic", [False, True], ids=["custom_plan", "generic_plan"])
@pytest.mark.parametrize(
    ("limit", "after"), [(20, None), (1, None), (100, None), (20, 1000.0 + BIG / 2)]
)
async def test_postgres_get_events_reads_o_n_rows(
    pg_history_url: str, limit: int, after: float | None, generic: bool
) -> None:
    """PostgreSQL's get_events for the last N of 10,000 events reads <= N rows per node, no Sort."""
    query = load_queries("postgres", positional=True).get_events
    params = {
        "app_name": APP,
        "user_id": USER,
        "session_id": "big",
        "min_seq": 1,
        "max_seq": BIG,
        "after": after,
        "limit": limit,
    }
    plan = await _explain(pg_history_url, query, params, generic=generic)
    nodes = list(_nodes(plan))
    assert plan["Actual Rows"] == limit
    assert [n["Node Type"] for n in nodes if "Sort" in n["Node Type"]] == []
    read = [(n["Node Type"], _rows_read(n)) for n in nodes]
    assert all(rows <= limit + SLACK for _, rows in read), read
    scans = [n for n in nodes if n.get("Relation Name") == "adk_events"]
    assert [n["Node Type"] for n in scans] in (["Index Scan"], ["Index Only Scan"])
    assert scans[0]["Index Name"] == "adk_events_pkey"


@pytest.mark.parametrize("generic", [False, True], ids=["custom_plan", "generic_plan"])
@pytest.mark.parametrize("newer", [1, 5, 20])
async def test_postgres_events_after_a_revision_read_o_new_rows(
    pg_history_url: str, newer: int, generic: bool
) -> None:
    """PostgreSQL's get_events for the events after revision r reads O(revision - r) rows."""
    query = load_queries("postgres", positional=True).get_events
    params = {
        "app_name": APP,
        "user_id": USER,
        "session_id": "big",
        "min_seq": BIG - newer + 1,
        "max_seq": BIG,
        "after": None,
        "limit": None,
    }
    plan = await _explain(pg_history_url, query, params, generic=generic)
    nodes = list(_nodes(plan))
    assert plan["Actual Rows"] == newer
    read = [(n["Node Type"], _rows_read(n)) for n in nodes]
    assert all(rows <= newer + SLACK for _, rows in read), read
    scans = [n for n in nodes if n.get("Relation Name") == "adk_events"]
    assert [n["Index Name"] for n in scans] == ["adk_events_pkey"]


@pytest.mark.parametrize("generic", [False, True], ids=["custom_plan", "generic_plan"])
async def test_postgres_list_user_sessions_uses_user_index(
    pg_history_url: str, generic: bool
) -> None:
    """PostgreSQL's list_user_sessions (100 users) scans adk_sessions_by_user_update, no Sort."""
    query = load_queries("postgres", positional=True).list_user_sessions
    params = _FIRST_USER_PAGE
    plan = await _explain(pg_history_url, query, params, generic=generic)
    nodes = list(_nodes(plan))
    assert plan["Actual Rows"] == SESSIONS_PER_USER
    assert [n["Node Type"] for n in nodes if "Sort" in n["Node Type"]] == []
    scans = [n for n in nodes if n.get("Relation Name") == "adk_sessions"]
    assert [n.get("Index Name") for n in scans] == ["adk_sessions_by_user_update"]
    assert all(_rows_read(n) <= SESSIONS_PER_USER + SLACK for n in nodes)


# --- SQLite: virtual-machine steps and query plans ----------------------------------------------


def _steps(conn: sqlite3.Connection, query: Query, params: dict[str, Any]) -> tuple[int, int]:
    """Run the query; return (rows, VM steps)."""
    steps = 0

    def tick() -> int:
        nonlocal steps
        steps += 1
        return 0

    conn.set_progress_handler(tick, 1)
    try:
        rows = conn.execute(query.statements[0], params).fetchall()
    finally:
        conn.set_progress_handler(None, 1)
    return len(rows), steps


@pytest.fixture
def sqlite_conn(sqlite_history_path: Path) -> Iterator[sqlite3.Connection]:
    """A plain sqlite3 connection to the long-history file, schema already loaded."""
    conn = sqlite3.connect(sqlite_history_path)
    try:
        conn.execute("SELECT count(*) FROM sqlite_master").fetchall()  # parse the schema now
        yield conn
    finally:
        conn.close()


def _get_events_params(session_id: str, revision: int, limit: int | None) -> dict[str, Any]:
    return {
        "app_name": APP,
        "user_id": USER,
        "session_id": session_id,
        "min_seq": 1,
        "max_seq": revision,
        "after": None,
        "limit": limit,
    }


def test_sqlite_get_events_steps_independent_of_history(sqlite_conn: sqlite3.Connection) -> None:
    """SQLite's get_events for the last 20 of 10,000 events costs about as much as of 100."""
    query = load_queries("sqlite", positional=False).get_events
    big_rows, big = _steps(sqlite_conn, query, _get_events_params("big", BIG, 20))
    small_rows, small = _steps(sqlite_conn, query, _get_events_params("small", SMALL, 20))
    assert big_rows == small_rows == 20
    assert big < 2 * small, (big, small)


def test_sqlite_get_events_steps_grow_with_n(sqlite_conn: sqlite3.Connection) -> None:
    """SQLite's get_events cost grows with N, not with the history (the count is meaningful)."""
    query = load_queries("sqlite", positional=False).get_events
    _, twenty = _steps(sqlite_conn, query, _get_events_params("big", BIG, 20))
    _, forty = _steps(sqlite_conn, query, _get_events_params("big", BIG, 40))
    rows, everything = _steps(sqlite_conn, query, _get_events_params("big", BIG, None))
    assert rows == BIG
    assert twenty < forty < 3 * twenty, (twenty, forty)
    assert everything > 100 * twenty, (twenty, everything)


def test_sqlite_events_after_a_revision_cost_o_new_rows(sqlite_conn: sqlite3.Connection) -> None:
    """SQLite's get_events after revision r of 10,000 costs about what the last-N read does."""
    query = load_queries("sqlite", positional=False).get_events
    newer = _get_events_params("big", BIG, None)
    newer["min_seq"] = BIG - 19
    rows, after_revision = _steps(sqlite_conn, query, newer)
    _, last_twenty = _steps(sqlite_conn, query, _get_events_params("big", BIG, 20))
    assert rows == 20
    assert after_revision < 2 * last_twenty, (after_revision, last_twenty)


def _plan(conn: sqlite3.Connection, query: Query, params: dict[str, Any]) -> list[str]:
    return [row[3] for row in conn.execute("EXPLAIN QUERY PLAN " + query.statements[0], params)]


def test_sqlite_get_events_plan_searches_primary_key(sqlite_conn: sqlite3.Connection) -> None:
    """SQLite's get_events plan is a primary-key SEARCH with no temporary sort B-tree."""
    query = load_queries("sqlite", positional=False).get_events
    plan = _plan(sqlite_conn, query, _get_events_params("big", BIG, 20))
    assert not [line for line in plan if "TEMP B-TREE" in line]
    assert [line for line in plan if line.startswith("SEARCH")] == [
        line for line in plan if "adk_events" in line
    ]
    assert len(plan) == 1
    assert plan[0].startswith("SEARCH adk_events USING PRIMARY KEY (")
    assert "session_id=?" in plan[0]


def test_sqlite_list_user_sessions_uses_user_index(sqlite_conn: sqlite3.Connection) -> None:
    """SQLite's list_user_sessions plan searches adk_sessions_by_user_update, no temp sort."""
    query = load_queries("sqlite", positional=False).list_user_sessions
    params = _FIRST_USER_PAGE
    plan = _plan(sqlite_conn, query, params)
    assert not [line for line in plan if "TEMP B-TREE" in line]
    assert len(plan) == 1
    assert plan[0].startswith("SEARCH s USING INDEX adk_sessions_by_user_update (")
    rows, _ = _steps(sqlite_conn, query, params)
    assert rows == SESSIONS_PER_USER
