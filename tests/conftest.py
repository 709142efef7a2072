"""Shared fixtures: real databases only (an SQLite file per test, a real PostgreSQL server, a real
Citus cluster).

PostgreSQL comes from ``ADK_SESSIONS_TEST_PG_DSN`` if set, else a throwaway cluster started from
binaries on the machine, else the ``pgserver`` package (``ADK_SESSIONS_TEST_PG_SOURCE=pgserver``
forces that one); without any of them the PostgreSQL tests
skip, unless ``ADK_SESSIONS_REQUIRE_PG=1`` (set by ``.ci/run``) turns that into a failure.

Citus (the backend ``citus``) comes from ``ADK_SESSIONS_TEST_CITUS_DSN`` if set (a coordinator
with at least two workers, which the tests reach at the addresses the coordinator lists, with
the DSN's user and password), else a throwaway coordinator and two workers started from the
machine's PostgreSQL binaries when Citus is installed into them; without either the Citus tests
skip, unless ``ADK_SESSIONS_REQUIRE_CITUS=1`` turns that into a failure.
Async test modules set ``pytestmark = pytest.mark.anyio``; the backend is pinned to asyncio.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import itertools
import os
import urllib.parse
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any

import pytest

import adk_sessions
from adk_sessions import SessionService
from adk_sessions import _dialects as dialects
from adk_sessions._pgcluster import (
    PostgresUnavailable,
    citus_nodes,
    throwaway_citus,
    throwaway_postgres,
    wire_citus_database,
)
from adk_sessions._queries import quote_identifier

from ._pg import pg_connection, unavailable
from ._pgbouncer import throwaway_pgbouncer

# Every behaviour test runs once per backend; "citus" is PostgreSQL distributed by Citus.
# Every dialect of the registry, plus Citus: PostgreSQL distributed over a cluster.
BACKENDS = (*dialects.NAMES, "citus")


def importable(*names: str) -> bool:
    """Whether every named module is installed (found, not imported). Tests of an optional
    feature are collected only where it is; .ci/run installs every extra, so there they all run,
    and tox -e no-extras runs the suite without any."""
    try:
        return all(importlib.util.find_spec(name) is not None for name in names)
    except ModuleNotFoundError:  # a missing parent package ("google" of "google.adk")
        return False


# Without google-adk (the [adk] extra) its tests are not collected (tests/integrations/conftest.py,
# tests/faults/conftest.py); tox -m adk-matrix runs them per google-adk release.
def _has_google_adk() -> bool:
    return importable("google.adk")


_TABLES = ("adk_events", "adk_sessions", "adk_user_states", "adk_app_states")


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    """asyncpg and aiosqlite run on asyncio only."""
    return "asyncio"


def _with_database(dsn: str, database: str) -> str:
    parts = urllib.parse.urlsplit(dsn)
    return urllib.parse.urlunsplit(parts._replace(path="/" + database))


@pytest.fixture(scope="session")
def pg_dsn() -> Iterator[str]:
    """A DSN of the test PostgreSQL server (its maintenance database)."""
    env = os.environ.get("ADK_SESSIONS_TEST_PG_DSN")
    if env:
        yield env
        return
    with contextlib.ExitStack() as stack:
        try:
            source = os.environ.get("ADK_SESSIONS_TEST_PG_SOURCE", "auto")
            dsn = stack.enter_context(throwaway_postgres(source=source))
        except PostgresUnavailable as exc:
            unavailable("ADK_SESSIONS_REQUIRE_PG", f"no PostgreSQL server: {exc}")
        yield dsn


@pytest.fixture(scope="session")
def citus_dsn() -> Iterator[str]:
    """A DSN of the test Citus coordinator's maintenance database (two or more workers)."""
    env = os.environ.get("ADK_SESSIONS_TEST_CITUS_DSN")
    if env:
        nodes = asyncio.run(citus_nodes(env))
        if len(nodes.workers) < 2:
            pytest.fail(f"ADK_SESSIONS_TEST_CITUS_DSN has {len(nodes.workers)} worker(s), not 2+")
        yield env
        return
    with contextlib.ExitStack() as stack:
        try:
            dsn = stack.enter_context(throwaway_citus(workers=2))
        except PostgresUnavailable as exc:
            unavailable(
                "ADK_SESSIONS_REQUIRE_CITUS",
                f"no Citus cluster (set ADK_SESSIONS_TEST_CITUS_DSN): {exc}",
            )
        yield dsn


