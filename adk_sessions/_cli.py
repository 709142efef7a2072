"""The ``adk-sessions`` command: migrate, status, demo (and the integrations' commands)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

import anyio

from . import __version__, _serve
from ._connect import DEFAULT_URL, connect, redact, sqlite_location
from ._import_adk import add_import_parser, run_import
from ._models import Event, EventActions, Session
from ._service import SessionService
from .errors import AdkSessionsError, InvalidArgumentError

__all__ = ("main",)


async def _migrate(url: str) -> int:
    async with connect(url, migrate=False) as service:
        applied = await service.migrate()
        version = await service.schema_version()
    print(f"{redact(url)}: schema at version {version}; applied {applied or 'nothing'}")
    return 0


async def _status(url: str) -> int:
    async with connect(url, migrate=False) as service:
        status = await service.status()
    print(json.dumps({"url": redact(url), "dialect": service.dialect, **status}, indent=2))
    return 0


def _backup(url: str, destination: str) -> int:
    from ._sqlite import backup_file

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


def _show(session: Session) -> None:
    print(
        f"\n== session {session.id!r} of user {session.user_id!r} "
        f"(revision {session.revision}, {len(session.events)} events)"
    )
    for event in session.events:
        text = " ".join(p.get("text", "") for p in (event.content or {}).get("parts", []))
        delta = event.actions.state_delta
        print(f"  {event.author:>8}: {text}" + (f"   state_delta={delta}" if delta else ""))
    print(f"  state: {json.dumps(session.state, sort_keys=True)}")


async def _demo(url: str) -> int:
    async with connect(url) as service:
        print(f"adk-sessions {__version__} demo on {redact(url)} ({service.dialect})")
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
        in_hand = sessions["alice/trip"]
        print("\nIn the caller's hands, temp: keys stay visible for the invocation:")
        print(f"  temp:draft = {in_hand.state.get('temp:draft')!r}")
        print("\nRead back from storage (temp: keys were never stored):")
        for live in sessions.values():
            stored = await service.get_session(
                app_name="demo", user_id=live.user_id, session_id=live.id
            )
            assert stored is not None
            _show(stored)
        await _print_scopes(service)
        listed = await service.list_sessions(app_name="demo")
        print(
            f"\n{len(listed.sessions)} sessions in app 'demo' in this database "
            f"(the demo adds two on every run)."
        )
    return 0


async def _print_scopes(service: SessionService) -> None:
    print("\nState scopes:")
    print(f"  app   'demo'  : {await service.get_app_state(app_name='demo')}")
    for user in ("alice", "bob"):
        state = await service.get_user_state(app_name="demo", user_id=user)
        print(f"  user  {user!r:8}: {state}")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="adk-sessions", description="Durable session store for agent runtimes."
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("migrate", help="create or upgrade the schema")
    p.add_argument("url", help="database URL (sqlite:///file.db, postgresql://...)")
    p = sub.add_parser("status", help="print the schema version and row counts")
    p.add_argument("url", help="database URL")
    p = sub.add_parser("demo", help="write a short multi-user conversation and print it back")
    p.add_argument("url", nargs="?", default=DEFAULT_URL, help=f"database URL ({DEFAULT_URL})")
    p = sub.add_parser(
        "backup",
        help="copy a SQLite database into one self-contained file (safe while others write)",
    )
    p.add_argument("url", help="the database (sqlite:///file.db)")
    p.add_argument("destination", help="the file to write (replaced if it exists)")
    _serve.add_serve_parser(sub)
    add_import_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line.

    Args:
        argv: Arguments without the program name (default: ``sys.argv[1:]``).

    Returns:
        The exit status.
    """
    args = _parser().parse_args(argv)
    if args.command == "serve":
        return _serve.serve_command(args)
    if args.command == "import-adk":
        return run_import(args)
    commands = {"migrate": _migrate, "status": _status, "demo": _demo}
    try:
        if args.command == "backup":
            return _backup(args.url, args.destination)
        return anyio.run(commands[args.command], args.url)
    except AdkSessionsError as exc:
        print(f"adk-sessions {args.command}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
