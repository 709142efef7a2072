"""Cancelled appends, by every means, on both backends: all or nothing, never half.

Each attempt wraps ``append_event`` in a timeout drawn around the append's own duration, so that
some attempts are cancelled before the transaction starts, some inside it, some during ``COMMIT``
and some not at all. After every attempt the caller's session must agree with storage: either the
event is stored and the session advanced, or neither (a committed-but-not-advanced session makes
the caller's next append fail as stale, and a retry with a new event id writes the event twice).
"""

from __future__ import annotations

import asyncio
import random
import sqlite3
import statistics
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import pytest

import adk_sessions
from adk_sessions import Event, EventActions, Session, SessionService

from .._pg import pg_connection
from ._checks import check_invariants

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

APP = "cancel-app"
LOOPS = 8  # concurrent tasks, each appending to its own session
SEED = 20261129

# Attempts per means of cancellation, per backend.
ATTEMPTS = {
    "asyncio.wait_for": 2000,
    "anyio.move_on_after": 1000,
    "anyio.fail_after": 1000,
    "task.cancel": 200,
    "asyncio.timeout": 200,
}

Append = Callable[[], Awaitable[Any]]


async def _wait_for(append: Append, seconds: float) -> bool:
    try:
        await asyncio.wait_for(append(), seconds)
    except TimeoutError:
        return True
    return False


async def _move_on_after(append: Append, seconds: float) -> bool:
    with anyio.move_on_after(seconds) as scope:
        await append()
    return scope.cancelled_caught


async def _fail_after(append: Append, seconds: float) -> bool:
    try:
        with anyio.fail_after(seconds):
            await append()
    except TimeoutError:
        return True
    return False


async def _task_cancel(append: Append, seconds: float) -> bool:
    task = asyncio.ensure_future(append())
    await asyncio.sleep(seconds)
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        return True
    return False


async def _asyncio_timeout(append: Append, seconds: float) -> bool:
    try:
        async with asyncio.timeout(seconds):  # type: ignore[attr-defined,unused-ignore]
            await append()
    except TimeoutError:
        return True
    return False


MEANS: dict[str, Callable[[Append, float], Awaitable[bool]]] = {
    "asyncio.wait_for": _wait_for,
    "anyio.move_on_after": _move_on_after,
    "anyio.fail_after": _fail_after,
    "task.cancel": _task_cancel,
}
if sys.version_info >= (3, 11):
    MEANS["asyncio.timeout"] = _asyncio_timeout


async def _open_transactions(url: str) -> int:
    """Connections of the database still inside a transaction, seen from outside the service.

    PostgreSQL: client backends of the database that are not idle (``idle in transaction``
    included); autovacuum workers, which show as ``active`` while they work on the test's
    tables, are no connection of the service.
    SQLite: whether a write transaction or a read snapshot is held (a full checkpoint with no
    busy timeout is refused while either is).
    """
    if url.startswith("sqlite"):
        conn = sqlite3.connect(url.removeprefix("sqlite:///"), timeout=0, isolation_level=None)
        try:
            busy, _, _ = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
            try:
                conn.execute("BEGIN IMMEDIATE")
                conn.execute("ROLLBACK")
                locked = 0
            except sqlite3.OperationalError:
                locked = 1
            return int(busy) + locked
        finally:
            conn.close()
    async with pg_connection(url) as pg:
        return int(
            await pg.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND backend_type = 'client backend' AND pid <> pg_backend_pid() "
                "AND state <> 'idle'"
            )
        )


