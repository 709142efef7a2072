"""Command line: ``python -m benchmarks [--quick] [--pg-dsn DSN] ...``."""

from __future__ import annotations

import argparse
import contextlib
import datetime
import importlib.metadata
import os
import pathlib
import platform
import sqlite3
import sys
import time
from typing import Any

import anyio

from adk_sessions import _dialects as dialects

from . import _floor, _pg, _report
from ._contenders import adk_wrapper_available, build_contenders
from ._events import spec_size
from ._runner import DEFAULT, QUICK, Progress, Sizes, run_backend, steps_per_backend


def _versions() -> dict[str, str]:
    out = {}
    for dist in ("adk-sessions", "google-adk", "sqlalchemy", "asyncpg", "aiosqlite", "anyio"):
        try:
            out[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            out[dist] = "checkout" if dist == "adk-sessions" else "not installed"
    out["sqlite"] = sqlite3.sqlite_version
    return out


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="adk_sessions vs google-adk session services vs a raw driver floor.",
    )
    p.add_argument("--quick", action="store_true", help="small sizes, 3 rounds (under a minute)")
    p.add_argument("--pg-dsn", help="PostgreSQL server to use (default: a throwaway cluster)")
    p.add_argument(
        "--citus-dsn",
        help="Citus coordinator to use for the citus backend (default: a throwaway coordinator "
        "and two workers, when Citus is installed into the PostgreSQL binaries)",
    )
    p.add_argument(
        "--backends",
        default=None,
        help="comma list of sqlite, postgres, citus (default: sqlite,postgres, and citus when "
        "--citus-dsn is given or Citus is installed)",
    )
    p.add_argument(
        "--contenders",
        help="comma list of ours, ours-adk, ours-adk-cache, adk-db, adk-sqlite, floor "
        "(default: all available)",
    )
    p.add_argument("--rounds", type=int, help="repetitions per workload (median reported)")
    p.add_argument("--pool-size", type=int, default=10, help="PostgreSQL connections per contender")
    p.add_argument("--no-growth", action="store_true", help="skip the 100 vs 100,000 events part")
    p.add_argument(
        "--sqlite-synchronous",
        choices=("NORMAL", "FULL"),
        default="NORMAL",
        help="SQLite synchronous level for every contender (default NORMAL; FULL is the "
        "default of both adk_sessions and google-adk)",
    )
    p.add_argument(
        "--no-turns",
        action="store_true",
        help="skip the google-adk Runner-turn workload and the event-cache memory measurement",
    )
    p.add_argument(
        "--output",
        default=None,
        help="path prefix for the .json and .png (default: bench-results/run-<time>)",
    )
    p.add_argument("--no-chart", action="store_true", help="do not draw the PNG")
    return p


async def _main(args: argparse.Namespace) -> dict[str, Any]:
    sizes = QUICK if args.quick else DEFAULT
    _floor.SQLITE_SYNCHRONOUS[0] = args.sqlite_synchronous
    if args.rounds:
        sizes = Sizes(**{**_asdict(sizes), "rounds": args.rounds})
    backends = [b.strip() for b in (args.backends or _default_backends(args)).split(",")]
    backends = [b for b in backends if b]
    only = set(args.contenders.split(",")) if args.contenders else None
    run: dict[str, Any] = {
        "meta": {
            "mode": "quick" if args.quick else "default",
            "started": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "versions": _versions(),
            "event_bytes": spec_size(),
            "sizes": _asdict(sizes),
            "pool_size": args.pool_size,
            "ours_adk": adk_wrapper_available(),
            "durability": {},
        },
        "backends": {},
    }
    if not run["meta"]["ours_adk"]:
        print(
            "note: adk_sessions.adk not importable; AdkSessionService is not measured",
            file=sys.stderr,
        )
    total = 0
    for b in backends:
        classes = build_contenders(b, only)
        n_growth = 0 if args.no_growth else sum(1 for c in classes if c.growth)
        total += steps_per_backend(sizes, len(classes), n_growth, not args.no_turns)
    progress = Progress(total)
    started = time.perf_counter()
    with contextlib.ExitStack() as stack:
        for backend in backends:
            admin: str | None = None
            if backend == "citus":
                progress.step("citus · starting coordinator and workers", advance=False)
                admin, source = stack.enter_context(_pg.citus_server(args.citus_dsn))
                settings = await _pg.durability_settings(admin, enforce=False)
                cluster = await _pg.citus_versions(admin)
                run["meta"]["durability"]["citus"] = {"server": source, **cluster, **settings}
                if settings["fsync"] != "on" or settings["synchronous_commit"] != "on":
                    print(
                        "WARNING: the Citus coordinator runs without fsync/synchronous_commit",
                        file=sys.stderr,
                    )
            elif backend == "postgres":
                progress.step("postgres · starting server", advance=False)
                admin, source = stack.enter_context(_pg.pg_server(args.pg_dsn))
                settings = await _pg.durability_settings(admin, enforce=args.pg_dsn is None)
                run["meta"]["durability"]["postgres"] = {"server": source, **settings}
                if settings["fsync"] != "on" or settings["synchronous_commit"] != "on":
                    print(
                        "WARNING: PostgreSQL runs without fsync/synchronous_commit; commit "
                        "costs are not durable ones",
                        file=sys.stderr,
                    )
            else:
                run["meta"]["durability"]["sqlite"] = {
                    "sqlite": sqlite3.sqlite_version,
                    "pragmas": f"journal_mode=WAL, synchronous={args.sqlite_synchronous}, "
                    "foreign_keys=ON (all)",
                }
            run["backends"][backend] = await run_backend(
                backend,
                sizes,
                admin_dsn=admin,
                pool_size=args.pool_size,
                only=only,
                progress=progress,
                growth=not args.no_growth,
                turns=not args.no_turns,
            )
    progress.finish()
    run["meta"]["seconds"] = round(time.perf_counter() - started, 1)
    run["targets"] = _report.targets(run)
    return run


def _default_backends(args: argparse.Namespace) -> str:
    from adk_sessions._pgcluster import find_citus_bindir

    citus = args.citus_dsn or find_citus_bindir() is not None
    return ",".join((*dialects.NAMES, "citus") if citus else dialects.NAMES)


def _asdict(sizes: Sizes) -> dict[str, Any]:
    import attrs

    return attrs.asdict(sizes)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and write the report.

    Args:
        argv: Arguments (default: ``sys.argv[1:]``).

    Returns:
        The exit status (0; a missed target is a result, not a failure).
    """
    args = _parser().parse_args(argv)
    run = anyio.run(_main, args)
    prefix = pathlib.Path(
        args.output or f"bench-results/run-{datetime.datetime.now():%Y%m%d-%H%M%S}"
    )
    json_path = prefix.with_suffix(".json")
    png_path = prefix.with_suffix(".png")
    print(_report.render(run))
    _report.write_json(run, json_path)
    print(f"\nJSON: {json_path}  ({run['meta']['seconds']}s)")
    if not args.no_chart:
        if _report.chart(run, png_path):
            print(f"chart: {png_path}")
        else:
            print("chart: skipped (pip install matplotlib, or the 'bench' extra)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
