"""Child process of the fault tests: append events until killed, report each acknowledged one.

Usage: ``python _writer.py URL APP USER WORKER SESSION_ID [SESSION_ID ...]``.
Connects, prints ``ready``, then appends to the sessions in turn (reloading each before its
append, retrying on StaleSessionError) forever. Right after each append returns it prints
``ack SESSION_ID EVENT_ID REVISION``; any other error is printed as ``error REPR``. The parent
SIGKILLs it whenever it likes, so an event may be stored without its ``ack`` line, never the
reverse. State deltas: ``n`` (session scope), ``app:w<WORKER>`` and ``user:w<WORKER>`` with
increasing integers, so every app and user key is written by one worker only.
"""

from __future__ import annotations

import asyncio
import sys

import adk_sessions
from adk_sessions import Event, EventActions
from adk_sessions.errors import StaleSessionError


async def run(url: str, app: str, user: str, worker: str, sessions: list[str]) -> None:
    options = {"min_size": 1, "max_size": 2} if url.startswith("postgres") else {}
    service = await adk_sessions.connect(url, migrate=False, **options)
    print("ready", flush=True)
    n = 0
    while True:
        session_id = sessions[n % len(sessions)]
        try:
            session = await service.get_session(
                app_name=app, user_id=user, session_id=session_id, num_recent_events=0
            )
            assert session is not None, session_id
            event = Event(
                id=f"w{worker}-{n + 1}",
                author=f"writer{worker}",
                content={"parts": [{"text": "x" * (n % 7 * 300)}]},
                actions=EventActions(
                    state_delta={"n": n + 1, f"app:w{worker}": n + 1, f"user:w{worker}": n + 1}
                ),
            )
            await service.append_event(session, event)
        except StaleSessionError:
            continue  # another writer came first: reload, retry the same event
        except Exception as exc:
            n += 1  # the event may be stored all the same: never reuse its id
            print(f"error {exc!r}", flush=True)
            await asyncio.sleep(0.01)
            continue
        n += 1
        print(f"ack {session_id} {event.id} {session.revision}", flush=True)


def main() -> None:
    url, app, user, worker, *sessions = sys.argv[1:]
    asyncio.run(run(url, app, user, worker, sessions))


if __name__ == "__main__":
    main()
