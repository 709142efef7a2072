"""PostgreSQL SIGKILLed and restarted under 32 concurrent writers on one service object.

A throwaway cluster of this module's own (never the suite's shared server, never port 5432) is
crashed three times: the postmaster gets SIGKILL, every server process is gone, then the server
starts again on the same port and data directory (crash recovery). Each writer owns a session and
appends numbered events; an append that raises ``StorageUnavailableError`` is retried with the same
event on the same session object (idempotent retry) until it is acknowledged. Before each retry the
writer reads the session to learn whether the failed append had in fact committed (its reply lost),
so that the figures say how often that happened. Afterwards every acknowledged event is stored,
nothing is stored that was not acknowledged, and the invariants hold.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator

import anyio
import pytest

import adk_sessions
from adk_sessions._pgcluster import PgCluster, PostgresUnavailable, postgres_cluster

from .._pg import unavailable
from ._retrying import Tally, Writer, first_acks_since, verify, wait_for_acks

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

APP = "crash-app"
WRITERS = 32
CRASHES = 3
DOWN_SECONDS = 0.3  # the server stays dead this long before it is started again
# Seconds from the restarted server accepting connections to the first acknowledged append: the
# bound the test asserts. A quiet 2-core machine measures 0.02-0.3 s; a pool that backs off, waits
# for a connect timeout or never recovers takes far longer. The figures print the measured times.
RECOVERY_BOUND = 1.0
WARM_ACKS = 3  # every writer commits this many events between two crashes
TEST_DEADLINE = 180.0


@pytest.fixture(scope="module")
def cluster() -> Iterator[PgCluster]:
    """A PostgreSQL cluster of this module's own, from the machine's binaries, durable.

    Durability stays on: with ``synchronous_commit=off`` (the suite's shared server) a crash
    loses commits that were already acknowledged, by design of that setting.
    """
    with contextlib.ExitStack() as stack:
        try:
            server = stack.enter_context(postgres_cluster(fsync=True))
        except PostgresUnavailable as exc:
            unavailable("ADK_SESSIONS_REQUIRE_PG", f"no PostgreSQL binaries to crash: {exc}")
        yield server


def _user(writer: int) -> str:
    return f"u{writer % 4}"


async def test_postgres_killed_and_restarted_under_32_writers(cluster: PgCluster) -> None:
    """3 SIGKILL crashes under 32 writers: 0 acked lost, typed errors, the service recovers."""
    service = await adk_sessions.connect(cluster.dsn, max_size=WRITERS)
    tally = Tally()
    writers = [
        Writer(
            w,
            service,
            await service.create_session(app_name=APP, user_id=_user(w), session_id=f"w{w}"),
            tally,
        )
        for w in range(WRITERS)
    ]
    stop = anyio.Event()
    recoveries: list[tuple[float, float]] = []  # (first writer back, every writer back), seconds
    killed: list[int] = []
    try:
        with anyio.fail_after(TEST_DEADLINE):
            async with anyio.create_task_group() as tg:
                for writer in writers:
                    tg.start_soon(writer.run, stop)
                since = 0.0
                for _ in range(CRASHES):
                    await wait_for_acks(tally, WRITERS, since, WARM_ACKS, "every writer writing")
                    killed.append(await anyio.to_thread.run_sync(cluster.kill))
                    down = time.monotonic()
                    await anyio.sleep(DOWN_SECONDS)
                    await anyio.to_thread.run_sync(cluster.start)
                    up = time.monotonic()
                    await wait_for_acks(tally, WRITERS, down, 1, "every writer back")
                    firsts = first_acks_since(tally, WRITERS, down)
                    recoveries.append((max(min(firsts) - up, 0.0), max(max(firsts) - up, 0.0)))
                    since = up
                await wait_for_acks(tally, WRITERS, since, WARM_ACKS, "writes after the last")
                stop.set()
    finally:
        stop.set()
        with anyio.fail_after(60):  # a close stuck on a broken connection fails, never hangs
            await service.close()
    rounded = [(round(first, 3), round(every, 3)) for first, every in recoveries]
    figures = await verify(
        cluster.dsn,
        APP,
        tally,
        writers,
        f"PostgreSQL crash figures: {CRASHES} crashes ({killed} server processes killed), "
        f"{WRITERS} writers; recovery after each restart (first writer, every writer) {rounded} s",
    )
    assert all(first <= RECOVERY_BOUND for first, _ in recoveries), figures
