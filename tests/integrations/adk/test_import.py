"""``import-adk`` copies databases written by google-adk's own session services, idempotently."""

from __future__ import annotations

import argparse
import contextlib
import datetime
import hashlib
import pickle
import sqlite3
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Literal

import attrs
import pytest
import sqlalchemy
from google.adk.events import Event, EventActions
from google.adk.runners import Runner
from google.adk.sessions import BaseSessionService
from google.adk.sessions.database_session_service import DatabaseSessionService
from google.adk.sessions.schemas import v0 as adk_schema_v0
from google.adk.sessions.sqlite_session_service import SqliteSessionService
from google.genai import types
from sqlalchemy.ext.asyncio import create_async_engine

import adk_sessions
from adk_sessions._import_adk import (
    ImportCounts,
    StateConflictError,
    add_import_parser,
    import_adk,
)
from adk_sessions.adk import AdkSessionService
from adk_sessions.errors import InvalidArgumentError

from ._scripted import APP, make_agent, run_turn

pytestmark = [
    pytest.mark.anyio,
    # google-adk's own SqliteSessionService (used here to write source databases) binds "?1"
    # placeholders with a sequence, which Python 3.12+ deprecates; not our code.
    pytest.mark.filterwarnings("ignore:Binding .* is a named parameter:DeprecationWarning"),
]

LAYOUTS = {
    "database-sqlite": "v1",
    "database-postgres": "v1",
    "database-v0-sqlite": "v0",
    "database-v0-postgres": "v0",
    "sqlite-service": "sqlite-service",
}


async def _create_legacy_tables(adk_url: str) -> None:
    """Create the legacy (v0) tables, with the installed google-adk's own v0 schema module.

    That is the layout google-adk 1.19-1.21 created; every later release detects it and goes on
    writing v0 rows (pickled actions) into such a database.
    """
    engine = create_async_engine(adk_url)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(adk_schema_v0.Base.metadata.create_all)
    finally:
        await engine.dispose()


async def _source(
    kind: str, tmp_path: Path, fresh_pg_database: Callable[[], Awaitable[str]]
) -> tuple[BaseSessionService, str]:
    """A google-adk service of the given kind and the URL import-adk reads it from."""
    if kind.startswith("database-"):
        if kind.endswith("-sqlite"):
            path = tmp_path / "adk_database.db"
            adk_url, url = f"sqlite+aiosqlite:///{path}", f"sqlite:///{path}"
        else:
            url = await fresh_pg_database()
            adk_url = url.replace("postgresql://", "postgresql+asyncpg://", 1)
        if "-v0-" in kind:
            await _create_legacy_tables(adk_url)
        return DatabaseSessionService(db_url=adk_url), url
    path = tmp_path / "adk_sqlite.db"
    return SqliteSessionService(db_path=str(path)), str(path)


async def _layout(url: str) -> str:
    """Which google-adk layout a source database has: "v0", "v1" or "sqlite-service"."""
    if "://" not in url:
        url = f"sqlite:///{url}"
    scheme, rest = url.split("://", 1)
    driver = "aiosqlite" if scheme == "sqlite" else "asyncpg"
    engine = create_async_engine(f"{scheme}+{driver}://{rest}")

    def inspect(conn: sqlalchemy.Connection) -> tuple[set[str], set[str]]:
        inspector = sqlalchemy.inspect(conn)
        columns = {column["name"] for column in inspector.get_columns("events")}
        return set(inspector.get_table_names()), columns

    try:
        async with engine.connect() as conn:
            tables, columns = await conn.run_sync(inspect)
    finally:
        await engine.dispose()
    if "actions" in columns:
        return "v0"
    return "v1" if "adk_internal_metadata" in tables else "sqlite-service"


# The rich event's time has digits below the microsecond, which google-adk's time columns lack.
RICH_TIME = int(time.time()) + 0.1234567


