"""Citus-specific checks: what the migration distributes, the opt-out, and that every statement of a
single-session operation is router-planned (one task on one worker, no subplan), shown by EXPLAIN.

The statements checked are the ones the service really sends: asyncpg's query logger records them
on the service's only pooled connection while the operation runs through the public API.
"""

from __future__ import annotations

import json
import math
import urllib.parse
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import asyncpg
import pytest

import adk_sessions
from adk_sessions import Event, EventActions, SessionService
from adk_sessions._pgcluster import citus_nodes

from .._pg import pg_connection

pytestmark = pytest.mark.anyio

TABLES = ("adk_app_states", "adk_events", "adk_sessions", "adk_user_states")
CONTROL = ("BEGIN", "COMMIT", "ROLLBACK")


@pytest.fixture
async def citus_url(fresh_citus_database: Callable[[], Awaitable[str]]) -> str:
    """The URL of a new, empty database on the test Citus cluster."""
    return await fresh_citus_database()


async def _partitions(url: str) -> dict[str, tuple[str, str | None, int]]:
    """(partition method, distribution column, colocation id) per table, read with the driver."""
    async with pg_connection(url) as conn:
        rows = await conn.fetch(
            "SELECT logicalrelid::regclass::text AS name, partmethod::text AS method, "
            "CASE WHEN partkey IS NOT NULL "
            "THEN column_to_column_name(logicalrelid, partkey) END AS col, colocationid "
            "FROM pg_dist_partition"
        )
    return {r["name"]: (r["method"], r["col"], r["colocationid"]) for r in rows}


async def test_migration_distributes_by_user_and_app(citus_url: str) -> None:
    """On a Citus database the migration hash-distributes sessions, events and user state by
    user_id in one co-location group and app state by app_name; status() says so."""
    async with adk_sessions.connect(citus_url) as service:
        status = await service.status()
    parts = await _partitions(citus_url)
    assert set(parts) == set(TABLES)
    colocation = parts["adk_sessions"][2]
    for table in ("adk_sessions", "adk_events", "adk_user_states"):
        assert parts[table] == ("h", "user_id", colocation)
    assert parts["adk_app_states"][:2] == ("h", "app_name")
    assert status["distributed"] is True
    assert status["distribution"]["citus"]
    tables = status["distribution"]["tables"]
    assert {name: (t["kind"], t["column"]) for name, t in tables.items()} == {
        "adk_app_states": ("distributed", "app_name"),
        "adk_events": ("distributed", "user_id"),
        "adk_sessions": ("distributed", "user_id"),
        "adk_user_states": ("distributed", "user_id"),
    }
    assert len({tables[t]["colocation_id"] for t in TABLES if t != "adk_app_states"}) == 1
    assert all(t["shards"] > 1 for t in tables.values())


@pytest.mark.parametrize("how", ["url", "option"])
async def test_distribute_false_keeps_tables_local(citus_url: str, how: str) -> None:
    """?distribute=false (or distribute=False) migrates a Citus database with plain local tables,
    status() says so, and the service works on them."""
    url, options = (citus_url + "?distribute=false", {}) if how == "url" else (citus_url, {})
    if how == "option":
        options = {"distribute": False}
    async with adk_sessions.connect(url, **options) as service:
        status = await service.status()
        s = await service.create_session(app_name="a", user_id="u", state={"app:x": 1})
        await service.append_event(
            s, Event(author="a", actions=EventActions(state_delta={"user:y": 2, "k": 3}))
        )
        got = await service.get_session(app_name="a", user_id="u", session_id=s.id)
    assert got == s
    assert got.state == {"app:x": 1, "user:y": 2, "k": 3}
    assert await _partitions(citus_url) == {}
    assert status["distributed"] is False
    assert status["distribution"]["tables"] == {}
    assert status["distribution"]["citus"]


async def test_distribution_is_kept_by_later_connects(citus_url: str) -> None:
    """A connect with distribute=false after the tables were distributed changes nothing (the
    choice is made once, by the migration) and still uses the distributed tables."""
    async with adk_sessions.connect(citus_url) as service:
        s = await service.create_session(app_name="a", user_id="u")
    before = await _partitions(citus_url)
    async with adk_sessions.connect(citus_url + "?distribute=false") as service:
        assert (await service.status())["distributed"] is True
        await service.append_event(s, Event(author="a"))
        assert (await service.get_session(app_name="a", user_id="u", session_id=s.id)) == s
    assert await _partitions(citus_url) == before


