"""Writers that retry: append numbered events, retry the same event after a retryable error.

Shared by the fault tests that break PostgreSQL connections (server crashes, terminated
backends). Each writer owns a session; an append that raises ``StorageUnavailableError`` is
retried with the same event on the same session object (idempotent retry) until it is
acknowledged. Before each retry the writer reads the session to learn whether the failed append
had in fact committed (its reply lost), so that the figures say how often that happened.
"""

from __future__ import annotations

import time
from collections import Counter, defaultdict

import anyio
import attrs
import pytest

from adk_sessions import Event, EventActions, Session, SessionService
from adk_sessions.errors import AdkSessionsError, StaleSessionError, StorageUnavailableError

from ._checks import check_invariants

RETRY_PAUSE = 0.01


@attrs.define
class Tally:
    """What the writers saw."""

    acked: dict[int, list[str]] = attrs.field(factory=lambda: defaultdict(list))
    # (append started, append returned) of every acknowledged append, per writer.
    ack_times: dict[int, list[tuple[float, float]]] = attrs.field(factory=lambda: defaultdict(list))
    errors: Counter[str] = attrs.field(factory=Counter)  # "operation: ErrorType"
    untyped: list[str] = attrs.field(factory=list)  # errors not from adk_sessions.errors
    lost_replies: int = 0  # appends that raised although they had committed
    idempotent_retries: int = 0  # of those, retries that returned as a success
    stale_retries: int = 0  # retries of the same event that raised StaleSessionError
    stored_unacked: list[str] = attrs.field(factory=list)  # stored, but the caller got an error
    anomalies: list[str] = attrs.field(factory=list)
    acked_now: anyio.Event = attrs.field(factory=anyio.Event)  # set at each ack, then replaced

    def ack(self, writer: int, event_id: str, started: float) -> None:
        """Record an acknowledged append and wake whoever waits for progress."""
        self.acked[writer].append(event_id)
        self.ack_times[writer].append((started, time.monotonic()))
        self.acked_now.set()
        self.acked_now = anyio.Event()

    def failed(self, operation: str, exc: BaseException) -> None:
        """Count an error; keep the text of untyped ones."""
        self.errors[f"{operation}: {type(exc).__name__}"] += 1
        if not isinstance(exc, AdkSessionsError):
            self.untyped.append(f"{operation}: {exc!r}"[:300])


class Writer:
    """One of the concurrent writers: appends events to its own session until told to stop."""

    def __init__(self, index: int, service: SessionService, session: Session, tally: Tally):
        self.index = index
        self.service = service
        self.session = session
        self.tally = tally

    async def _read(self, events: int | None) -> Session:
        """Read the writer's session, retrying (and counting) failures until a read succeeds."""
        while True:
            try:
                found = await self.service.get_session(
                    app_name=self.session.app_name,
                    user_id=self.session.user_id,
                    session_id=self.session.id,
                    num_recent_events=events,
                )
            except Exception as exc:
                self.tally.failed("get_session", exc)
                await anyio.sleep(RETRY_PAUSE)
                continue
            assert found is not None
            return found

    async def _stored_already(self, event: Event) -> bool:
        """Whether ``event`` committed although its append raised (its reply was lost)."""
        found = await self._read(1)
        if found.revision == self.session.revision:
            return False
        if found.revision == self.session.revision + 1 and found.events[-1].id == event.id:
            return True
        self.tally.anomalies.append(
            f"writer {self.index}: stored revision {found.revision}, in hand "
            f"{self.session.revision}, appending {event.id}"
        )
        return False

    async def append(self, event: Event) -> None:
        """Append ``event``, retrying the same event after retryable errors until it is acked."""
        retried_lost = False
        retrying = False
        while True:
            started = time.monotonic()
            try:
                await self.service.append_event(self.session, event)
            except StorageUnavailableError as exc:
                self.tally.failed("append_event", exc)
                if await self._stored_already(event):
                    self.tally.lost_replies += 1
                    retried_lost = True
                retrying = True
                await anyio.sleep(RETRY_PAUSE)
                continue
            except Exception as exc:
                # Not retryable as is (StaleSessionError on a retry, an untyped error): reload
                # the session, then either the event is stored (the caller was told it failed)
                # or it is appended anew.
                self.tally.failed("append_event", exc)
                if retrying and isinstance(exc, StaleSessionError):
                    self.tally.stale_retries += 1
                await anyio.sleep(RETRY_PAUSE)
                self.session = await self._read(None)
                if self.session.events and self.session.events[-1].id == event.id:
                    self.tally.stored_unacked.append(event.id)
                    return
                retrying = False
                continue
            if retried_lost:
                self.tally.idempotent_retries += 1
            self.tally.ack(self.index, event.id, started)
            return

    async def run(self, stop: anyio.Event) -> None:
        """Append numbered events until ``stop`` is set (the one in flight is finished)."""
        n = 0
        while not stop.is_set():
            n += 1
            delta = {"n": n, f"app:w{self.index}": n, f"user:w{self.index}": n}
            await self.append(
                Event(
                    id=f"w{self.index}-e{n}",
                    invocation_id=f"inv-{self.index}",
                    author="writer",
                    actions=EventActions(state_delta=delta),
                )
            )


