"""Profile one ``adk_sessions`` operation with cProfile: ``python -m benchmarks.profile``.

Examples::

    python -m benchmarks.profile --backend postgres --op append -n 2000
    python -m benchmarks.profile --backend sqlite --op get_full --pg-dsn ...
    python -m benchmarks.profile --api adk --op get_full       # through AdkSessionService

Only the event-loop thread is profiled: on SQLite the statements themselves run in aiosqlite's
worker thread and show up as time waiting on futures.

With ``--api adk --op get_full`` it also prints, measured without the profiler, how much of a
1,000-event ``get_session`` google-adk's own validation takes (``Event.model_validate_json`` of
the stored events, which every google-adk store pays): the bound of that read with the cache off.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import gc
import pstats
import statistics
import sys
import tempfile
import time
from typing import Any

import anyio

from adk_sessions import _dialects as dialects

from . import _pg
from ._contenders import OursAdk, OursCore
from ._events import event_spec

HISTORY = 1000


async def _validation_split(c: Any, handle: Any, rounds: int) -> None:
    """Print a get's time, the validation of its events alone, and the share."""
    from google.adk.events import Event

    core = c.service.service
    stored = await core._get_stored_session(
        app_name=handle.app_name, user_id=handle.user_id, session_id=handle.id
    )
    texts = stored.events
    gets, validations = [], []
    gc.collect()
    gc.freeze()  # as the benchmark does: collections cost what the read allocates, no more
    for _ in range(rounds):
        started = time.perf_counter()
        await c.get(handle, None)
        gets.append(time.perf_counter() - started)
        started = time.perf_counter()
        events = [Event.model_validate_json(text) for text in texts]  # kept, as a read keeps them
        validations.append(time.perf_counter() - started)
        del events
    get_ms = 1000 * statistics.median(gets)
    validation_ms = 1000 * statistics.median(validations)
    print(
        f"AdkSessionService.get_session of {len(texts):,} events: {get_ms:.2f} ms (median of "
        f"{rounds}); google-adk's Event.model_validate_json of the same events alone: "
        f"{validation_ms:.2f} ms = {100 * validation_ms / get_ms:.0f}% of the read, "
        f"{1000 * validation_ms / len(texts):.1f} us per event"
    )


async def _run(args: argparse.Namespace, admin: str | None, tmp: str) -> pstats.Stats:
    async with contextlib.AsyncExitStack() as stack:
        if args.backend == "postgres":
            assert admin is not None
            location = await stack.enter_async_context(_pg.fresh_database(admin, "profile"))
        else:
            location = f"{tmp}/profile.db"
        c: Any = (OursAdk if args.api == "adk" else OursCore)(args.backend, location, 10)
        await c.open()
        stack.push_async_callback(c.close)
        handle: Any = await c.create("u", "s", {"plan": "free"})
        history = HISTORY if args.op.startswith("get") else 20
        for i in range(history):
            await c.append(handle, c.make_event(event_spec(i)))
        events = [c.make_event(event_spec(i)) for i in range(args.n)]
        if args.api == "adk" and args.op == "get_full":
            await _validation_split(c, handle, max(args.n // 20, 5))
        profiler = cProfile.Profile()
        profiler.enable()
        if args.op == "append":
            for ev in events:
                await c.append(handle, ev)
        else:
            recent = None if args.op == "get_full" else 20
            for _ in range(args.n if recent else max(args.n // 20, 1)):
                await c.get(handle, recent)
        profiler.disable()
        return pstats.Stats(profiler, stream=sys.stdout)


def main() -> None:
    """Parse arguments, run, print the top functions by cumulative and own time."""
    p = argparse.ArgumentParser(prog="python -m benchmarks.profile")
    p.add_argument("--backend", choices=dialects.NAMES, default="postgres")
    p.add_argument("--op", choices=("append", "get_full", "get_recent"), default="append")
    p.add_argument(
        "--api", choices=("core", "adk"), default="core", help="core API or AdkSessionService"
    )
    p.add_argument("-n", type=int, default=2000, help="operations (get_full: n/20)")
    p.add_argument("--pg-dsn")
    p.add_argument("--top", type=int, default=30)
    args = p.parse_args()
    with contextlib.ExitStack() as stack:
        admin = None
        if args.backend == "postgres":
            admin, _ = stack.enter_context(_pg.pg_server(args.pg_dsn))
        tmp = stack.enter_context(tempfile.TemporaryDirectory())
        stats = anyio.run(_run, args, admin, tmp)
    stats.sort_stats("cumulative").print_stats(args.top)
    stats.sort_stats("tottime").print_stats(args.top)


if __name__ == "__main__":
    main()
