"""PostgreSQL: tables in a schema of their own (``?schema=NAME``), and PgBouncer in transaction
pooling mode (``?pgbouncer=true``). The conformance suite also runs through PgBouncer
with an awkward schema name (tests/backends/conformance/conftest.py)."""

from __future__ import annotations

import asyncio
import urllib.parse
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

import adk_sessions
from adk_sessions import Event, EventActions
from adk_sessions._migrations import MIGRATION_LOCK_KEY, lock_key
from adk_sessions.errors import InvalidArgumentError, StorageError

from .._pg import pg_connection

pytestmark = pytest.mark.anyio

AWKWARD = 'Tenant "A"; DROP TABLE adk_sessions; --\'s'


async def _tables(url: str) -> dict[str, set[str]]:
    async with pg_connection(url) as conn:
        rows = await conn.fetch(
            "SELECT schemaname, tablename FROM pg_tables WHERE tablename LIKE 'adk\\_%'"
        )
    found: dict[str, set[str]] = {}
    for row in rows:
        found.setdefault(row["schemaname"], set()).add(row["tablename"])
    return found


TABLES = {
    "adk_app_states",
    "adk_user_states",
    "adk_sessions",
    "adk_events",
    "adk_schema_migrations",
}


async def test_every_table_lives_in_the_schema(
    fresh_pg_database: Callable[[], Awaitable[str]],
) -> None:
    """With an awkward schema name every table, index and the migration record are created in
    that schema (created when missing), and nothing in public."""
    url = await fresh_pg_database()
    async with adk_sessions.connect(url, schema=AWKWARD) as service:
        status = await service.status()
    assert status["schema"] == AWKWARD and status["schema_version"] >= 1
    assert await _tables(url) == {AWKWARD: TABLES}
    async with pg_connection(url) as conn:
        indexes = await conn.fetchval(
            "SELECT count(*) FROM pg_indexes WHERE schemaname <> $1 AND indexname LIKE 'adk\\_%'",
            AWKWARD,
        )
    assert indexes == 0


async def test_two_schemas_never_see_each_other(
    fresh_pg_database: Callable[[], Awaitable[str]],
) -> None:
    """Two services on one database with different schemas (and the default public) keep
    sessions, events, app and user state apart, under the same ids."""
    url = await fresh_pg_database()
    quoted = urllib.parse.quote(AWKWARD, safe="")
    async with (
        adk_sessions.connect(url) as public,
        adk_sessions.connect(f"{url}?schema={quoted}") as awkward,
        adk_sessions.connect(f"{url}?schema=other") as other,
    ):
        for name, service in (("public", public), ("awkward", awkward), ("other", other)):
            s = await service.create_session(
                app_name="app", user_id="u", session_id="s", state={"app:who": name}
            )
            delta = {"user:who": name, "k": name}
            await service.append_event(
                s, Event(author="a", id=f"e-{name}", actions=EventActions(state_delta=delta))
            )
        for name, service in (("public", public), ("awkward", awkward), ("other", other)):
            got = await service.get_session(app_name="app", user_id="u", session_id="s")
            assert got is not None
            assert got.state == {"k": name, "app:who": name, "user:who": name}
            assert [e.id for e in got.events] == [f"e-{name}"]
            listed = await service.list_sessions(app_name="app")
            assert len(listed.sessions) == 1
        await other.delete_session(app_name="app", user_id="u", session_id="s")
        assert await public.get_session(app_name="app", user_id="u", session_id="s") is not None
    assert set(await _tables(url)) == {"public", AWKWARD, "other"}


async def test_concurrent_migrators_of_two_schemas(
    fresh_pg_database: Callable[[], Awaitable[str]],
) -> None:
    """Many connects at once into two new schemas each migrate their schema exactly once."""
    url = await fresh_pg_database()

    async def connect(schema: str) -> int:
        async with adk_sessions.connect(url, schema=schema) as service:
            return int((await service.status())["schema_version"])

    versions = await asyncio.gather(*(connect(s) for s in ["x", "y"] * 4))
    assert len(set(versions)) == 1
    async with pg_connection(url) as conn:
        for schema in ("x", "y"):
            rows = await conn.fetch(f"SELECT version FROM {schema}.adk_schema_migrations")
            assert sorted(r["version"] for r in rows) == list(range(1, versions[0] + 1))


def test_migration_lock_is_per_schema() -> None:
    """public keeps the lock every earlier version took; each other schema has its own."""
    assert lock_key("public") == MIGRATION_LOCK_KEY
    keys = {lock_key(name) for name in ("public", "a", "b", AWKWARD)}
    assert len(keys) == 4
    assert all(-(2**63) <= key < 2**63 for key in keys)


@pytest.mark.parametrize("schema", ["", "x" * 64, "nul\x00"])
async def test_bad_schema_names_are_invalid(pg_dsn: str, schema: str) -> None:
    """An empty, too long (PostgreSQL would truncate it) or NUL-holding schema is refused."""
    with pytest.raises(InvalidArgumentError, match="schema"):
        await adk_sessions.connect(pg_dsn, schema=schema)


async def test_schema_is_a_postgresql_option(tmp_path: Path) -> None:
    """schema= on a SQLite URL is an unknown parameter, never silently dropped."""
    with pytest.raises(InvalidArgumentError, match="schema"):
        await adk_sessions.connect(f"sqlite:///{tmp_path}/x.db?schema=a")


async def test_pgbouncer_needs_no_prepared_statement_cache(pg_dsn: str) -> None:
    """pgbouncer=true refuses an explicit statement cache (PgBouncer 1.18 cannot keep it)."""
    with pytest.raises(InvalidArgumentError, match="statement_cache_size"):
        await adk_sessions.connect(f"{pg_dsn}?pgbouncer=true", statement_cache_size=100)
    with pytest.raises(InvalidArgumentError, match="pgbouncer"):
        await adk_sessions.connect(f"{pg_dsn}?pgbouncer=maybe")


async def _race(url: str) -> list[BaseException]:
    """16 tasks appending and reading at once on 5 pooled server connections."""
    failures: list[BaseException] = []
    async with adk_sessions.connect(url, max_size=16) as service:
        sessions = [await service.create_session(app_name="b", user_id="u") for _ in range(16)]

        async def work(i: int) -> None:
            s = sessions[i]
            for _ in range(15):
                try:
                    await service.append_event(s, Event(author="a"))
                    await service.get_session(
                        app_name="b", user_id="u", session_id=s.id, num_recent_events=3
                    )
                except StorageError as exc:
                    failures.append(exc)

        await asyncio.gather(*(work(i) for i in range(16)))
    return failures


async def test_pgbouncer_transaction_pooling_works_only_with_the_flag(
    pgbouncer_port: int, fresh_pg_database: Callable[[], Awaitable[str]]
) -> None:
    """Through a real PgBouncer in transaction mode, concurrent appends and reads all succeed
    with pgbouncer=true; without it asyncpg's prepared statements break (which shows the test
    really shares server connections between clients)."""
    direct = urllib.parse.urlsplit(await fresh_pg_database())
    url = urllib.parse.urlunsplit(direct._replace(netloc=f"postgres@127.0.0.1:{pgbouncer_port}"))
    assert await _race(f"{url}?pgbouncer=true") == []
    failures = await _race(url)
    assert failures and all("prepared statement" in str(f) for f in failures)
