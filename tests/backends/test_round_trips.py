"""Round trips per operation: counted, never timed (the target: 4 per append on PostgreSQL).

On PostgreSQL every driver call is one network round trip. On SQLite a "round trip" is one hop to
the connection's worker thread: a write makes two (``BEGIN IMMEDIATE``, which may wait for another
process and stays cancellable, then the whole transaction and ``COMMIT`` in one hop). On Citus
every statement touches one table, so that Citus routes it to one shard: the append writes the
event, each scope with keys and the session in statements of their own, and the app and user
scopes are read apart.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest

import adk_sessions
from adk_sessions import Event, EventActions, SessionService

pytestmark = pytest.mark.anyio

# operation -> (PostgreSQL, SQLite, Citus)
EXPECTED = {
    "append": (4, 2, 5),  # BEGIN, lock, writes (1 statement), COMMIT | BEGIN, the rest | Citus:
    # BEGIN, lock, event, session, COMMIT
    "append_with_scopes": (4, 2, 7),  # app:/user: keys ride in the same statement(s) | Citus:
    # + app, + user
    "get_session": (2, 2, 3),  # session + scopes, then events | Citus: session + user, app, events
    "get_session_no_events": (1, 1, 2),  # num_recent_events=0
    "list_sessions": (2, 2, 2),  # page, then scopes (Citus: the app scope)
    "list_user_sessions": (2, 2, 3),  # one user's page, then scopes (Citus: app, then user)
    # One autocommit statement inserting and reading the scopes back | BEGIN, the rest | Citus:
    # BEGIN, insert, app scope, user scope, COMMIT
    "create_session": (1, 2, 5),
    "create_session_with_scopes": (6, 2, 7),  # + app merge, + user merge
    "delete_session": (1, 2, 1),  # one autocommit statement | BEGIN, the rest
}
COLUMN = {"postgres": 0, "sqlite": 1, "citus": 2}


async def _count(service: SessionService, call: Callable[[], Awaitable[object]]) -> int:
    before = service.round_trips
    await call()
    return service.round_trips - before


async def test_round_trips_per_operation(db_url: str, backend: str) -> None:
    """Each operation makes exactly the documented number of round trips."""
    column = COLUMN[backend]
    async with adk_sessions.connect(db_url) as service:
        s = await service.create_session(app_name="a", user_id="u", session_id="s")
        for i in range(30):  # history length must not change any count
            await service.append_event(s, Event(author="x", id=f"h{i}"))
        seen = {
            "append": await _count(service, lambda: service.append_event(s, Event(author="x"))),
            "append_with_scopes": await _count(
                service,
                lambda: service.append_event(
                    s,
                    Event(
                        author="x",
                        actions=EventActions(state_delta={"k": 1, "app:a": 1, "user:u": 1}),
                    ),
                ),
            ),
            "get_session": await _count(
                service,
                lambda: service.get_session(
                    app_name="a", user_id="u", session_id="s", num_recent_events=20
                ),
            ),
            "get_session_no_events": await _count(
                service,
                lambda: service.get_session(
                    app_name="a", user_id="u", session_id="s", num_recent_events=0
                ),
            ),
            "list_sessions": await _count(service, lambda: service.list_sessions(app_name="a")),
            "list_user_sessions": await _count(
                service, lambda: service.list_sessions(app_name="a", user_id="u")
            ),
            "create_session": await _count(
                service, lambda: service.create_session(app_name="a", user_id="u")
            ),
            "create_session_with_scopes": await _count(
                service,
                lambda: service.create_session(
                    app_name="a", user_id="u", state={"app:x": 1, "user:y": 2}
                ),
            ),
            "delete_session": await _count(
                service, lambda: service.delete_session(app_name="a", user_id="u", session_id="s")
            ),
        }
    assert seen == {name: counts[column] for name, counts in EXPECTED.items()}
