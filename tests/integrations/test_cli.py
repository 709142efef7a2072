"""The ``adk-sessions`` command line: prune, read-only status, the demo's story and pipes."""

from __future__ import annotations

import asyncio
import hashlib
import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import asyncpg
import pytest

import adk_sessions
from adk_sessions import Event
from adk_sessions._cli import main
from adk_sessions._queries import load_migrations

from .._pg import pg_connection

DAY = 86400.0


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _populate(url: str, sessions: list[tuple[str, str, str, float]]) -> None:
    """Create (app, user, id) sessions last updated ``age`` seconds ago, with an event each."""

    async def create() -> None:
        now = time.time()
        async with adk_sessions.connect(url) as service:
            for app, user, sid, age in sessions:
                await service.create_session(
                    app_name=app,
                    user_id=user,
                    session_id=sid,
                    state={"app:kept": True, "user:kept": True},
                    events=[Event(author="x", timestamp=now - age)],
                    last_update_time=now - age,
                )

    asyncio.run(create())


def _left(url: str) -> set[tuple[str, str, str]]:
    async def read() -> set[tuple[str, str, str]]:
        async with adk_sessions.connect(url, migrate=False) as service:
            return {
                (app, s.user_id, s.id)
                for app in await service.list_apps()
                for s in (await service.list_sessions(app_name=app)).sessions
            }

    return asyncio.run(read())


SESSIONS = [
    ("shop", "ann", "old1", 40 * DAY),
    ("shop", "bob", "old2", 31 * DAY),
    ("shop", "ann", "new1", 29 * DAY),
    ("chat", "ann", "old3", 90 * DAY),
    ("chat", "cy", "new2", 60.0),
]


