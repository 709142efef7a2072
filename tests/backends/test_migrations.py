"""Schema migrations on each backend: create, no-op, concurrency, newer schema, migrate=False.

Every test gets its own empty database (a new PostgreSQL database or a new SQLite file), never the
shared truncated one, and inspects it with the driver itself.
"""

from __future__ import annotations

import asyncio
import sqlite3
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

import adk_sessions
from adk_sessions._queries import load_migrations
from adk_sessions.errors import SchemaError

from .._children import run_released
from .._pg import pg_connection
from ..conftest import BACKENDS

pytestmark = pytest.mark.anyio

KNOWN = len(load_migrations("sqlite"))
assert len(load_migrations("postgres")) == KNOWN
TIMEOUT = 60.0

_CHILD = """
import asyncio, json, sys
import adk_sessions

async def main(url):
    service = await adk_sessions.connect(url, migrate=False)
    try:
        print("ready", flush=True)
        await asyncio.to_thread(sys.stdin.readline)
        applied = await service.migrate()
        status = await service.status()
    finally:
        await service.close()
    print(json.dumps({"applied": applied, "schema_version": status["schema_version"]}))

asyncio.run(main(sys.argv[1]))
"""


@pytest.fixture(params=BACKENDS)
def new_database(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[], Awaitable[str]]:
    """A factory of URLs of new, empty databases of each backend."""
    if request.param == "sqlite":
        counter = iter(range(1_000_000))

        async def make_sqlite() -> str:
            return f"sqlite:///{tmp_path / f'migrate{next(counter)}.db'}"

        return make_sqlite
    fixture = "fresh_pg_database" if request.param == "postgres" else "fresh_citus_database"
    factory: Callable[[], Awaitable[str]] = request.getfixturevalue(fixture)
    return factory


async def _snapshot(url: str) -> dict[str, Any]:
    """The tables, indexes and migration rows of a database, read with the driver."""
    if url.startswith("sqlite"):
        conn = sqlite3.connect(url.removeprefix("sqlite:///"))
        try:
            objects = conn.execute(
                "SELECT type, name, sql FROM sqlite_master ORDER BY type, name"
            ).fetchall()
            names = {name for kind, name, _ in objects if kind == "table"}
            versions = (
                conn.execute(
                    "SELECT version, name FROM adk_schema_migrations ORDER BY version"
                ).fetchall()
                if "adk_schema_migrations" in names
                else None
            )
        finally:
            conn.close()
        return {"objects": [tuple(o) for o in objects], "versions": versions}
    async with pg_connection(url) as pg:
        objects = await pg.fetch(
            "SELECT c.relkind::text AS kind, c.relname AS name FROM pg_class c "
            "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'public' "
            "ORDER BY 1, 2"
        )
        exists = await pg.fetchval("SELECT to_regclass('adk_schema_migrations') IS NOT NULL")
        versions = (
            [
                tuple(r)
                for r in await pg.fetch(
                    "SELECT version, name FROM adk_schema_migrations ORDER BY version"
                )
            ]
            if exists
            else None
        )
    return {"objects": [tuple(o) for o in objects], "versions": versions}


async def _add_future_version(url: str) -> None:
    """Record migration KNOWN + 1, as a newer release of the library would."""
    args = (KNOWN + 1, f"{KNOWN + 1:04d}_from_the_future.sql", 0.0)
    if url.startswith("sqlite"):
        conn = sqlite3.connect(url.removeprefix("sqlite:///"))
        try:
            with conn:
                conn.execute(
                    "INSERT INTO adk_schema_migrations (version, name, applied_at) "
                    "VALUES (?, ?, ?)",
                    args,
                )
        finally:
            conn.close()
        return
    async with pg_connection(url) as pg:
        await pg.execute(
            "INSERT INTO adk_schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)",
            *args,
        )


def _versions(snapshot: dict[str, Any]) -> list[int]:
    return [int(row[0]) for row in snapshot["versions"] or []]


async def test_migrate_creates_schema(
    new_database: Callable[[], Awaitable[str]], request: pytest.FixtureRequest
) -> None:
    """connect(migrate=True) on an empty database applies every migration once; the tables are
    distributed exactly on Citus."""
    url = await new_database()
    async with adk_sessions.connect(url) as service:
        status = await service.status()
        assert status["schema_version"] == KNOWN
        assert status["code_version"] == KNOWN
        assert status["sessions"] == 0
        citus = request.node.callspec.params["new_database"] == "citus"
        assert status["distributed"] is citus
        assert len(status["distribution"]["tables"]) == (4 if citus else 0)
        session = await service.create_session(app_name="a", user_id="u", session_id="s")
        assert session.revision == 0
    snapshot = await _snapshot(url)
    assert _versions(snapshot) == list(range(1, KNOWN + 1))
    names = {row[1] for row in snapshot["objects"]}
    assert {"adk_app_states", "adk_user_states", "adk_sessions", "adk_events"} <= names


