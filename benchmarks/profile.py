"""Profile one ``adk_sessions`` operation with cProfile: ``python -m benchmarks.profile``.

Examples::

    python -m benchmarks.profile --backend postgres --op append -n 2000
    python -m benchmarks.profile --backend sqlite --op get_full --pg-dsn ...

Only the event-loop thread is profiled: on SQLite the statements themselves run in aiosqlite's
worker thread and show up as time waiting on futures.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import pstats
import sys
import tempfile
from typing import Any

import anyio

from . import _pg
from ._contenders import OursCore
from ._events import event_spec


async def _run(args: argparse.Namespace, admin: str | None, tmp: str) -> pstats.Stats:
    async with contextlib.AsyncExitStack() as stack:
        if args.backend == "postgres":
            assert admin is not None
            location = await stack.enter_async_context(_pg.fresh_database(admin, "profile"))
        else:
            location = f"{tmp}/profile.db"
        c = OursCore(args.backend, location, 10)
        await c.open()
        stack.push_async_callback(c.close)
        handle: Any = await c.create("u", "s", {"plan": "free"})
        history = 1000 if args.op.startswith("get") else 20
        for i in range(history):
            await c.append(handle, c.make_event(event_spec(i)))
        events = [c.make_event(event_spec(i)) for i in range(args.n)]
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
    p.add_argument("--backend", choices=("sqlite", "postgres"), default="postgres")
    p.add_argument("--op", choices=("append", "get_full", "get_recent"), default="append")
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
