"""/healthz and /readyz: no token, no sessions touched, 503 when the database cannot answer."""

from __future__ import annotations

import urllib.parse
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

import adk_sessions
from adk_sessions import SessionService
from adk_sessions.asgi import RETRY_AFTER_SECONDS

from .._http import error, execute_elsewhere, own_database, running
from .._pg import pg_connection

pytestmark = pytest.mark.anyio


@pytest.fixture(params=["sqlite", "postgres"])
def own_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A database of this test's own, to break."""
    return own_database(request, tmp_path)


async def test_probes_answer_without_touching_sessions(service: SessionService) -> None:
    """healthz makes no database round trip, readyz exactly one; neither needs a token."""
    async with running(service, token="operator") as (client, _):
        before = service.round_trips
        health = await client.get("/healthz")
        assert (health.status_code, health.json()) == (200, {"status": "ok"})
        assert service.round_trips == before
        ready = await client.get("/readyz")
        assert (ready.status_code, ready.json()) == (200, {"status": "ready"})
        assert service.round_trips == before + 1
        assert (await client.head("/readyz")).status_code == 200
        assert service.round_trips == before + 2
    assert (await service.list_sessions(app_name="app")).sessions == []


async def test_ping(service: SessionService) -> None:
    """SessionService.ping() runs one trivial query and returns None."""
    before = service.round_trips
    await service.ping()
    assert service.round_trips == before + 1


async def test_readyz_is_a_503_when_the_schema_is_gone(own_url: str) -> None:
    """readyz answers 503 with Retry-After when its query fails; healthz still answers 200."""
    async with adk_sessions.connect(own_url) as service, running(service) as (client, _):
        assert (await client.get("/readyz")).status_code == 200
        await execute_elsewhere(own_url, "DROP TABLE adk_schema_migrations")
        response = await client.get("/readyz")
        assert "not ready" in error(response, 503, "unavailable")
        assert response.headers["retry-after"] == str(RETRY_AFTER_SECONDS)
        assert (await client.get("/healthz")).status_code == 200


async def test_readyz_is_a_503_when_postgres_is_gone(
    fresh_pg_database: Callable[[], Awaitable[str]], pg_dsn: str
) -> None:
    """readyz answers 503 once the PostgreSQL database is dropped (its connections killed)."""
    url = await fresh_pg_database()
    name = urllib.parse.urlsplit(url).path.lstrip("/")
    async with adk_sessions.connect(url) as service, running(service) as (client, _):
        assert (await client.get("/readyz")).status_code == 200
        async with pg_connection(pg_dsn) as admin:
            await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        for _ in range(2):  # the killed connection, then a reconnect to a database now missing
            response = await client.get("/readyz")
            error(response, 503, "unavailable")
            assert response.headers["retry-after"] == str(RETRY_AFTER_SECONDS)
        assert (await client.get("/healthz")).status_code == 200


async def test_readyz_waits_at_most_ready_timeout(
    fresh_pg_database: Callable[[], Awaitable[str]],
) -> None:
    """readyz gives up after ready_timeout when the database does not answer (503)."""
    url = await fresh_pg_database()
    async with adk_sessions.connect(url) as service, pg_connection(url) as holder:
        await holder.execute("BEGIN")
        await holder.execute("LOCK TABLE adk_schema_migrations IN ACCESS EXCLUSIVE MODE")
        async with running(service, ready_timeout=0.2) as (client, _):
            response = await client.get("/readyz")
            assert "0.2" in error(response, 503, "unavailable")
            await holder.execute("ROLLBACK")
            assert (await client.get("/readyz")).status_code == 200
