"""Fixtures for the google-adk integration tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from adk_sessions.adk import AdkSessionService


@pytest.fixture
async def adk_service(db_url: str) -> AsyncIterator[AdkSessionService]:
    """An AdkSessionService on the test database, closed afterwards."""
    async with AdkSessionService(db_url) as service:
        yield service
