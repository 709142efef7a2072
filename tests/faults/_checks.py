"""What every fault test checks afterwards: the stored data is whole and consistent.

Rows are counted with the driver itself (so a row the service would not show still counts); state
is read through the public API and compared with the fold of the stored deltas.
"""

from __future__ import annotations

import sqlite3
from collections import defaultdict
from typing import Any

import attrs

import adk_sessions

from .._pg import pg_connection

_SESSIONS = "SELECT user_id, id, revision FROM adk_sessions WHERE app_name = {0}"
_EVENTS = (
    "SELECT user_id, session_id, seq, id FROM adk_events WHERE app_name = {0} "
    "ORDER BY user_id, session_id, seq"
)

SessionKey = tuple[str, str]  # (user_id, session_id)


@attrs.frozen(kw_only=True)
class Stored:
    """Rows of one app as the driver reads them."""

    revisions: dict[SessionKey, int]
    events: dict[SessionKey, list[tuple[int, str]]]  # (seq, event id), in seq order

    @property
    def event_count(self) -> int:
        """Number of stored events of the app."""
        return sum(len(found) for found in self.events.values())


async def read_rows(url: str, app_name: str) -> Stored:
    """Read the sessions' revisions and the events' (seq, id) of an app with the bare driver."""
    events: dict[SessionKey, list[tuple[int, str]]] = defaultdict(list)
    if url.startswith("sqlite"):
        conn = sqlite3.connect(url.removeprefix("sqlite:///").split("?", 1)[0])
        try:
            sessions = conn.execute(_SESSIONS.format("?"), (app_name,)).fetchall()
            rows = conn.execute(_EVENTS.format("?"), (app_name,)).fetchall()
        finally:
            conn.close()
    else:
        async with pg_connection(url) as pg:
            sessions = [tuple(r) for r in await pg.fetch(_SESSIONS.format("$1"), app_name)]
            rows = [tuple(r) for r in await pg.fetch(_EVENTS.format("$1"), app_name)]
    for user_id, session_id, seq, event_id in rows:
        events[(str(user_id), str(session_id))].append((int(seq), str(event_id)))
    revisions = {(str(u), str(s)): int(r) for u, s, r in sessions}
    return Stored(revisions=revisions, events=dict(events))


def integrity_check(path: str) -> str:
    """``PRAGMA integrity_check`` of an SQLite file ("ok" when sound)."""
    conn = sqlite3.connect(path)
    try:
        return "; ".join(str(row[0]) for row in conn.execute("PRAGMA integrity_check"))
    finally:
        conn.close()


_PREFIXES = ("app:", "user:", "temp:")


def _scoped(delta: dict[str, Any], prefix: str) -> dict[str, Any]:
    return {k.removeprefix(prefix): v for k, v in delta.items() if k.startswith(prefix)}


async def check_invariants(url: str, app_name: str, **options: Any) -> Stored:
    """Assert the invariants of every session of an app; return what is stored.

    - revision == number of stored events, and their seqs are exactly 1..revision;
    - the session scope equals the fold of the session's stored deltas, in seq order (the
      sessions were created without state);
    - each app and user key holds the largest value any stored delta gave it (the workloads of
      the fault tests write each such key from one writer only, with increasing integers, so
      that value is the last one committed).

    Args:
        url: The database.
        app_name: The app whose sessions are checked.
        **options: Passed to ``adk_sessions.connect``.

    Returns:
        The stored rows.
    """
    stored = await read_rows(url, app_name)
    for key, revision in stored.revisions.items():
        seqs = [seq for seq, _ in stored.events.get(key, [])]
        assert seqs == list(range(1, revision + 1)), (key, revision, seqs[-5:])
    assert set(stored.events) <= set(stored.revisions), "events without a session"
    app_max: dict[str, Any] = {}
    user_max: dict[str, dict[str, Any]] = defaultdict(dict)
    async with adk_sessions.connect(url, migrate=False, **options) as service:
        for (user_id, session_id), revision in stored.revisions.items():
            session = await service.get_session(
                app_name=app_name, user_id=user_id, session_id=session_id
            )
            assert session is not None, (user_id, session_id)
            assert session.revision == revision
            ids = [i for _, i in stored.events.get((user_id, session_id), [])]
            assert [e.id for e in session.events] == ids
            folded: dict[str, Any] = {}
            for event in session.events:
                delta = event.actions.state_delta
                folded.update({k: v for k, v in delta.items() if not k.startswith(_PREFIXES)})
                for k, v in _scoped(delta, "app:").items():
                    app_max[k] = max(app_max.get(k, v), v)
                for k, v in _scoped(delta, "user:").items():
                    user_max[user_id][k] = max(user_max[user_id].get(k, v), v)
            own = {k: v for k, v in session.state.items() if not k.startswith(_PREFIXES)}
            assert own == folded, (user_id, session_id)
        app_state = await service.get_app_state(app_name=app_name)
        assert {k: app_state.get(k) for k in app_max} == app_max
        for user_id, expected in user_max.items():
            user_state = await service.get_user_state(app_name=app_name, user_id=user_id)
            assert {k: user_state.get(k) for k in expected} == expected, user_id
    return stored
