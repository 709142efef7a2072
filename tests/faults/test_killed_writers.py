"""Writer processes SIGKILLed at random, on SQLite and PostgreSQL: nothing torn, nothing lost.

Writers (``_writer.py``) append to shared sessions; at random moments one is SIGKILLed, in
whatever it was doing (inside a transaction, during COMMIT, between appends), and a new one
takes its place; at the end every writer left is killed too. Afterwards every acknowledged event
is stored at the revision its writer saw, revision == number of stored events, state == fold of
the stored deltas in all three scopes, SQLite's integrity check passes and the sessions still
take appends.
"""

from __future__ import annotations

import asyncio
import random
import subprocess
import sys
import time
from pathlib import Path

import pytest

import adk_sessions
from adk_sessions import Event

from ._checks import check_invariants, integrity_check

pytestmark = pytest.mark.slow

WORKER = Path(__file__).with_name("_writer.py")
APP, USER = "kill-app", "kill-user"
SESSIONS = ("s1", "s2", "s3")
WRITERS = 4
KILLS = 8
SEED = 8


class Child:
    """A writer process whose stdout goes to a file (read after it is killed)."""

    def __init__(self, url: str, index: int, folder: Path) -> None:
        self.index = index
        self.out = folder / f"writer{index}.out"
        self.err = folder / f"writer{index}.err"
        with self.out.open("w") as out, self.err.open("w") as err:
            self.proc = subprocess.Popen(
                [sys.executable, str(WORKER), url, APP, USER, str(index), *SESSIONS],
                stdout=out,
                stderr=err,
            )

    def lines(self) -> list[str]:
        return self.out.read_text().splitlines()

    def acks(self) -> int:
        return sum(line.startswith("ack ") for line in self.lines())

    def wait_acks(self, count: int, timeout: float = 60.0) -> None:
        """Wait until the child acknowledged ``count`` appends."""
        deadline = time.monotonic() + timeout
        while self.acks() < count:
            assert self.proc.poll() is None, (self.lines()[-3:], self.err.read_text())
            assert time.monotonic() < deadline, f"writer {self.index} stalled"
            time.sleep(0.01)

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait()


async def _create(url: str) -> None:
    async with adk_sessions.connect(url) as service:
        for session_id in SESSIONS:
            await service.create_session(app_name=APP, user_id=USER, session_id=session_id)


async def _append_to_each(url: str) -> None:
    async with adk_sessions.connect(url) as service:
        for session_id in SESSIONS:
            session = await service.get_session(
                app_name=APP, user_id=USER, session_id=session_id, num_recent_events=0
            )
            assert session is not None
            await service.append_event(session, Event(id=f"after-{session_id}", author="check"))


def test_writers_sigkilled_at_random(db_url: str, tmp_path: Path) -> None:
    """SIGKILLed writers: acked events stored, revision == events, state == fold, integrity ok."""
    asyncio.run(_create(db_url))
    rng = random.Random(SEED)
    children = [Child(db_url, i, tmp_path) for i in range(WRITERS)]
    started = WRITERS
    dead: list[Child] = []
    try:
        for child in children:
            child.wait_acks(1)
        for _ in range(KILLS):
            # A victim that is writing by now, killed at a random point of its work.
            writing = [c for c in children if c.acks() > 0] or children[:1]
            victim = writing[rng.randrange(len(writing))]
            children.remove(victim)
            victim.wait_acks(victim.acks() + 1)
            time.sleep(rng.uniform(0, 0.02))
            victim.kill()
            dead.append(victim)
            children.append(Child(db_url, started, tmp_path))
            started += 1
        for child in children:
            child.wait_acks(2)
    finally:
        for child in children:
            child.kill()
        dead += children
    acked = [
        line.split()[1:] for child in dead for line in child.lines() if line.startswith("ack ")
    ]
    errors = [line for child in dead for line in child.lines() if line.startswith("error ")]
    stderr = [child.err.read_text() for child in dead]
    stored = asyncio.run(check_invariants(db_url, APP))
    by_seq = {
        (session_id, seq): event_id
        for (_, session_id), events in stored.events.items()
        for seq, event_id in events
    }
    lost = [(sid, eid, rev) for sid, eid, rev in acked if by_seq.get((sid, int(rev))) != eid]
    print(
        f"killed-writer figures ({db_url.split(':', 1)[0]}): {started} writers started, "
        f"{len(dead)} SIGKILLed; acknowledged {len(acked)}, stored {stored.event_count}, "
        f"acknowledged but lost {len(lost)}; errors {errors[:5]}"
    )
    assert lost == []
    assert errors == []
    assert [err for err in stderr if "Traceback" in err] == []
    assert stored.event_count >= len(acked) > 0
    if db_url.startswith("sqlite"):
        assert integrity_check(db_url.removeprefix("sqlite:///")) == "ok"
    asyncio.run(_append_to_each(db_url))
    asyncio.run(check_invariants(db_url, APP))