def test_prune_deletes_old_sessions_of_every_app(
    db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """prune --older-than 30d deletes, in every app, what was last updated over 30 days ago:
    the count on stdout, progress and a summary on stderr; state is kept."""
    _populate(db_url, SESSIONS)
    assert main(["prune", db_url, "--older-than", "30d"]) == 0
    out, err = capsys.readouterr()
    assert out == "3\n"
    assert "prune: 100%" in err and "3/3 sessions" in err
    assert "deleted 3 session(s) of 2 app(s)" in err
    assert _left(db_url) == {("shop", "ann", "new1"), ("chat", "cy", "new2")}

    async def state() -> tuple[dict[str, object], dict[str, object]]:
        async with adk_sessions.connect(db_url) as service:
            return (
                await service.get_app_state(app_name="chat"),
                await service.get_user_state(app_name="shop", user_id="bob"),
            )

    assert asyncio.run(state()) == ({"kept": True}, {"kept": True})


def test_prune_app_user_and_batch_size(db_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    """--app and --user narrow the prune; --batch-size is passed on."""
    _populate(db_url, SESSIONS)
    assert main(["prune", db_url, "--older-than", "1h", "--app", "shop", "--user", "ann"]) == 0
    assert capsys.readouterr().out == "2\n"
    assert (
        main(["prune", db_url, "--older-than", "720h", "--app", "chat", "--batch-size", "1"]) == 0
    )
    assert capsys.readouterr().out == "1\n"
    assert _left(db_url) == {("shop", "bob", "old2"), ("chat", "cy", "new2")}


def test_prune_dry_run_counts_and_deletes_nothing(
    db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """--dry-run prints how many sessions would go and changes nothing."""
    _populate(db_url, SESSIONS)
    before = _left(db_url)
    assert main(["prune", db_url, "--older-than", "30d", "--dry-run"]) == 0
    out, err = capsys.readouterr()
    assert out == "3\n" and "would delete 3 session(s)" in err and "dry run" in err
    assert _left(db_url) == before


def test_prune_dry_run_opens_sqlite_read_only(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A dry run leaves the SQLite file byte for byte as it was."""
    path = tmp_path / "s.db"
    _populate(f"sqlite:///{path}", SESSIONS)
    digest = _digest(path)
    assert main(["prune", f"sqlite:///{path}", "--older-than", "1s", "--dry-run"]) == 0
    assert capsys.readouterr().out == "5\n"
    assert _digest(path) == digest


@pytest.mark.parametrize("age", ["30", "30 days", "1w", "-1d", "d", "1.d", ""])
def test_prune_refuses_malformed_ages(
    tmp_path: Path, age: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """--older-than takes a number and s, m, h or d; anything else is a usage error (2)."""
    with pytest.raises(SystemExit) as exit_:
        main(["prune", f"sqlite:///{tmp_path / 's.db'}", "--older-than", age])
    assert exit_.value.code == 2
    assert "--older-than" in capsys.readouterr().err


@pytest.mark.parametrize("age", ["90s", "1.5h", "45m", "30d", "0s"])
def test_prune_accepts_ages_with_units(
    tmp_path: Path, age: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Ages in seconds, minutes, hours and days (decimals too) are accepted."""
    url = f"sqlite:///{tmp_path / 's.db'}"
    _populate(url, [("a", "u", "s", 100 * DAY)])
    assert main(["prune", url, "--older-than", age]) == 0
    assert capsys.readouterr().out == "1\n"


@pytest.mark.parametrize("command", [["status"], ["prune", "--older-than", "1d"]])
def test_missing_sqlite_file_is_never_created(
    tmp_path: Path, command: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    """status and prune on a SQLite path that does not exist exit 2 and create nothing."""
    url = f"sqlite:///{tmp_path / 'typo.db'}"
    assert main([command[0], url, *command[1:]]) == 2
    err = capsys.readouterr().err
    assert "no SQLite database at" in err and "never creates one" in err
    assert "adk-sessions migrate" in err
    assert list(tmp_path.iterdir()) == []


def _google_adk_like(path: Path) -> None:
    """A SQLite file with the tables google-adk's session services create."""
    db = sqlite3.connect(path)
    db.executescript(
        "CREATE TABLE sessions (app_name TEXT, user_id TEXT, id TEXT, state TEXT);"
        "CREATE TABLE events (id TEXT, app_name TEXT, user_id TEXT, session_id TEXT);"
    )
    db.close()


def test_status_of_a_google_adk_database_suggests_import(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """status on google-adk's own database exits 2, suggests import-adk, changes nothing."""
    path = tmp_path / "adk.db"
    _google_adk_like(path)
    digest = _digest(path)
    assert main(["status", f"sqlite:///{path}"]) == 2
    err = capsys.readouterr().err
    assert "google-adk's own session tables" in err and "adk-sessions import-adk" in err
    assert _digest(path) == digest
    assert sorted(p.name for p in tmp_path.iterdir()) == ["adk.db"]


def test_status_of_an_empty_sqlite_file_says_migrate(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """status on a SQLite file without adk-sessions tables exits 2 and points to migrate."""
    path = tmp_path / "empty.db"
    sqlite3.connect(path).close()
    assert main(["status", f"sqlite:///{path}"]) == 2
    assert "has no adk-sessions tables" in capsys.readouterr().err


@pytest.mark.parametrize("adk_tables", [False, True])
def test_status_never_creates_tables_on_postgres(
    fresh_pg_database: Callable[[], Awaitable[str]],
    capsys: pytest.CaptureFixture[str],
    adk_tables: bool,
) -> None:
    """status on a PostgreSQL database without adk-sessions tables exits 2 and creates none
    (suggesting import-adk when google-adk's tables are there)."""

    async def setup() -> str:
        url = await fresh_pg_database()
        if adk_tables:
            conn = await asyncpg.connect(url)
            await conn.execute("CREATE TABLE sessions (id TEXT); CREATE TABLE events (id TEXT)")
            await conn.close()
        return url

    async def tables(url: str) -> list[str]:
        async with pg_connection(url) as conn:
            rows = await conn.fetch(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1"
            )
        return [row[0] for row in rows]

    url = asyncio.run(setup())
    before = asyncio.run(tables(url))
    assert main(["status", url]) == 2
    err = capsys.readouterr().err
    assert ("import-adk" in err) is adk_tables
    assert ("has no adk-sessions tables" in err) is not adk_tables
    assert asyncio.run(tables(url)) == before


def test_status_prints_counts(db_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    """status of an adk-sessions database prints its schema version and counts as JSON."""
    _populate(db_url, SESSIONS[:2])
    assert main(["status", db_url]) == 0
    out = capsys.readouterr().out
    known = len(load_migrations("sqlite"))
    assert f'"schema_version": {known}' in out and '"sessions": 2' in out and '"events": 2' in out


def test_demo_tells_the_story_of_the_scopes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The demo labels where each state key goes and shows temp:draft from its origin to its
    absence in storage."""
    assert main(["demo", f"sqlite:///{tmp_path / 'demo.db'}"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    origin = next(i for i, line in enumerate(lines) if "temp:draft = '3 options'" in line)
    assert "never stored" in lines[origin] and "Booked" in lines[origin - 3]
    assert any("user:home_city = 'Berlin'" in line and "user scope" in line for line in lines)
    assert any("app:dishes_suggested = 1" in line and "app scope" in line for line in lines)
    in_hand = out.index("2. alice/trip in the caller's hands")
    stored = out.index("3. Read back from storage")
    assert '"temp:draft": "3 options"' in out[in_hand:stored]
    assert "temp:draft" not in out[stored:].replace("temp:draft was never stored", "")


def test_demo_into_a_closed_pipe_ends_quietly(tmp_path: Path) -> None:
    """adk-sessions demo | head: a reader that goes away ends the command without a traceback
    (exit status 141, as for other commands killed by SIGPIPE)."""
    child = subprocess.Popen(
        [sys.executable, "-m", "adk_sessions._cli", "demo", f"sqlite:///{tmp_path / 'd.db'}"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert child.stdout is not None and child.stderr is not None
    child.stdout.close()  # before the child writes anything
    err = child.stderr.read().decode()
    child.stderr.close()
    assert child.wait(timeout=120) == 141, err
    assert "Traceback" not in err and "BrokenPipeError" not in err
    assert err == ""
