"""Through AdkSessionService, a stored row google-adk cannot read is a StorageError naming it."""

from __future__ import annotations

import pytest
from google.adk.events import Event

from adk_sessions.adk import AdkSessionService
from adk_sessions.errors import StorageError

from ...backends.test_stored_rows import overwrite

pytestmark = pytest.mark.anyio


async def test_event_google_adk_cannot_validate_names_its_position(
    adk_service: AdkSessionService, db_url: str
) -> None:
    """An event row google-adk's validation rejects raises StorageError naming position 3."""
    session = await adk_service.create_session(app_name="a", user_id="u", session_id="s")
    for i in range(2):
        await adk_service.append_event(session, Event(id=f"e{i}", author="x"))
    await adk_service.get_session(app_name="a", user_id="u", session_id="s")  # cached, if on
    await adk_service.append_event(session, Event(id="e2", author="x"))
    await overwrite(
        db_url, "adk_events", "event", '{"id": "e2", "author": 5}', session_id="s", seq=3
    )
    with pytest.raises(StorageError, match=r"'s'.* position 3 "):
        await adk_service.get_session(app_name="a", user_id="u", session_id="s")


async def test_state_that_is_not_an_object_is_a_storage_error(
    adk_service: AdkSessionService, db_url: str
) -> None:
    """A stored state that is not a JSON object fails get_session and list_sessions."""
    await adk_service.create_session(app_name="a", user_id="u", session_id="s")
    await overwrite(db_url, "adk_sessions", "state", '"x"', id="s")
    with pytest.raises(StorageError, match="not a JSON object"):
        await adk_service.get_session(app_name="a", user_id="u", session_id="s")
    with pytest.raises(StorageError, match="not a JSON object"):
        await adk_service.list_sessions(app_name="a")