def acks_since(tally: Tally, writers: int, since: float) -> list[int]:
    """Per writer, acknowledged appends that started after ``since``."""
    return [sum(1 for s, _ in tally.ack_times[w] if s > since) for w in range(writers)]


def first_acks_since(tally: Tally, writers: int, since: float) -> list[float]:
    """Per writer, the return time of its first acknowledged append started after ``since``."""
    return [min(r for s, r in tally.ack_times[w] if s > since) for w in range(writers)]


async def wait_for_acks(tally: Tally, writers: int, since: float, count: int, what: str) -> None:
    """Wait until every writer has ``count`` acknowledged appends started after ``since``."""
    try:
        with anyio.fail_after(60):
            while min(acks_since(tally, writers, since)) < count:
                await tally.acked_now.wait()
    except TimeoutError:
        pytest.fail(f"{what} did not happen within 60 s; so far: {tally}")


async def verify(url: str, app_name: str, tally: Tally, writers: list[Writer], what: str) -> str:
    """Check storage against what the writers saw; return (and print) the figures.

    Every acknowledged event is stored once, in the order acknowledged; nothing is stored that
    was not acknowledged; every error is a StorageUnavailableError; the writers' sessions agree
    with storage; the invariants of :func:`check_invariants` hold.
    """
    stored = await check_invariants(url, app_name)
    acked = {w.index: tally.acked[w.index] for w in writers}
    key = {w.index: (w.session.user_id, w.session.id) for w in writers}
    stored_ids = {w: [i for _, i in stored.events.get(key[w], [])] for w in acked}
    lost = sorted(i for w in acked for i in set(acked[w]) - set(stored_ids[w]))
    unacked = sorted(i for w in acked for i in set(stored_ids[w]) - set(acked[w]))
    figures = (
        f"{what}; acknowledged {sum(map(len, acked.values()))}, stored {stored.event_count}, "
        f"acknowledged but lost {len(lost)}, stored but not acknowledged {len(unacked)}; errors "
        f"{dict(tally.errors)}; replies lost after COMMIT {tally.lost_replies}, idempotent "
        f"retries {tally.idempotent_retries}, StaleSessionError on a retry {tally.stale_retries}"
    )
    print(figures)
    assert tally.untyped == [], figures
    assert set(tally.errors) <= {
        "append_event: StorageUnavailableError",
        "get_session: StorageUnavailableError",
    }, figures
    assert lost == [], figures
    assert unacked == [] and tally.stored_unacked == [], figures
    assert tally.stale_retries == 0 and tally.anomalies == [], figures
    assert tally.idempotent_retries == tally.lost_replies, figures
    for writer in writers:
        ids = acked[writer.index]
        assert stored_ids[writer.index] == ids, writer.index  # each acked event once, in order
        assert writer.session.revision == len(ids) == stored.revisions[key[writer.index]]
        assert writer.session.state["n"] == len(ids)
    return figures
