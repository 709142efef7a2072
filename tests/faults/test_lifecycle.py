"""Services that are never closed, event loops that come and go, and SQLite backups.

- The SQLite ``.db`` file alone (copied without ``-wal``/``-shm``) holds every committed write
  after ``close()`` and after a process that never called ``close()`` exits normally.
- A process exits with nothing on stderr ("Event loop is closed", unclosed-resource warnings)
  although it never closed its service, on both backends.
- ``adk-sessions backup`` writes a consistent single-file copy while another process writes.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import pytest

import adk_sessions
from adk_sessions import Event, EventActions

from ._checks import check_invariants, integrity_check, read_rows

WRITER = Path(__file__).with_name("_writer.py")
APP = "life-app"
COUNT = 25

# Writes COUNT sessions, each with one event and app/user/session state, then exits normally
# without closing the service.
UNCLOSED = textwrap.dedent(
    f"""
    import asyncio, sys
    import adk_sessions
    from adk_sessions import Event, EventActions

    async def main(url):
        service = await adk_sessions.connect(url)
        for i in range({COUNT}):
            session = await service.create_session(
                app_name="{APP}", user_id="u", session_id=f"s{{i}}"
            )
            delta = {{"k": i, "app:last": i, "user:last": i}}
            await service.append_event(
                session, Event(id=f"e{{i}}", author="a", actions=EventActions(state_delta=delta))
            )
        print("done", flush=True)

    asyncio.run(main(sys.argv[1]))
    """
)


def _copy_alone(db: Path, folder: Path) -> Path:
    """Copy only the ``.db`` file (never its ``-wal``/``-shm``) into an empty folder."""
    folder.mkdir()
    copy = folder / "copy.db"
    shutil.copyfile(db, copy)
    return copy


async def _check_written(url: str) -> None:
    """The COUNT sessions UNCLOSED writes are all there, with their events and state."""
    stored = await check_invariants(url, APP)
    assert stored.event_count == COUNT
    assert sorted(stored.revisions) == sorted(("u", f"s{i}") for i in range(COUNT))
    async with adk_sessions.connect(url, migrate=False) as service:
        assert await service.get_app_state(app_name=APP) == {"last": COUNT - 1}
        assert await service.get_user_state(app_name=APP, user_id="u") == {"last": COUNT - 1}


def _run_child(code: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=60
    )


def test_db_file_alone_holds_writes_after_close(tmp_path: Path) -> None:
    """After close(), the .db file copied alone holds every committed write."""
    db = tmp_path / "closed.db"

    async def write() -> None:
        async with adk_sessions.connect(f"sqlite:///{db}") as service:
            for i in range(COUNT):
                session = await service.create_session(
                    app_name=APP, user_id="u", session_id=f"s{i}"
                )
                delta = {"k": i, "app:last": i, "user:last": i}
                await service.append_event(
                    session,
                    Event(id=f"e{i}", author="a", actions=EventActions(state_delta=delta)),
                )

    asyncio.run(write())
    copy = _copy_alone(db, tmp_path / "alone")
    assert integrity_check(str(copy)) == "ok"
    asyncio.run(_check_written(f"sqlite:///{copy}"))


def test_db_file_alone_holds_writes_after_unclosed_process_exits(tmp_path: Path) -> None:
    """A child that never called close() exits; its .db file alone holds every write."""
    db = tmp_path / "unclosed.db"
    done = _run_child(UNCLOSED, f"sqlite:///{db}")
    assert (done.returncode, done.stdout.strip()) == (0, "done"), done.stderr
    copy = _copy_alone(db, tmp_path / "alone")
    assert integrity_check(str(copy)) == "ok"
    asyncio.run(_check_written(f"sqlite:///{copy}"))


def test_unclosed_sqlite_service_exits_without_noise(tmp_path: Path) -> None:
    """Children that never closed their SQLite service exit with status 0 and empty stderr."""
    # The noise came from a race at interpreter exit, so a few children run.
    for attempt in range(3):
        done = _run_child(UNCLOSED, f"sqlite:///{tmp_path / f'quiet{attempt}.db'}")
        assert (done.returncode, done.stdout.strip(), done.stderr) == (0, "done", ""), attempt


def test_unclosed_postgres_service_exits_without_noise(
    fresh_pg_database: Callable[[], Coroutine[Any, Any, str]],
) -> None:
    """A child that never closed its PostgreSQL service exits with status 0 and empty stderr."""
    url = asyncio.run(fresh_pg_database())
    done = _run_child(UNCLOSED, url)
    assert (done.returncode, done.stdout.strip(), done.stderr) == (0, "done", "")
    asyncio.run(_check_written(url))


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "adk_sessions._cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_backup_while_a_writer_runs(tmp_path: Path) -> None:
    """adk-sessions backup during writes: a sound single-file copy with every earlier ack."""
    db = tmp_path / "live.db"
    url = f"sqlite:///{db}"

    async def create() -> None:
        async with adk_sessions.connect(url) as service:
            for sid in ("s1", "s2"):
                await service.create_session(app_name=APP, user_id="u", session_id=sid)

    asyncio.run(create())
    out, err = tmp_path / "writer.out", tmp_path / "writer.err"
    with out.open("w") as stdout, err.open("w") as stderr:
        writer = subprocess.Popen(
            [sys.executable, str(WRITER), url, APP, "u", "0", "s1", "s2"],
            stdout=stdout,
            stderr=stderr,
        )
    try:
        deadline = time.monotonic() + 60
        while out.read_text().count("ack ") < 50:
            assert writer.poll() is None and time.monotonic() < deadline, out.read_text()[-500:]
            time.sleep(0.01)
        acked_before = [line.split()[1:] for line in out.read_text().splitlines() if "ack " in line]
        dest = tmp_path / "backup" / "copy.db"
        dest.parent.mkdir()
        done = _cli("backup", url, str(dest))
        acks_during = out.read_text().count("ack ") - len(acked_before)
        assert writer.poll() is None  # still writing after the backup
    finally:
        writer.kill()
        writer.wait()
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in err.read_text()
    assert sorted(p.name for p in dest.parent.iterdir()) == ["copy.db"]
    copy = _copy_alone(dest, tmp_path / "alone")
    assert integrity_check(str(copy)) == "ok"
    stored = asyncio.run(check_invariants(f"sqlite:///{copy}", APP))
    by_seq = {(sid, seq): eid for (_, sid), events in stored.events.items() for seq, eid in events}
    missing = [a for a in acked_before if by_seq.get((a[0], int(a[2]))) != a[1]]
    live = asyncio.run(read_rows(url, APP))
    print(
        f"backup figures (sqlite): acked before the backup {len(acked_before)}, during it "
        f"{acks_during}; events in the copy {stored.event_count}, in the live file "
        f"{live.event_count}"
    )
    assert missing == []
    assert stored.event_count <= live.event_count


@pytest.mark.parametrize("target", ["missing-dir", "not-sqlite"])
def test_backup_refuses_bad_arguments(tmp_path: Path, target: str) -> None:
    """backup to a missing folder, or of a non-SQLite URL: exit status 1, a message, no file."""
    db = tmp_path / "src.db"
    asyncio.run(_create_empty(f"sqlite:///{db}"))
    if target == "missing-dir":
        done = _cli("backup", f"sqlite:///{db}", str(tmp_path / "no" / "such" / "copy.db"))
    else:
        done = _cli("backup", "postgresql://u@127.0.0.1:1/d", str(tmp_path / "copy.db"))
    assert done.returncode != 0
    assert "Traceback" not in done.stderr and done.stderr.strip()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["src.db"]


async def _create_empty(url: str) -> None:
    async with adk_sessions.connect(url):
        pass
