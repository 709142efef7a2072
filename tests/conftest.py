"""Shared fixtures: real databases only (an SQLite file per test, a real PostgreSQL server, a real
Citus cluster).

PostgreSQL comes from ``ADK_SESSIONS_TEST_PG_DSN`` if set, else a throwaway cluster started from
binaries on the machine, else the ``pgserver`` package (``ADK_SESSIONS_TEST_PG_SOURCE=pgserver``
forces that one); without any of them the PostgreSQL tests
skip, unless ``ADK_SESSIONS_REQUIRE_PG=1`` (set by ``.ci/run``) turns that into a failure.

Citus (the third backend) comes from ``ADK_SESSIONS_TEST_CITUS_DSN`` if set (a coordinator with at
least two workers, which the tests reach at the addresses the coordinator lists, with the DSN's
user and password), else a throwaway coordinator and two workers started from the machine's
PostgreSQL binaries when Citus is installed into them; without either the Citus tests skip, unless
``ADK_SESSIONS_REQUIRE_CITUS=1``.
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

import asyncpg
import pytest

import adk_sessions
from adk_sessions import SessionService
from adk_sessions._pgcluster import (
    CitusNodes,
    PostgresUnavailable,
    citus_nodes,
    throwaway_citus,
    throwaway_postgres,
    wire_citus_database,
)

# Every behaviour test runs once per backend; "citus" is PostgreSQL distributed by Citus.
BACKENDS = ("sqlite", "postgres", "citus")
SERVER_BACKENDS = ("postgres", "citus")


# google-adk 2.x needs Python 3.11+; without it (the [adk] extra) its integration tests are not
# collected. .ci/run installs the extra, so there they always run.
def _has_google_adk() -> bool:
    try:
        return importlib.util.find_spec("google.adk") is not None
    except ModuleNotFoundError:  # no "google" namespace package at all
        return False


collect_ignore = [] if _has_google_adk() else ["adk"]
_TABLES = "adk_events, adk_sessions, adk_user_states, adk_app_states"


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
            if os.environ.get("ADK_SESSIONS_REQUIRE_PG") == "1":
                pytest.fail(f"ADK_SESSIONS_REQUIRE_PG=1 but no PostgreSQL server: {exc}")
            pytest.skip(f"no PostgreSQL server: {exc}")
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
            if os.environ.get("ADK_SESSIONS_REQUIRE_CITUS") == "1":
                pytest.fail(f"ADK_SESSIONS_REQUIRE_CITUS=1 but no Citus cluster: {exc}")
            pytest.skip(f"no Citus cluster (set ADK_SESSIONS_TEST_CITUS_DSN): {exc}")
        yield dsn


_counter = itertools.count()


class _Server:
    """A test server: plain PostgreSQL, or a Citus cluster whose every node gets each database."""

    def __init__(self, dsn: str, citus: CitusNodes | None) -> None:
        self.dsn = dsn
        self.citus = citus
        self.created: list[str] = []

    def _node_dsns(self) -> list[str]:
        return [self.dsn, *(self.citus.worker_dsns(self.dsn) if self.citus else [])]

    async def create(self, suffix: str) -> str:
        name = f"adk_sessions_test_{os.getpid()}_{suffix}"
        for node in self._node_dsns():
            conn = await asyncpg.connect(node)
            try:
                await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                await conn.execute(f'CREATE DATABASE "{name}"')
            finally:
                await conn.close()
        self.created.append(name)
        url = _with_database(self.dsn, name)
        if self.citus is not None:
            await wire_citus_database(url, self.citus)
        return url

    async def drop_all(self) -> None:
        for node in reversed(self._node_dsns()):  # the coordinator last
            conn = await asyncpg.connect(node)
            try:
                for name in self.created:
                    await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            finally:
                await conn.close()


@pytest.fixture(scope="session")
def _pg_server(pg_dsn: str) -> Iterator[_Server]:
    server = _Server(pg_dsn, None)
    yield server
    asyncio.run(server.drop_all())


@pytest.fixture(scope="session")
def _citus_server(citus_dsn: str) -> Iterator[_Server]:
    server = _Server(citus_dsn, asyncio.run(citus_nodes(citus_dsn)))
    yield server
    asyncio.run(server.drop_all())


@pytest.fixture(scope="session")
def create_pg_database(_pg_server: _Server) -> Callable[[str], Coroutine[Any, Any, str]]:
    """Create an empty database named ``adk_sessions_test_<pid>_<suffix>``; returns its URL.

    A leftover database of that name is dropped first; every one is dropped after the run.
    """
    return _pg_server.create


@pytest.fixture(scope="session")
def create_citus_database(_citus_server: _Server) -> Callable[[str], Coroutine[Any, Any, str]]:
    """Create an empty Citus database (on every node, wired together); returns its URL."""
    return _citus_server.create


@pytest.fixture
def fresh_pg_database(
    create_pg_database: Callable[[str], Coroutine[Any, Any, str]],
) -> Callable[[], Awaitable[str]]:
    """A factory creating a new empty database on the test server; returns its URL."""

    async def make() -> str:
        return await create_pg_database(str(next(_counter)))

    return make


@pytest.fixture
def fresh_citus_database(
    create_citus_database: Callable[[str], Coroutine[Any, Any, str]],
) -> Callable[[], Awaitable[str]]:
    """A factory creating a new empty database on the test Citus cluster; returns its URL."""

    async def make() -> str:
        return await create_citus_database(str(next(_counter)))

    return make


@pytest.fixture(scope="session")
def _pg_shared_url(create_pg_database: Callable[[str], Coroutine[Any, Any, str]]) -> str:
    """One database for the whole run, truncated before each test that uses it."""
    return asyncio.run(create_pg_database("shared"))


@pytest.fixture(scope="session")
def _citus_shared_url(create_citus_database: Callable[[str], Coroutine[Any, Any, str]]) -> str:
    """One Citus database for the whole run, emptied before each test that uses it."""
    return asyncio.run(create_citus_database("shared"))


# Emptying a shared database between tests: TRUNCATE on PostgreSQL; on Citus a DELETE per table
# (a TRUNCATE of distributed tables takes a lock on every shard placement and costs far more).
_EMPTY = {
    "postgres": [f"TRUNCATE {_TABLES}"],
    "citus": [f"DELETE FROM {table}" for table in _TABLES.split(", ")],
}


@pytest.fixture(params=BACKENDS)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URL of an empty database: a new SQLite file, or the emptied PostgreSQL/Citus one."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'sessions.db'}"
    shared = {"postgres": "_pg_shared_url", "citus": "_citus_shared_url"}[request.param]
    url: str = request.getfixturevalue(shared)

    async def empty() -> None:
        async with adk_sessions.connect(url):  # migrates on first use, so the tables exist
            pass
        conn = await asyncpg.connect(url)
        try:
            for statement in _EMPTY[request.param]:
                await conn.execute(statement)
        finally:
            await conn.close()

    asyncio.run(empty())
    return url


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