async def _populate(service: BaseSessionService) -> None:
    """Conversations of two users through a real Runner, rich events, a deleted session."""
    runner = Runner(app_name=APP, agent=make_agent(), session_service=service)
    for user, amounts in (("ann", [1, 2]), ("bob", [5])):
        session = await service.create_session(
            app_name=APP, user_id=user, state={"user:name": user.title(), "topic": "counting"}
        )
        for amount in amounts:
            await run_turn(runner, user, session.id, f"bump {amount}")
    rich = await service.create_session(app_name=APP, user_id="ann", session_id="rich")
    await service.append_event(
        rich,
        Event(
            invocation_id="inv-rich",
            author="user",
            timestamp=RICH_TIME,
            content=types.Content(
                role="user",
                parts=[
                    types.Part(text="a picture"),
                    types.Part(inline_data=types.Blob(mime_type="image/png", data=b"\x89PNG\x00")),
                ],
            ),
            custom_metadata={"source": "import test"},
            long_running_tool_ids={"call-1"},
            actions=EventActions(state_delta={"seen": True, "app:pictures": 1}),
        ),
    )
    gone = await service.create_session(app_name=APP, user_id="cat", state={"user:likes": ["fish"]})
    await service.delete_session(app_name=APP, user_id="cat", session_id=gone.id)
    await service.create_session(app_name="other_app", user_id="ann", state={"app:mode": "x"})


async def _snapshot(
    service: BaseSessionService, *, microseconds: bool = False
) -> dict[tuple[str, str, str], Any]:
    """Every session of both apps, as google-adk-shaped values (marker and time left out).

    With ``microseconds``, event times are cut to what a time column holds.
    """
    out = {}
    for app_name in (APP, "other_app"):
        for listed in (await service.list_sessions(app_name=app_name)).sessions:
            full = await service.get_session(
                app_name=app_name, user_id=listed.user_id, session_id=listed.id
            )
            assert full is not None
            events = full.events
            if microseconds:
                events = [
                    event.model_copy(update={"timestamp": _column_time(event.timestamp)})
                    for event in events
                ]
            out[(app_name, full.user_id, full.id)] = (full.state, events)
    return out


def _column_time(timestamp: float) -> float:
    """The time google-adk's ``timestamp`` column keeps of an event time (microseconds)."""
    return datetime.datetime.fromtimestamp(timestamp, tz=datetime.timezone.utc).timestamp()


async def _close(service: BaseSessionService) -> None:
    """Close google-adk's service (SqliteSessionService has no close() before 2.x)."""
    close = getattr(service, "close", None)
    if close is not None:
        await close()


def _digests(folder: Path) -> dict[str, str]:
    """SHA-256 of every google-adk SQLite file in the folder (the import must not change them)."""
    return {
        path.name: hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.glob("adk_*.db*"))
    }


@pytest.mark.parametrize("kind", LAYOUTS)
async def test_import_reads_back_equal_and_reruns_copy_nothing(
    kind: str,
    db_url: str,
    tmp_path: Path,
    fresh_pg_database: Callable[[], Awaitable[str]],
) -> None:
    """Every session, event and state scope is copied once; the source stays untouched."""
    adk, source_url = await _source(kind, tmp_path, fresh_pg_database)
    await _populate(adk)
    # google-adk before 2.7 reads a v1 event's time from the time column, later releases (and
    # import-adk) from the event's JSON; a v0 event has only the column.
    rich = await adk.get_session(app_name=APP, user_id="ann", session_id="rich")
    assert rich is not None
    adk_reads_column = rich.events[0].timestamp != RICH_TIME
    assert rich.events[0].timestamp == (_column_time(RICH_TIME) if adk_reads_column else RICH_TIME)
    assert adk_reads_column or LAYOUTS[kind] != "v0"
    expected = await _snapshot(adk, microseconds=adk_reads_column and LAYOUTS[kind] != "v0")
    if hasattr(adk, "get_user_state"):  # google-adk 2.6.0 and later
        ann_state = await adk.get_user_state(app_name=APP, user_id="ann")
        cat_state = await adk.get_user_state(app_name=APP, user_id="cat")
    else:  # the user: keys of ann's sessions; cat's only session is deleted
        ann_state = {
            key.removeprefix("user:"): value
            for (_, user, _), (state, _) in expected.items()
            if user == "ann"
            for key, value in state.items()
            if key.startswith("user:")
        }
        cat_state = {"likes": ["fish"]}
    assert await _layout(source_url) == LAYOUTS[kind]
    await _close(adk)
    before = _digests(tmp_path)

    progress: list[tuple[int, int, int]] = []
    counts = await import_adk(source_url, db_url, progress=lambda *args: progress.append(args))
    assert counts == ImportCounts(
        app_states=2, user_states=3, sessions=4, events=2 * 4 + 4 + 1, skipped_sessions=0
    )
    assert progress[0] == (0, 4, 0) and progress[-1] == (4, 4, 13)
    assert _digests(tmp_path) == before

    exact_time = _column_time(RICH_TIME) if LAYOUTS[kind] == "v0" else RICH_TIME
    async with AdkSessionService(db_url) as ours:
        imported = await ours.get_session(app_name=APP, user_id="ann", session_id="rich")
        assert imported is not None and imported.events[0].timestamp == exact_time
        microseconds = adk_reads_column and LAYOUTS[kind] != "v0"
        assert await _snapshot(ours, microseconds=microseconds) == expected
        assert await ours.get_user_state(app_name=APP, user_id="ann") == ann_state
        assert (
            await ours.get_user_state(app_name=APP, user_id="cat")
            == cat_state
            == {"likes": ["fish"]}
        )
        assert await ours.get_app_state(app_name=APP) == {"total": 8, "pictures": 1}

    again = await import_adk(source_url, db_url)
    assert again == ImportCounts(skipped_sessions=4)
    async with AdkSessionService(db_url) as ours:
        assert await _snapshot(ours, microseconds=microseconds) == expected