_counter = itertools.count()


@pytest.fixture(scope="session")
def _pg_databases(pg_dsn: str) -> Iterator[list[str]]:
    created: list[str] = []
    yield created

    async def drop() -> None:
        async with pg_connection(pg_dsn) as conn:
            for name in created:
                await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    asyncio.run(drop())


@pytest.fixture(scope="session")
def create_pg_database(
    pg_dsn: str, _pg_databases: list[str]
) -> Callable[[str], Coroutine[Any, Any, str]]:
    """Create an empty database named ``adk_sessions_test_<pid>_<suffix>``; returns its URL.

    A leftover database of that name is dropped first; every one is dropped after the run.
    """

    async def create(suffix: str) -> str:
        name = f"adk_sessions_test_{os.getpid()}_{suffix}"
        async with pg_connection(pg_dsn) as conn:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            await conn.execute(f'CREATE DATABASE "{name}"')
        _pg_databases.append(name)
        return _with_database(pg_dsn, name)

    return create


@pytest.fixture(scope="session")
def _citus_databases(citus_dsn: str) -> Iterator[list[str]]:
    created: list[str] = []
    yield created

    async def drop() -> None:
        nodes = await citus_nodes(citus_dsn)
        for node in [*nodes.worker_dsns(citus_dsn), citus_dsn]:  # the coordinator last
            async with pg_connection(node) as conn:
                for name in created:
                    await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    asyncio.run(drop())


@pytest.fixture(scope="session")
def create_citus_database(
    citus_dsn: str, _citus_databases: list[str]
) -> Callable[[str], Coroutine[Any, Any, str]]:
    """Create an empty database on every node of the test Citus cluster, wired together (the
    citus extension on each, the nodes registered); returns its URL on the coordinator."""

    async def create(suffix: str) -> str:
        name = f"adk_sessions_test_{os.getpid()}_{suffix}"
        nodes = await citus_nodes(citus_dsn)
        for node in [citus_dsn, *nodes.worker_dsns(citus_dsn)]:
            async with pg_connection(node) as conn:
                await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                await conn.execute(f'CREATE DATABASE "{name}"')
        _citus_databases.append(name)
        url = _with_database(citus_dsn, name)
        await wire_citus_database(url, nodes)
        return url

    return create


@pytest.fixture
def fresh_citus_database(
    create_citus_database: Callable[[str], Coroutine[Any, Any, str]],
) -> Callable[[], Awaitable[str]]:
    """A factory creating a new empty database on the test Citus cluster; returns its URL."""

    async def make() -> str:
        return await create_citus_database(str(next(_counter)))

    return make


@pytest.fixture
def fresh_pg_database(
    create_pg_database: Callable[[str], Coroutine[Any, Any, str]],
) -> Callable[[], Awaitable[str]]:
    """A factory creating a new empty database on the test server; returns its URL."""

    async def make() -> str:
        return await create_pg_database(str(next(_counter)))

    return make


@pytest.fixture(scope="session")
def _pg_shared_url(create_pg_database: Callable[[str], Coroutine[Any, Any, str]]) -> str:
    """One database for the whole run, truncated before each test that uses it."""
    return asyncio.run(create_pg_database("shared"))


