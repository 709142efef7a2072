"""Child process of tests/backends/test_multiprocess.py (and the google-adk cache test): append
events to shared sessions, report as JSON.

Usage: ``python _append_worker.py URL APP USER PROC COUNT SESSION_ID [SESSION_ID ...]``.
Connects, prints ``ready``, waits for a line on stdin (so every child starts appending at once),
then commits COUNT events, reloading and retrying on StaleSessionError. The last stdout line is a
JSON report: committed events per session, the number of stale retries, and every other error.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from typing import Any

import adk_sessions
from adk_sessions import Event, EventActions
from adk_sessions.errors import StaleSessionError

DEADLINE_SECONDS = 90.0
THINK_SECONDS = 0.01


async def run(url: str, app: str, user: str, proc: int, count: int, sessions: list[str]) -> None:
    report: dict[str, Any] = {"proc": proc, "committed": [], "stale": 0, "errors": []}
    try:
        service = await adk_sessions.connect(url, migrate=False, **_options(url))
    except Exception as exc:  # reported to the parent, which fails the test
        report["errors"].append(f"connect: {exc!r}")
        print("ready", flush=True)
        print(json.dumps(report), flush=True)
        return
    try:
        print("ready", flush=True)
        await asyncio.to_thread(sys.stdin.readline)
        deadline = time.monotonic() + DEADLINE_SECONDS
        n = 0
        while n < count:
            if time.monotonic() > deadline:
                report["errors"].append(f"deadline passed after {n} events")
                break
            session_id = sessions[n % len(sessions)]
            try:
                session = await service.get_session(
                    app_name=app, user_id=user, session_id=session_id, num_recent_events=0
                )
                assert session is not None, session_id
                event = Event(
                    id=f"p{proc}-{n + 1}",
                    invocation_id=f"inv-{proc}",
                    author=f"proc{proc}",
                    actions=EventActions(
                        state_delta={
                            f"count:{proc}": n + 1,
                            f"app:total_{proc}": n + 1,
                            f"user:u_{proc}": n + 1,
                        }
                    ),
                )
                await service.append_event(session, event)
            except StaleSessionError:
                report["stale"] += 1
                continue
            except Exception as exc:
                report["errors"].append(repr(exc))
                if len(report["errors"]) > 20:
                    break
                continue
            n += 1
            report["committed"].append([session_id, event.id, session.revision])
            # An agent thinks between turns. Without a pause a process that just committed wins
            # the SQLite write lock again while the others sleep in their busy handlers.
            await asyncio.sleep(THINK_SECONDS)
    finally:
        await service.close()
    print(json.dumps(report), flush=True)


def _options(url: str) -> dict[str, Any]:
    return {"min_size": 1, "max_size": 2} if url.startswith("postgres") else {}


def main() -> None:
    url, app, user, proc, count, *sessions = sys.argv[1:]
    asyncio.run(run(url, app, user, int(proc), int(count), sessions))


if __name__ == "__main__":
    main()
