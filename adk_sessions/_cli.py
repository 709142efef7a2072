"""The ``adk-sessions`` command: migrate, status, demo, backup, prune (and the integrations').

Read-only commands (``status``, ``prune --dry-run``, ``backup``) never create a database, and
``prune`` never creates one either: a SQLite file is opened with ``mode=ro``/``mode=rw``, a
PostgreSQL database without migrating.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import re
import signal
import sys
import time
from collections.abc import Sequence
from typing import Any

import anyio

from . import __version__, _serve
from ._connect import DEFAULT_URL, connect, redact, sqlite_location
from ._import_adk import add_import_parser, holds_google_adk_tables, run_import
from ._models import Event, EventActions, Session
from ._progress import bar
from ._service import DEFAULT_BATCH_SIZE, SessionService
from .errors import AdkSessionsError, InvalidArgumentError

__all__ = ("main",)


class _Refused(Exception):
    """The command cannot run on this database (exit status 2): the message says why."""


async def _migrate(url: str) -> int:
    async with connect(url, migrate=False) as service:
        applied = await service.migrate()
        version = await service.schema_version()
    print(f"{redact(url)}: schema at version {version}; applied {applied or 'nothing'}")
    return 0


async def _open_existing(url: str, *, command: str, read_only: bool) -> SessionService:
    """Open a database that exists and holds adk-sessions' tables; never create or migrate one.

    SQLite files are opened with ``mode=ro`` (``read_only``) or ``mode=rw``: a missing file is
    never created.

    Raises:
        _Refused: No such SQLite file, or no adk-sessions tables (with a hint to ``import-adk``
            when the database holds google-adk's own tables).
    """
    options: dict[str, Any] = {}
    sqlite = sqlite_location(url)
    if sqlite is not None and sqlite[0] != ":memory:":
        path = sqlite[0]
        if not await anyio.Path(path).is_file():
            raise _Refused(
                f"no SQLite database at {path!r} ({command} never creates one); check the "
                f"path, or create the database with: adk-sessions migrate {url}"
            )
        options["mode"] = "ro" if read_only else "rw"
    service = await connect(url, migrate=False, **options)
    try:
        version = await service.schema_version()
        if version == 0:
            if await holds_google_adk_tables(url):
                raise _Refused(
                    f"{redact(url)} holds google-adk's own session tables, not adk-sessions' "
                    "(is a services.yaml/services.py recipe misspelled?); copy them with: "
                    f"adk-sessions import-adk {redact(url)} TARGET_URL"
                )
            raise _Refused(
                f"{redact(url)} has no adk-sessions tables; create them with: "
                f"adk-sessions migrate {redact(url)}"
            )
    except BaseException:
        await service.close()
        raise
    return service


async def _status(url: str) -> int:
    async with await _open_existing(url, command="status", read_only=True) as service:
        status = await service.status()
    print(json.dumps({"url": redact(url), "dialect": service.dialect, **status}, indent=2))
    return 0


def _backup(url: str, destination: str) -> int:
    from ._dialects.sqlite import backup_file

    sqlite = sqlite_location(url)
    if sqlite is None:
        raise InvalidArgumentError(
            f"backup copies SQLite databases, not {redact(url)!r}; for PostgreSQL use pg_dump"
        )
    path, query = sqlite
    if query or path == ":memory:":
        raise InvalidArgumentError("backup takes a plain sqlite:///path.db URL")
    backup_file(path, destination)
    print(f"{redact(url)}: copied to {destination}")
    return 0


_AGE = re.compile(r"(\d+(?:\.\d+)?)([smhd])")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def _age(text: str) -> float:
    """``--older-than``: a number with a unit, ``s``, ``m``, ``h`` or ``d`` (``30d``)."""
    match = _AGE.fullmatch(text.strip())
    if match is None:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an age: write a number and a unit, s, m, h or d (e.g. 30d, 12h)"
        )
    return float(match.group(1)) * _UNIT_SECONDS[match.group(2)]


def _batch_size(text: str) -> int:
    try:
        size = int(text)
    except ValueError:
        size = 0
    if size < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive integer")
    return size


async def _prune(args: argparse.Namespace) -> int:
    cutoff = time.time() - args.older_than
    async with await _open_existing(args.url, command="prune", read_only=args.dry_run) as service:
        apps = [args.app] if args.app is not None else await service.list_apps()
        counts = {
            app: await service.count_sessions(
                app_name=app, user_id=args.user, updated_before=cutoff
            )
            for app in apps
        }
        total = sum(counts.values())
        moment = datetime.datetime.fromtimestamp(cutoff, datetime.timezone.utc)
        scope = f"app {args.app!r}" if args.app is not None else f"{len(apps)} app(s)"
        if args.user is not None:
            scope += f", user {args.user!r}"
        if args.dry_run:
            print(
                f"prune: would delete {total} session(s) of {scope} last updated before "
                f"{moment:%Y-%m-%d %H:%M:%S} UTC (dry run, nothing deleted)",
                file=sys.stderr,
            )
            print(total)
            return 0
        deleted = 0
        with bar(what="prune", total=total, unit="sessions", stream=sys.stderr) as progress:

            def advance(count: int) -> None:
                progress.update(count)

            for app in apps:
                if counts[app]:
                    deleted += await service.delete_sessions(
                        app_name=app,
                        user_id=args.user,
                        updated_before=cutoff,
                        batch_size=args.batch_size,
                        progress=advance,
                    )
    print(
        f"prune: deleted {deleted} session(s) of {scope} last updated before "
        f"{moment:%Y-%m-%d %H:%M:%S} UTC, with their events; app and user state kept",
        file=sys.stderr,
    )
    print(deleted)
    return 0


# A short scripted conversation: (user, session, author, text, state delta).
_SCRIPT: list[tuple[str, str, str, str, dict[str, object]]] = [
    ("alice", "trip", "user", "Plan a weekend in Lisbon.", {}),
    (
        "alice",
        "trip",
        "planner",
        "Booked: 2 nights in Alfama.",
        {"destination": "Lisbon", "user:home_city": "Berlin", "temp:draft": "3 options"},
    ),
    ("bob", "recipes", "user", "Something vegetarian tonight?", {}),
    (
        "bob",
        "recipes",
        "chef",
        "Mushroom risotto, 35 minutes.",
        {"dish": "risotto", "user:diet": "vegetarian", "app:dishes_suggested": 1},
    ),
    ("alice", "trip", "user", "Add a fado show on Saturday.", {}),
    (
        "alice",
        "trip",
        "planner",
        "Fado at 21:00, Saturday.",
        {"evening": "fado", "app:bookings_made": 1},
    ),
]


def _scope(key: str, user: str) -> str:
    """Where a state_delta key goes, in words."""
    if key.startswith("app:"):
        return "app scope: every session of app 'demo'"
    if key.startswith("user:"):
        return f"user scope: every session of {user}"
    if key.startswith("temp:"):
        return "temp: this invocation only, never stored"
    return "session scope: this session only"


def _text(event: Event) -> str:
    return " ".join(p.get("text", "") for p in (event.content or {}).get("parts", []))


async def _demo(url: str) -> int:
    async with connect(url) as service:
        print(f"adk-sessions {__version__} demo: app 'demo' on {redact(url)} ({service.dialect})")
        print("\n1. The conversation. Each state_delta key goes to the scope its prefix names:")
        sessions: dict[str, Session] = {}
        for user, name, author, text, delta in _SCRIPT:
            key = f"{user}/{name}"
            if key not in sessions:
                sessions[key] = await service.create_session(app_name="demo", user_id=user)
            event = Event(
                author=author,
                invocation_id=f"inv-{name}",
                content={
                    "role": "user" if author == "user" else "model",
                    "parts": [{"text": text}],
                },
                actions=EventActions(state_delta=delta),
            )
            await service.append_event(sessions[key], event)
            print(f"   {key:<14} {author:>7}: {text}")
            for name_, value in delta.items():
                assignment = f"{name_} = {value!r}"
                print(f"   {'':<24}{assignment:<32} -> {_scope(name_, user)}")
        in_hand = sessions["alice/trip"]
        print(
            "\n2. alice/trip in the caller's hands after the appends. temp:draft (from the "
            "planner's\n   first reply above) stays visible there for the rest of the invocation:"
        )
        print(f"   {json.dumps(in_hand.state, sort_keys=True)}")
        print(
            "\n3. Read back from storage: temp:draft was never stored; app: and user: keys "
            "come from\n   their scopes, shared with the other sessions:"
        )
        for key, live in sessions.items():
            stored = await service.get_session(
                app_name="demo", user_id=live.user_id, session_id=live.id
            )
            assert stored is not None
            print(f"   {key:<14} revision {stored.revision}, {len(stored.events)} events:")
            print(f"   {'':<14} {json.dumps(stored.state, sort_keys=True)}")
        print("\n4. The scopes as stored (keys without their prefix):")
        print(f"   app  'demo' : {await service.get_app_state(app_name='demo')}")
        for user in ("alice", "bob"):
            state = await service.get_user_state(app_name="demo", user_id=user)
            print(f"   user {user!r:<7}: {state}")
        listed = await service.list_sessions(app_name="demo")
        print(
            f"\n{len(listed.sessions)} sessions in app 'demo' in this database "
            "(the demo adds two on every run)."
        )
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="adk-sessions", description="Durable session store for agent runtimes."
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("migrate", help="create or upgrade the schema")
    p.add_argument("url", help="database URL (sqlite:///file.db, postgresql://...)")
    p = sub.add_parser(
        "status",
        help="print the schema version and row counts (read-only: never creates a database)",
    )
    p.add_argument("url", help="database URL")
    p = sub.add_parser("demo", help="write a short multi-user conversation and print it back")
    p.add_argument("url", nargs="?", default=DEFAULT_URL, help=f"database URL ({DEFAULT_URL})")
    p = sub.add_parser(
        "backup",
        help="copy a SQLite database into one self-contained file (safe while others write)",
    )
    p.add_argument("url", help="the database (sqlite:///file.db)")
    p.add_argument("destination", help="the file to write (replaced if it exists)")
    p = sub.add_parser(
        "prune",
        help="delete sessions (with their events) not updated for a while; state is kept",
        description=(
            "Delete the sessions last updated longer ago than --older-than, with their "
            "events, in batches of short transactions (agents keep appending meanwhile). App "
            "and user state are kept. Progress goes to stderr, the number of sessions deleted "
            "(or, with --dry-run, that would be) to stdout. Never creates a database."
        ),
    )
    p.add_argument("url", help="database URL")
    p.add_argument(
        "--older-than",
        required=True,
        type=_age,
        metavar="AGE",
        help="minimum time since the last update: a number and s, m, h or d (e.g. 30d)",
    )
    p.add_argument("--app", help="only this app (default: every app)")
    p.add_argument("--user", help="only this user's sessions")
    p.add_argument(
        "--dry-run", action="store_true", help="only count what would be deleted (read-only)"
    )
    p.add_argument(
        "--batch-size",
        type=_batch_size,
        default=DEFAULT_BATCH_SIZE,
        metavar="N",
        help=f"sessions deleted per transaction ({DEFAULT_BATCH_SIZE})",
    )
    _serve.add_serve_parser(sub)
    add_import_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line.

    Args:
        argv: Arguments without the program name (default: ``sys.argv[1:]``).

    Returns:
        The exit status: 0 done, 1 failed (the reason on stderr), 2 a usage error or a
        database the command cannot work on (missing, or without adk-sessions tables), 130
        interrupted, 141 standard output closed early (``adk-sessions demo | head``).
    """
    try:
        status = _run(_parser().parse_args(argv))
        sys.stdout.flush()  # a closed pipe shows here, not at interpreter exit
    except BrokenPipeError:
        # The reader went away (| head): stop quietly, as other commands do, and keep Python
        # from failing again when it flushes standard output at exit.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        return 128 + signal.SIGPIPE
    return status


def _run(args: argparse.Namespace) -> int:
    if args.command == "serve":
        return _serve.serve_command(args)
    if args.command == "import-adk":
        return run_import(args)
    try:
        if args.command == "backup":
            return _backup(args.url, args.destination)
        if args.command == "prune":
            return anyio.run(_prune, args)
        commands = {"migrate": _migrate, "status": _status, "demo": _demo}
        return anyio.run(commands[args.command], args.url)
    except _Refused as exc:
        print(f"adk-sessions {args.command}: {exc}", file=sys.stderr)
        return 2
    except AdkSessionsError as exc:
        print(f"adk-sessions {args.command}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