@pytest.fixture(scope="session")
def _citus_shared_url(create_citus_database: Callable[[str], Coroutine[Any, Any, str]]) -> str:
    """One Citus database for the whole run, emptied before each test that uses it."""
    return asyncio.run(create_citus_database("shared"))


# An awkward schema name for the tables behind PgBouncer: quotes, a space, a semicolon.
PGBOUNCER_SCHEMA = 'odd "schema"; name'


@pytest.fixture(scope="session")
def pgbouncer_port(pg_dsn: str) -> Iterator[int]:
    """A throwaway PgBouncer in transaction pooling mode in front of the test server.

    Missing ``pgbouncer`` skips the tests through it, unless ``ADK_SESSIONS_REQUIRE_PGBOUNCER=1``
    (set by ``.ci/run``, which installs it) turns that into a failure.
    """
    try:
        with throwaway_pgbouncer(pg_dsn) as port:
            yield port
    except PostgresUnavailable as exc:
        unavailable("ADK_SESSIONS_REQUIRE_PGBOUNCER", f"no PgBouncer: {exc}")


@pytest.fixture(scope="session")
def _pgbouncer_url(
    pgbouncer_port: int, create_pg_database: Callable[[str], Coroutine[Any, Any, str]]
) -> str:
    """A database reached through PgBouncer, its tables in :data:`PGBOUNCER_SCHEMA`."""
    direct = asyncio.run(create_pg_database("pgbouncer"))
    parts = urllib.parse.urlsplit(direct)
    query = urllib.parse.urlencode({"pgbouncer": "true", "schema": PGBOUNCER_SCHEMA})
    netloc = f"{parts.username or 'postgres'}@127.0.0.1:{pgbouncer_port}"
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc, query=query))


def _empty(url: str, *, schema: str = "public", citus: bool = False) -> None:
    """Migrate (on first use) and empty every table of ``schema``: TRUNCATE, or on Citus a
    DELETE per table (a TRUNCATE of distributed tables locks every shard and costs far more)."""

    async def empty() -> None:
        async with adk_sessions.connect(url):  # migrates on first use, so the tables exist
            pass
        # statement_cache_size=0: the URL may lead through PgBouncer in transaction mode.
        async with pg_connection(url.split("?", 1)[0], statement_cache_size=0) as conn:
            tables = [f"{quote_identifier(schema)}.{table}" for table in _TABLES]
            if citus:
                # One connection per worker, shard after shard: cheaper than opening parallel
                # connections for a few rows.
                await conn.execute("SET citus.multi_shard_modify_mode TO 'sequential'")
                for table in tables:
                    await conn.execute(f"DELETE FROM {table}")
            else:
                await conn.execute(f"TRUNCATE {', '.join(tables)}")

    asyncio.run(empty())


def _backend_url(request: pytest.FixtureRequest, backend: str, tmp_path: Path) -> str:
    if backend == "sqlite":
        return f"sqlite:///{tmp_path / 'sessions.db'}"
    if backend == "pgbouncer":
        url: str = request.getfixturevalue("_pgbouncer_url")
        _empty(url, schema=PGBOUNCER_SCHEMA)
    elif backend == "citus":
        url = request.getfixturevalue("_citus_shared_url")
        _empty(url, citus=True)
    else:
        url = request.getfixturevalue("_pg_shared_url")
        _empty(url)
    return url


@pytest.fixture(params=BACKENDS)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URL of an empty database: a new SQLite file, or the emptied PostgreSQL/Citus one."""
    return _backend_url(request, request.param, tmp_path)


@pytest.fixture
def backend(db_url: str, request: pytest.FixtureRequest) -> str:
    """The name of the backend ``db_url`` belongs to (for backend-specific expectations)."""
    name: str = request.node.callspec.params["db_url"]
    return name


@pytest.fixture
async def service(db_url: str) -> AsyncIterator[SessionService]:
    """An open service on an empty database of each backend."""
    async with adk_sessions.connect(db_url) as svc:
        yield svc