async def test_distributes_in_a_schema_of_its_own(citus_url: str) -> None:
    """With schema=NAME (an awkward name) the migration distributes the tables of that schema,
    and every operation works on them."""
    schema = 'odd "schema"; name'
    url = citus_url + "?" + urllib.parse.urlencode({"schema": schema})
    async with adk_sessions.connect(url) as service:
        status = await service.status()
        s = await service.create_session(app_name="a", user_id="u", state={"app:x": 1})
        await service.append_event(
            s, Event(author="a", actions=EventActions(state_delta={"user:y": 2, "app:x": 3}))
        )
        got = await service.get_session(app_name="a", user_id="u", session_id=s.id)
        listed = await service.list_sessions(app_name="a")
    assert got == s and got.state == {"app:x": 3, "user:y": 2}
    assert [x.id for x in listed.sessions] == [s.id]
    assert status["distributed"] is True
    qualified = '"odd ""schema""; name".'
    parts = await _partitions(citus_url)
    assert {name: part[:2] for name, part in parts.items()} == {
        qualified + "adk_app_states": ("h", "app_name"),
        qualified + "adk_events": ("h", "user_id"),
        qualified + "adk_sessions": ("h", "user_id"),
        qualified + "adk_user_states": ("h", "user_id"),
    }


# --- router planning, by EXPLAIN of the statements the service sends ---------------------------


class _Recorder:
    """The statements (text and arguments) the service's single pooled connection sends."""

    def __init__(self) -> None:
        self.statements: list[tuple[str, tuple[Any, ...]]] = []

    def __call__(self, record: Any) -> None:
        self.statements.append((record.query, tuple(record.args or ())))

    def take(self) -> list[tuple[str, tuple[Any, ...]]]:
        taken = [(q, a) for q, a in self.statements if q.strip().upper() not in CONTROL]
        self.statements.clear()
        return taken


@pytest.fixture
async def recorded(citus_url: str) -> AsyncIterator[tuple[SessionService, _Recorder]]:
    """A service on one pooled connection whose every statement is recorded."""
    recorder = _Recorder()
    async with adk_sessions.connect(citus_url, min_size=1, max_size=1) as service:
        # The pool's one connection keeps its query logger across releases (asyncpg resets
        # listeners, not query loggers, on release).
        pool = await service._dialect._pool()  # type: ignore[attr-defined]
        async with pool.acquire() as conn:
            conn.add_query_logger(recorder)
        yield service, recorder


def _literal(value: object) -> str:
    """A SQL literal for a recorded argument (for EXECUTE of a prepared statement)."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and math.isinf(value):
        return "'-Infinity'" if value < 0 else "'Infinity'"
    if isinstance(value, (int, float)):
        return repr(value)
    return "'" + str(value).replace("'", "''") + "'"


def _walk(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from _walk(value)
    elif isinstance(node, list):
        for item in node:
            yield from _walk(item)


async def _route(
    conn: asyncpg.Connection, query: str, args: tuple[Any, ...], *, cached: bool
) -> tuple[int, list[str], bool]:
    """EXPLAIN a statement: (task count, the nodes of its tasks, whether it has subplans).

    ``cached``: the plan a prepared statement runs once PostgreSQL's plan cache has decided
    between a generic and a custom plan (after five custom plans; asyncpg prepares every
    statement). Citus keeps single-table, single-shard statements generic and prunes their shard
    at execution; for other statements it makes the generic plan look prohibitively expensive,
    so the cache keeps planning them per execution with the actual parameters.
    """
    if not cached:
        text = await conn.fetchval("EXPLAIN (FORMAT JSON) " + query, *args)
    else:
        await conn.execute("DEALLOCATE ALL")
        await conn.execute(f"PREPARE probe AS {query}")
        explain = (
            "EXPLAIN (FORMAT JSON) EXECUTE probe(" + ", ".join(_literal(a) for a in args) + ")"
        )
        for _ in range(6):  # EXPLAIN EXECUTE goes through the plan cache like EXECUTE
            await conn.fetchval(explain)
        text = await conn.fetchval(explain)
    plan = json.loads(text)[0]["Plan"]
    distributed = [n["Distributed Query"] for n in _walk(plan) if "Distributed Query" in n]
    assert len(distributed) >= 1, plan
    top = distributed[0]
    tasks = top["Job"].get("Tasks", [])
    nodes = sorted({t["Node"] for t in tasks})
    return int(top["Job"]["Task Count"]), nodes, bool(top.get("Subplans")) or len(distributed) > 1


async def _check_router(
    url: str, statements: list[tuple[str, tuple[Any, ...]]], *, cached: bool
) -> list[str]:
    """Assert that every statement is one task without subplans; return the node of each."""
    async with pg_connection(url) as conn:
        await conn.execute("SET citus.explain_all_tasks = on")
        nodes = []
        for query, args in statements:
            tasks, where, subplans = await _route(conn, query, args, cached=cached)
            assert (tasks, subplans) == (1, False), (query, tasks, where)
            assert len(where) == 1, (query, where)
            nodes.append(where[0])
        return nodes


def _table(query: str) -> str:
    for table in TABLES:
        if table in query:
            return table
    raise AssertionError(f"no adk_ table in {query!r}")


@pytest.mark.parametrize("cached", [False, True], ids=["first_plan", "cached_plan"])
async def test_single_session_operations_are_router_planned(
    recorded: tuple[SessionService, _Recorder], citus_url: str, cached: bool
) -> None:
    """Every statement of create/append (plain, user:, app:)/get/list-one-user/delete and of the
    scope reads and updates is one task on one worker with no subplan; all but the app scope's
    run on the session's worker."""
    service, recorder = recorded
    user_state = {"user:lang": "fr"}
    delta = {"k": 1, "user:seen": 2, "app:count": 3}
    s = await service.create_session(app_name="app", user_id="alice", session_id="s")
    recorder.take()
    operations: dict[str, Callable[[], Awaitable[object]]] = {
        "create_session": lambda: service.create_session(
            app_name="app", user_id="alice", session_id="s2", state=user_state
        ),
        "append": lambda: service.append_event(s, Event(author="a", id="e1")),
        "append_with_scopes": lambda: service.append_event(
            s, Event(author="a", id="e2", actions=EventActions(state_delta=delta))
        ),
        "get_session": lambda: service.get_session(
            app_name="app", user_id="alice", session_id="s", num_recent_events=10
        ),
        "list_user_sessions": lambda: service.list_sessions(app_name="app", user_id="alice"),
        "get_user_state": lambda: service.get_user_state(app_name="app", user_id="alice"),
        "get_app_state": lambda: service.get_app_state(app_name="app"),
        "update_user_state": lambda: service.update_user_state(
            app_name="app", user_id="alice", delta={"lang": "de"}
        ),
        "update_app_state": lambda: service.update_app_state(app_name="app", delta={"n": 2}),
        "delete_session": lambda: service.delete_session(
            app_name="app", user_id="alice", session_id="s2"
        ),
    }
    seen: dict[str, list[str]] = {}
    for name, call in operations.items():
        await call()
        statements = recorder.take()
        seen[name] = [_table(q) for q, _ in statements]
        nodes = await _check_router(citus_url, statements, cached=cached)
        session_nodes = {
            node for (q, _), node in zip(statements, nodes, strict=True) if "adk_app" not in q
        }
        assert len(session_nodes) <= 1, (name, nodes)
    # The statements, table by table (round trips without BEGIN/COMMIT): the append path is
    # lock, event, [app], [user], session.
    assert seen == {
        "create_session": ["adk_sessions", "adk_user_states", "adk_app_states", "adk_user_states"],
        "append": ["adk_sessions", "adk_events", "adk_sessions"],
        "append_with_scopes": [
            "adk_sessions",
            "adk_events",
            "adk_app_states",
            "adk_user_states",
            "adk_sessions",
        ],
        "get_session": ["adk_sessions", "adk_app_states", "adk_events"],
        "list_user_sessions": ["adk_sessions", "adk_app_states", "adk_user_states"],
        "get_user_state": ["adk_user_states"],
        "get_app_state": ["adk_app_states"],
        "update_user_state": ["adk_user_states", "adk_user_states"],
        "update_app_state": ["adk_app_states", "adk_app_states"],
        "delete_session": ["adk_sessions"],
    }


