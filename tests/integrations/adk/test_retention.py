"""AdkSessionService offers the core's retention, with google-adk's sessions."""

from __future__ import annotations

import pytest
from google.adk.events import Event

from adk_sessions.adk import AdkSessionService

pytestmark = pytest.mark.anyio


async def test_delete_sessions_prunes_old_sessions_and_keeps_state(
    adk_service: AdkSessionService,
) -> None:
    """delete_sessions deletes the app's sessions updated before t (user filter too), in
    batches, and keeps app and user state."""
    core = adk_service.service
    assert core is not None
    for user, sid in (("ann", "a1"), ("ann", "a2"), ("bob", "b1")):
        # Sessions last updated long ago (google-adk's create_session takes no time).
        await core.create_session(
            app_name="app",
            user_id=user,
            session_id=sid,
            state={"app:a": 1, "user:u": user},
            last_update_time=100.0,
        )
        session = await adk_service.get_session(app_name="app", user_id=user, session_id=sid)
        assert session is not None
        await adk_service.append_event(
            session, Event(invocation_id="i", author="user", timestamp=200.0)
        )
    fresh = await adk_service.create_session(app_name="app", user_id="ann", session_id="now")
    cutoff = 1000.0
    assert fresh.last_update_time > cutoff

    batches: list[int] = []
    deleted = await adk_service.delete_sessions(
        app_name="app", user_id="ann", updated_before=cutoff, batch_size=1, progress=batches.append
    )
    assert deleted == 2 and batches == [1, 1]
    assert await adk_service.delete_sessions(app_name="app", updated_before=cutoff) == 1
    listed = await adk_service.list_sessions(app_name="app")
    assert [s.id for s in listed.sessions] == ["now"]
    assert await adk_service.get_app_state(app_name="app") == {"a": 1}
    assert await adk_service.get_user_state(app_name="app", user_id="bob") == {"u": "bob"}


async def test_delete_sessions_refuses_bad_arguments(adk_service: AdkSessionService) -> None:
    """Bad arguments raise ValueError, as the adapter's other methods do."""
    with pytest.raises(ValueError, match="batch_size"):
        await adk_service.delete_sessions(app_name="app", updated_before=1.0, batch_size=0)
