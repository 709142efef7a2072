"""PostgreSQL backends terminated (``pg_terminate_backend``) under 16 concurrent writers.

Every connection of the test's own database is terminated five times while the writers of
``_retrying`` append and retry: the errors are StorageUnavailableError, no acknowledged event is
lost, nothing unacknowledged is stored and retries of the same event are idempotent. (Lost replies
simulated exactly, through a copy of the session, are pinned by
tests/backends/conformance/test_retry.py.)
"""

from __future__ import annotations

import time
from collections.abc import Callable, Coroutine
from typing import Any

import anyio
import pytest

import adk_sessions

from .._pg import pg_connection
from ._retrying import Tally, Writer, acks_since, verify, wait_for_acks

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

APP = "terminate-app"


WRITERS = 16
TERMINATIONS = 5


async def _terminate_backends(url: str) -> int:
    """``pg_terminate_backend`` every other connection to the database; return how many."""
    async with pg_connection(url) as conn:
        return int(
            await conn.fetchval(
                "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = current_database() AND backend_type = 'client backend' "
                "AND pid <> pg_backend_pid()"
            )
        )


async def test_terminated_backends_under_16_writers(
    fresh_pg_database: Callable[[], Coroutine[Any, Any, str]],
) -> None:
    """pg_terminate_backend x5 under 16 writers: typed errors, 0 acked lost, retries idempotent."""
    url = await fresh_pg_database()
    service = await adk_sessions.connect(url, max_size=WRITERS)
    tally = Tally()
    writers = [
        Writer(w, service, await service.create_session(app_name=APP, user_id=f"u{w}"), tally)
        for w in range(WRITERS)
    ]
    terminated = []
    stop = anyio.Event()
    try:
        with anyio.fail_after(120):
            async with anyio.create_task_group() as tg:
                for writer in writers:
                    tg.start_soon(writer.run, stop)
                since = 0.0
                for _ in range(TERMINATIONS):
                    await wait_for_acks(tally, WRITERS, since, 3, "every writer writing")
                    terminated.append(await _terminate_backends(url))
                    since = time.monotonic()
                await wait_for_acks(tally, WRITERS, since, 3, "every writer back")
                stop.set()
    finally:
        stop.set()
        with anyio.fail_after(60):  # a close stuck on a broken connection fails, never hangs
            await service.close()
    assert min(acks_since(tally, WRITERS, 0.0)) > 0
    await verify(
        url,
        APP,
        tally,
        writers,
        f"pg_terminate_backend figures: {TERMINATIONS} rounds ({terminated} backends), "
        f"{WRITERS} writers",
    )