async def test_second_connect_is_a_no_op(new_database: Callable[[], Awaitable[str]]) -> None:
    """A second connect changes nothing, and migrate() on a current schema returns []."""
    url = await new_database()
    async with adk_sessions.connect(url) as service:
        await service.create_session(app_name="a", user_id="u", session_id="s")
    before = await _snapshot(url)
    async with adk_sessions.connect(url) as service:
        assert await service.migrate() == []
        assert await service.migrate() == []
        assert await service.schema_version() == KNOWN
        assert await service.get_session(app_name="a", user_id="u", session_id="s") is not None
    assert await _snapshot(url) == before


async def test_concurrent_connects_migrate_once(
    new_database: Callable[[], Awaitable[str]],
) -> None:
    """5 tasks connecting at once to an empty database all succeed; each version recorded once."""
    url = await new_database()

    async def connect_one() -> int:
        async with adk_sessions.connect(url) as service:
            return int((await service.status())["schema_version"])

    versions = await asyncio.wait_for(asyncio.gather(*(connect_one() for _ in range(5))), TIMEOUT)
    assert versions == [KNOWN] * 5
    assert _versions(await _snapshot(url)) == list(range(1, KNOWN + 1))


async def test_concurrent_migrate_calls_apply_each_version_once(
    new_database: Callable[[], Awaitable[str]],
) -> None:
    """5 services calling migrate() at once: together they applied each version exactly once."""
    url = await new_database()
    services = [await adk_sessions.connect(url, migrate=False) for _ in range(5)]
    try:
        applied = await asyncio.wait_for(
            asyncio.gather(*(service.migrate() for service in services)), TIMEOUT
        )
    finally:
        for service in services:
            await service.close()
    assert sorted(v for versions in applied for v in versions) == list(range(1, KNOWN + 1))
    assert _versions(await _snapshot(url)) == list(range(1, KNOWN + 1))


def test_concurrent_processes_migrate_once(new_database: Callable[[], Awaitable[str]]) -> None:
    """3 processes released at once to migrate an empty database apply each version once."""

    async def make() -> str:
        return await new_database()

    url = asyncio.run(make())
    commands = [[sys.executable, "-c", _CHILD, url] for _ in range(3)]
    reports = [report for report, _ in run_released(commands, TIMEOUT)]
    assert [r["schema_version"] for r in reports] == [KNOWN] * 3
    assert sorted(v for r in reports for v in r["applied"]) == list(range(1, KNOWN + 1))
    assert _versions(asyncio.run(_snapshot(url))) == list(range(1, KNOWN + 1))


@pytest.mark.parametrize("migrate", [True, False])
async def test_newer_schema_is_refused_untouched(
    new_database: Callable[[], Awaitable[str]], migrate: bool
) -> None:
    """A schema newer than the code makes connect() raise SchemaError and leaves it as it was."""
    url = await new_database()
    async with adk_sessions.connect(url) as service:
        await service.create_session(app_name="a", user_id="u", session_id="s")
    await _add_future_version(url)
    before = await _snapshot(url)
    with pytest.raises(SchemaError, match=rf"version {KNOWN + 1}.*newer"):
        await adk_sessions.connect(url, migrate=migrate)
    with pytest.raises(SchemaError):
        async with adk_sessions.connect(url, migrate=migrate):
            pass
    after = await _snapshot(url)
    assert after == before
    assert _versions(after) == [*range(1, KNOWN + 1), KNOWN + 1]


async def test_connect_without_migrate_creates_nothing(
    new_database: Callable[[], Awaitable[str]], request: pytest.FixtureRequest
) -> None:
    """connect(migrate=False) on an empty database creates no table and reports version 0."""
    url = await new_database()
    # An empty database holds nothing, but for the views CREATE EXTENSION citus puts in public.
    extension_views = [("v", "citus_schemas"), ("v", "citus_tables")]
    empty = extension_views if request.node.callspec.params["new_database"] == "citus" else []
    assert await _snapshot(url) == {"objects": empty, "versions": None}
    async with adk_sessions.connect(url, migrate=False) as service:
        assert await service.schema_version() == 0
        assert (await service.status())["schema_version"] == 0
    snapshot = await _snapshot(url)
    assert snapshot == {"objects": empty, "versions": None}