async def test_command_prints_progress_and_summary(
    tmp_path: Path, db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """The import-adk command line reports progress on stderr and the counts on stdout."""
    source = tmp_path / "adk_sqlite.db"
    adk = SqliteSessionService(db_path=str(source))
    await adk.create_session(app_name=APP, user_id="ann", state={"user:k": 1})
    await _close(adk)
    parser = argparse.ArgumentParser(prog="adk-sessions")
    add_import_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["import-adk", f"sqlite:///{source}", db_url])
    status = await _run_in_thread(args)
    out, err = capsys.readouterr()
    assert status == 0
    assert out.strip() == (
        "imported 0 app states, 1 user state, 1 session, 0 events; skipped 0 existing sessions"
    )
    assert "1/1 sessions" in err


async def _run_in_thread(args: argparse.Namespace) -> int:
    """args.func runs its own event loop, so call it from a worker thread."""
    import anyio.to_thread

    result: int = await anyio.to_thread.run_sync(args.func, args)
    return result


async def test_not_an_adk_database_is_refused(tmp_path: Path, db_url: str) -> None:
    """A SQLite file without google-adk's tables is refused before anything is written."""
    empty = tmp_path / "empty.db"
    empty.write_bytes(b"")
    with pytest.raises(InvalidArgumentError, match="not a google-adk session database"):
        await import_adk(str(empty), db_url)
    with pytest.raises(InvalidArgumentError, match="no SQLite database"):
        await import_adk(str(tmp_path / "missing.db"), db_url)


class _Code:
    """Unpickles into a call of ``print``: code, not data."""

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (print, ("unpickled",))


async def _legacy_source(tmp_path: Path) -> Path:
    """A v0 SQLite database with one session ("s") and one event, written by google-adk."""
    path = tmp_path / "adk_v0.db"
    adk_url = f"sqlite+aiosqlite:///{path}"
    await _create_legacy_tables(adk_url)
    adk = DatabaseSessionService(db_url=adk_url)
    session = await adk.create_session(app_name=APP, user_id="ann", session_id="s")
    await adk.append_event(session, Event(invocation_id="inv", author="user"))
    await _close(adk)
    return path


@pytest.mark.parametrize(
    ("actions", "refusal"),
    [
        (pickle.dumps(_Code()), "refused to load builtins.print"),
        (pickle.dumps({"k": 1}), "a pickled action holds a dict"),
        (b"not a pickle", "UnpicklingError"),
    ],
)
async def test_legacy_actions_that_are_not_event_actions_are_refused(
    tmp_path: Path, db_url: str, actions: bytes, refusal: str
) -> None:
    """A v0 event whose actions hold code, no EventActions or no pickle is refused, not run."""
    path = await _legacy_source(tmp_path)
    with contextlib.closing(sqlite3.connect(path)) as conn, conn:
        conn.execute("UPDATE events SET actions = ?", (actions,))
    with pytest.raises(InvalidArgumentError, match=f"event .* of session 's'.*{refusal}"):
        await import_adk(str(path), db_url)
    async with AdkSessionService(db_url) as ours:
        assert await ours.get_session(app_name=APP, user_id="ann", session_id="s") is None


