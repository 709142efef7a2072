"""Several OS processes appending to the same sessions at once: no lost, doubled or torn write.

Each child (``tests/_append_worker.py``) loops get_session / append_event, retrying on
StaleSessionError, until it has committed its events, and reports what it committed and every
error. The parent then checks the stored histories, revisions and state against those reports.
"""

from __future__ import annotations

import asyncio
import sqlite3
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

import adk_sessions

from .._children import run_released
from .._pg import pg_connection

pytestmark = pytest.mark.slow

WORKER = Path(__file__).parents[1] / "_append_worker.py"
APP, USER = "mp-app", "mp-user"
SESSIONS = ("s-a", "s-b")
PROCESSES = 3
EVENTS_PER_PROCESS = 30
TIMEOUT = 100.0


async def _create_sessions(url: str) -> None:
    async with adk_sessions.connect(url) as service:
        for session_id in SESSIONS:
            await service.create_session(app_name=APP, user_id=USER, session_id=session_id)


def _run_workers(url: str) -> list[dict[str, Any]]:
    """Start the children, release them together once all are connected, collect their reports."""
    commands = [
        [sys.executable, str(WORKER), url, APP, USER, str(i), str(EVENTS_PER_PROCESS), *SESSIONS]
        for i in range(PROCESSES)
    ]
    reports = []
    for report, err in run_released(commands, TIMEOUT):
        assert "database is locked" not in err
        assert "Traceback" not in err, err
        reports.append(report)
    return reports


async def _stored_seqs(url: str) -> dict[str, list[tuple[int, str]]]:
    """(seq, event id) of every stored event per session, read with the driver itself."""
    sql = "SELECT seq, id FROM adk_events WHERE app_name = {0} AND session_id = {1} ORDER BY seq"
    found: dict[str, list[tuple[int, str]]] = {}
    if url.startswith("sqlite"):
        conn = sqlite3.connect(url.removeprefix("sqlite:///"))
        try:
            for session_id in SESSIONS:
                rows = conn.execute(sql.format("?", "?"), (APP, session_id)).fetchall()
                found[session_id] = [(int(seq), str(id_)) for seq, id_ in rows]
        finally:
            conn.close()
        return found
    async with pg_connection(url) as pg:
        for session_id in SESSIONS:
            rows = await pg.fetch(sql.format("$1", "$2"), APP, session_id)
            found[session_id] = [(int(r["seq"]), str(r["id"])) for r in rows]
    return found


def _fold(deltas: list[dict[str, Any]]) -> dict[str, Any]:
    state: dict[str, Any] = {}
    for delta in deltas:
        state.update(delta)
    return state


async def _check(url: str, reports: list[dict[str, Any]]) -> None:
    committed = [tuple(item) for report in reports for item in report["committed"]]
    assert len(committed) == PROCESSES * EVENTS_PER_PROCESS
    seqs = await _stored_seqs(url)
    async with adk_sessions.connect(url) as service:
        total = 0
        for session_id in SESSIONS:
            session = await service.get_session(app_name=APP, user_id=USER, session_id=session_id)
            assert session is not None
            ids = [event.id for event in session.events]
            # Revisions 1..N with no gap or duplicate; one event per revision; unique ids.
            assert [seq for seq, _ in seqs[session_id]] == list(range(1, session.revision + 1))
            assert [id_ for _, id_ in seqs[session_id]] == ids
            assert len(ids) == session.revision == len(set(ids))
            # Exactly the events the children reported for this session, at the revision each
            # child saw after its append.
            assert sorted((session_id, id_, seq) for seq, id_ in seqs[session_id]) == sorted(
                item for item in committed if item[0] == session_id
            )
            # The state is the fold of the stored deltas, and each child's app/user keys hold
            # its last value.
            folded = _fold([event.actions.state_delta for event in session.events])
            assert session.state == folded | {
                f"app:total_{p}": EVENTS_PER_PROCESS for p in range(PROCESSES)
            } | {f"user:u_{p}": EVENTS_PER_PROCESS for p in range(PROCESSES)}
            assert {k for k in folded if k.startswith("count:")} == {
                f"count:{p}" for p in range(PROCESSES)
            }
            total += session.revision
        assert total == sum(len(report["committed"]) for report in reports)
        assert await service.get_app_state(app_name=APP) == {
            f"total_{p}": EVENTS_PER_PROCESS for p in range(PROCESSES)
        }
        assert await service.get_user_state(app_name=APP, user_id=USER) == {
            f"u_{p}": EVENTS_PER_PROCESS for p in range(PROCESSES)
        }


def test_processes_append_to_shared_sessions(db_url: str) -> None:
    """3 processes appending to 2 sessions commit every event once, in gapless revision order."""
    asyncio.run(_create_sessions(db_url))
    reports = _run_workers(db_url)
    assert [report["errors"] for report in reports] == [[]] * PROCESSES
    assert Counter(report["proc"] for report in reports) == Counter(range(PROCESSES))
    assert [len(report["committed"]) for report in reports] == [EVENTS_PER_PROCESS] * PROCESSES
    asyncio.run(_check(db_url, reports))
    # The children really ran at once: some history interleaves their events (run one after
    # another, each session would hold one block of events per process).
    seqs = asyncio.run(_stored_seqs(db_url))
    blocks = [
        len(
            [
                i
                for i, (_, id_) in enumerate(history)
                if i == 0 or id_.split("-")[0] != history[i - 1][1].split("-")[0]
            ]
        )
        for history in seqs.values()
    ]
    assert max(blocks) > PROCESSES, blocks
