"""Fixtures for the google-adk integration tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from adk_sessions.adk import AdkSessionService


@pytest.fixture(params=[0, 10_000], ids=["no_cache", "event_cache"])
async def adk_service(
    db_url: str, request: pytest.FixtureRequest
) -> AsyncIterator[AdkSessionService]:
    """An AdkSessionService on the test database, without and with the event cache, closed after.

    Every behaviour test of the adapter runs both ways: the cache must not change what a caller
    sees.
    """
    async with AdkSessionService(db_url, event_cache=request.param) as service:
        yield service