async def test_list_of_an_app_spans_the_shards(
    recorded: tuple[SessionService, _Recorder], citus_url: str
) -> None:
    """Listing every user's sessions of an app is the one multi-shard read: its page query has
    a task per shard (the count is meaningful), and it still returns every session in order."""
    service, recorder = recorded
    for i in range(6):
        await service.create_session(app_name="app", user_id=f"user{i}", session_id="s")
    recorder.take()
    page = await service.list_sessions(app_name="app")
    assert [(x.user_id, x.id) for x in page.sessions] == [(f"user{i}", "s") for i in range(6)]
    (query, args), _ = recorder.take()
    async with pg_connection(citus_url) as conn:
        tasks, nodes, _ = await _route(conn, query, args, cached=False)
    shards = (await _shard_count(citus_url))["adk_sessions"]
    assert tasks == shards > 1
    assert len(nodes) == 1  # EXPLAIN shows one task unless explain_all_tasks is on
    assert len((await citus_nodes(citus_url)).workers) >= 2


async def _shard_count(url: str) -> dict[str, int]:
    async with pg_connection(url) as conn:
        rows = await conn.fetch(
            "SELECT logicalrelid::regclass::text AS name, count(*) AS n FROM pg_dist_shard "
            "GROUP BY 1"
        )
    return {r["name"]: int(r["n"]) for r in rows}


async def test_sessions_spread_over_the_workers(citus_url: str) -> None:
    """Sessions of 40 users land on every worker (the cluster really is distributed)."""
    async with adk_sessions.connect(citus_url) as service:
        for i in range(40):
            await service.create_session(app_name="app", user_id=f"user{i}", session_id="s")
    async with pg_connection(citus_url) as conn:
        placed = await conn.fetch(
            "SELECT get_shard_id_for_distribution_column('adk_sessions', user_id) AS shard "
            "FROM adk_sessions"
        )
        shards = await conn.fetch(
            "SELECT shardid, nodename, nodeport FROM citus_shards "
            "WHERE table_name = 'adk_sessions'::regclass"
        )
    where = {r["shardid"]: (r["nodename"], r["nodeport"]) for r in shards}
    workers = (await citus_nodes(citus_url)).workers
    assert len(placed) == 40
    assert {where[r["shard"]] for r in placed} == set(workers)
    assert len(workers) >= 2