async def test_legacy_source_without_google_adk_is_refused(
    tmp_path: Path, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without google-adk installed a v0 source is refused up front, naming the extra."""
    path = await _legacy_source(tmp_path)
    # As if google-adk were missing: importing the compatibility module fails.
    monkeypatch.delattr(adk_sessions, "_adk_compat")
    monkeypatch.setitem(sys.modules, "adk_sessions._adk_compat", None)
    with pytest.raises(InvalidArgumentError, match=r"legacy schema \(v0\).*adk-sessions\[adk\]"):
        await import_adk(str(path), db_url)
    async with AdkSessionService(db_url) as ours:
        assert (await ours.list_sessions(app_name=APP)).sessions == []


async def _adk_source(tmp_path: Path) -> str:
    """A google-adk SqliteSessionService database with app state {"total": 8, "pictures": 1}
    and user state for ann ({"name": "Ann"}), bob and cat."""
    path = tmp_path / "adk_sqlite.db"
    adk = SqliteSessionService(db_path=str(path))
    await _populate(adk)
    await _close(adk)
    return str(path)


async def _target_with_state(url: str) -> None:
    """A target whose agents already wrote app:total=3, app:mine and user:name for ann."""
    async with AdkSessionService(url) as ours:
        await ours.create_session(
            app_name=APP,
            user_id="ann",
            session_id="target-own",
            state={"app:total": 3, "app:mine": "x", "user:name": "Annie"},
        )


async def test_conflicting_state_is_refused_and_nothing_written(
    tmp_path: Path, db_url: str
) -> None:
    """A target holding other values for the source's state keys: the import refuses before
    writing anything, naming the keys and both values."""
    source = await _adk_source(tmp_path)
    await _target_with_state(db_url)
    with pytest.raises(StateConflictError) as refused:
        await import_adk(source, db_url)
    assert "2 state key(s)" in str(refused.value) and "--overwrite-state" in str(refused.value)
    assert sorted(refused.value.conflicts) == [
        (f"app {APP!r}", "total", 3, 8),
        (f"app {APP!r} user 'ann'", "name", "Annie", "Ann"),
    ]
    async with AdkSessionService(db_url) as ours:
        assert await ours.get_app_state(app_name=APP) == {"total": 3, "mine": "x"}
        listed = await ours.list_sessions(app_name=APP)
        assert [s.id for s in listed.sessions] == ["target-own"]


@pytest.mark.parametrize(
    ("mode", "total", "name", "counts"),
    [
        ("overwrite", 8, "Ann", {"overwritten_values": 2}),
        ("keep", 3, "Annie", {"kept_values": 2}),
    ],
)
async def test_overwrite_or_keep_state_on_conflict(
    tmp_path: Path,
    db_url: str,
    mode: Literal["overwrite", "keep"],
    total: int,
    name: str,
    counts: dict[str, int],
) -> None:
    """on_state_conflict picks which values win; keys only one side has are kept or added."""
    source = await _adk_source(tmp_path)
    await _target_with_state(db_url)
    done = await import_adk(source, db_url, on_state_conflict=mode)
    assert done.sessions == 4 and attrs.asdict(done) | counts == attrs.asdict(done)
    async with AdkSessionService(db_url) as ours:
        assert await ours.get_app_state(app_name=APP) == {
            "total": total,
            "mine": "x",
            "pictures": 1,
        }
        assert (await ours.get_user_state(app_name=APP, user_id="ann"))["name"] == name
    again = await import_adk(source, db_url, on_state_conflict=mode)
    assert again.sessions == 0 and again.app_states == again.user_states == 0
    assert again.overwritten_values == 0 or mode == "keep"


async def test_command_requires_a_choice_on_conflict(
    tmp_path: Path, db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """import-adk exits 1 naming the conflict unless --overwrite-state or --keep-state is given."""
    source = await _adk_source(tmp_path)
    await _target_with_state(db_url)
    parser = argparse.ArgumentParser(prog="adk-sessions")
    add_import_parser(parser.add_subparsers(dest="command"))
    refused = await _run_in_thread(parser.parse_args(["import-adk", source, db_url]))
    out, err = capsys.readouterr()
    assert refused == 1 and out == ""
    assert "StateConflictError" in err and "'total': 3 in the target, 8 in the source" in err
    done = await _run_in_thread(
        parser.parse_args(["import-adk", source, db_url, "--overwrite-state"])
    )
    out, err = capsys.readouterr()
    assert done == 0 and "overwrote 2 state values of the target" in out
    with pytest.raises(SystemExit):
        parser.parse_args(["import-adk", source, db_url, "--overwrite-state", "--keep-state"])