class Loop:
    """One task appending to its own session, checking it against storage after every attempt."""

    def __init__(self, index: int, service: SessionService, session: Session) -> None:
        self.index = index
        self.service = service
        self.session = session
        self.n = 0
        self.outcomes: Counter[str] = Counter()
        self.errors: list[str] = []

    async def attempt(self, means: str, seconds: float) -> None:
        """One append cut short by ``means`` after ``seconds``; classify what happened."""
        self.n += 1
        event = Event(
            id=f"l{self.index}-e{self.n}",
            author="loop",
            actions=EventActions(state_delta={"n": self.n, f"app:l{self.index}": self.n}),
        )
        before = self.session.revision
        session = self.session
        try:
            cancelled = await MEANS[means](
                lambda: self.service.append_event(session, event), seconds
            )
            ending = "cancelled" if cancelled else "completed"
        except Exception as exc:
            self.errors.append(f"{means}: {exc!r}"[:300])
            ending = "failed"
        stored = await self.service.get_session(
            app_name=APP, user_id="u", session_id=session.id, num_recent_events=1
        )
        assert stored is not None
        has_event = stored.revision == before + 1 and stored.events[-1].id == event.id
        advanced = session.revision == before + 1 and session.events[-1].id == event.id
        if stored.revision not in (before, before + 1) or (
            stored.revision == before + 1 and not has_event
        ):
            outcome = "storage moved unexpectedly"
        elif has_event and not advanced:
            outcome = "committed but not advanced"
        elif advanced and not has_event:
            outcome = "advanced but not committed"
        else:
            outcome = "stored" if has_event else "not stored"
        self.outcomes[f"{ending}, {outcome}"] += 1
        if session.revision != stored.revision:  # carry on from what storage holds
            reloaded = await self.service.get_session(
                app_name=APP, user_id="u", session_id=session.id, num_recent_events=0
            )
            assert reloaded is not None
            self.session = reloaded


async def _append_duration(loops: list[Loop]) -> float:
    """Median duration of an uncancelled append with every loop appending at once."""
    durations: list[float] = []

    async def run(loop: Loop) -> None:
        for _ in range(10):
            started = time.perf_counter()
            await loop.attempt("anyio.move_on_after", 60.0)
            durations.append(time.perf_counter() - started)

    async with anyio.create_task_group() as tg:
        for loop in loops:
            tg.start_soon(run, loop)
    return statistics.median(durations)


async def test_cancelled_appends_are_all_or_nothing(db_url: str) -> None:
    """wait_for/anyio/task.cancel/asyncio.timeout: 0 committed-but-not-advanced, no open tx."""
    options = {"synchronous": "NORMAL"} if db_url.startswith("sqlite") else {"max_size": LOOPS}
    rng = random.Random(SEED)
    async with adk_sessions.connect(db_url, **options) as service:
        loops = [
            Loop(i, service, await service.create_session(app_name=APP, user_id="u"))
            for i in range(LOOPS)
        ]
        median = await _append_duration(loops)
        totals: dict[str, Counter[str]] = {}
        left_open: dict[str, int] = {}
        for means in MEANS:
            per_loop = ATTEMPTS[means] // LOOPS
            for loop in loops:
                loop.outcomes.clear()

            async def run(loop: Loop, means: str = means, per_loop: int = per_loop) -> None:
                for _ in range(per_loop):
                    # Mostly around the append's duration (cancelled before BEGIN, inside the
                    # transaction, during COMMIT, or not at all); a few at once.
                    seconds = 0.0 if rng.random() < 0.05 else rng.uniform(0, 2.5 * median)
                    await loop.attempt(means, seconds)

            async with anyio.create_task_group() as tg:
                for loop in loops:
                    tg.start_soon(run, loop)
            totals[means] = sum((loop.outcomes for loop in loops), Counter())
            left_open[means] = await _open_transactions(db_url)
        errors = [error for loop in loops for error in loop.errors]
        # The service keeps working: a plain append on every session.
        for loop in loops:
            await loop.attempt("anyio.move_on_after", 60.0)
        in_hand = {loop.session.id: loop.session for loop in loops}
    stored = await check_invariants(db_url, APP)
    figures = (
        f"cancellation figures ({db_url.split(':', 1)[0]}, median append "
        f"{median * 1000:.2f} ms): {totals}; connections left in a transaction {left_open}"
    )
    print(figures)
    assert errors == [], figures
    for means, outcomes in totals.items():
        allowed = ("cancelled, stored", "cancelled, not stored", "completed, stored")
        bad = {k: v for k, v in outcomes.items() if k not in allowed}
        assert bad == {}, (means, figures)
        assert sum(outcomes.values()) == ATTEMPTS[means] // LOOPS * LOOPS
        # The timeouts did cut appends short, and let others finish (else nothing was tested).
        assert sum(v for k, v in outcomes.items() if k.startswith("cancelled")) > 0, figures
        assert sum(v for k, v in outcomes.items() if k.startswith("completed")) > 0, figures
    assert left_open == dict.fromkeys(MEANS, 0), figures
    for (_, session_id), revision in stored.revisions.items():
        assert in_hand[session_id].revision == revision
        assert in_hand[session_id].state["n"] == max(
            int(event_id.split("-e")[1]) for _, event_id in stored.events[("u", session_id)]
        )
