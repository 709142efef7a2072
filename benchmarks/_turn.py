"""The Runner-turn workload: what a session store costs one turn of a real google-adk agent.

A real ``google.adk.runners.Runner`` runs an ``LlmAgent`` on a scripted, offline model: for each
user message the model calls one tool (which writes session, ``user:`` and ``temp:`` state), then
answers the tool's result with one text reply. A turn is therefore one ``get_session`` (the
Runner loads the whole history) and four ``append_event`` calls (user message, function call,
function response, reply), plus everything google-adk does around them.

Each store gets one session per history size, filled through its own API with realistic events
(user and agent turns alternating, about 650 bytes of JSON each), then one warm-up turn and
``turns`` measured turns in a row, round-robin over the stores; every turn adds four events. The
same turns also run on :class:`NullSessionService`, a store that does nothing (it keeps the
session in memory and hands out light copies), and a store's *share* of a turn is its turn time
minus the null store's turn time in the same round, the median over the rounds (pairing turns of
one round cancels the drift of a shared machine). The time spent inside the store's own calls is
measured too, as a cross-check: at 1,000 events google-adk's own work around the store is most of
a turn, so the difference of two turn times is the noisier of the two numbers.

The module also measures the event cache's memory: tracemalloc's count of what a cached
``AdkSessionService`` still holds after reading more and more sessions.
"""

from __future__ import annotations

import copy
import gc
import statistics
import time
import tracemalloc
import uuid
from collections.abc import AsyncGenerator, Awaitable, Callable
from typing import Any

import anyio
from google.adk.agents import LlmAgent
from google.adk.events import Event
from google.adk.models.base_llm import BaseLlm
from google.adk.models.llm_request import LlmRequest
from google.adk.models.llm_response import LlmResponse
from google.adk.runners import Runner
from google.adk.sessions import BaseSessionService, Session
from google.adk.sessions.base_session_service import GetSessionConfig, ListSessionsResponse
from google.adk.tools.tool_context import ToolContext
from google.genai import types
from typing_extensions import override

from ._contenders import APP
from ._events import event_spec

__all__ = ("NullSessionService", "cache_memory", "run_turns")

AGENT = "support_agent"
USER = "turn-user"


class ScriptedModel(BaseLlm):
    """An offline model: a user message gets a tool call, a tool result gets a text reply."""

    @override
    async def generate_content_async(
        self, llm_request: LlmRequest, stream: bool = False
    ) -> AsyncGenerator[LlmResponse, None]:
        """Answer from the last part of the request."""
        contents = llm_request.contents or []
        parts = (contents[-1].parts or []) if contents else []
        last = parts[-1] if parts else types.Part(text="")
        usage = types.GenerateContentResponseUsageMetadata(
            prompt_token_count=40 * len(contents), candidates_token_count=24, total_token_count=0
        )
        if last.function_response is not None:
            status = (last.function_response.response or {}).get("status")
            text = f"Your order is {status}; it should arrive within two business days."
            content = types.Content(role="model", parts=[types.Part(text=text)])
        else:
            call = types.FunctionCall(
                name="lookup_order", args={"order": len(contents)}, id=f"call-{uuid.uuid4()}"
            )
            content = types.Content(role="model", parts=[types.Part(function_call=call)])
        yield LlmResponse(content=content, usage_metadata=usage)


def lookup_order(order: int, tool_context: ToolContext) -> dict[str, Any]:
    """Look an order up (scripted).

    Args:
        order: The order number.
        tool_context: Supplied by google-adk.

    Returns:
        The order's status.
    """
    state = tool_context.state
    state["last_order"] = order
    state["user:orders_seen"] = state.get("user:orders_seen", 0) + 1
    state["temp:lookup_started"] = time.time()
    return {"order": order, "status": "shipped"}


def make_runner(service: BaseSessionService) -> Runner:
    """Build a Runner of the scripted support agent on ``service``.

    Args:
        service: The session store.

    Returns:
        The runner.
    """
    agent = LlmAgent(
        name=AGENT,
        model=ScriptedModel(model="scripted"),
        tools=[lookup_order],
        instruction="Help the customer with their order; use lookup_order.",
    )
    return Runner(app_name=APP, agent=agent, session_service=service)


def history_event(index: int) -> Event:
    """Return event ``index`` of a preloaded conversation (user and agent alternate).

    Args:
        index: Position in the history.

    Returns:
        A google-adk event of about 650 bytes of JSON.
    """
    author = "user" if index % 2 == 0 else AGENT
    spec = event_spec(index, author=author)
    spec["content"]["role"] = "user" if author == "user" else "model"
    return Event.model_validate(spec)


class NullSessionService(BaseSessionService):
    """A store that does nothing: sessions stay in memory, reads hand out light copies.

    It does only what any store must do for google-adk's Runner to work (apply a delta to the
    caller's session, keep the history), the way google-adk's ``InMemorySessionService`` does
    under ``IN_MEMORY_SESSION_SERVICE_LIGHT_COPY``: new lists and dicts, shared events.
    """

    def __init__(self) -> None:
        """Start empty."""
        self._sessions: dict[str, Session] = {}

    @override
    async def create_session(
        self,
        *,
        app_name: str,
        user_id: str,
        state: dict[str, Any] | None = None,
        session_id: str | None = None,
    ) -> Session:
        """Create a session in memory."""
        session = Session(
            id=session_id or str(uuid.uuid4()),
            app_name=app_name,
            user_id=user_id,
            state=dict(state or {}),
            last_update_time=time.time(),
        )
        self._sessions[session.id] = session
        return self._copy(session)

    @staticmethod
    def _copy(session: Session) -> Session:
        copied = copy.copy(session)
        copied.events = list(session.events)
        copied.state = {k: v for k, v in session.state.items() if not k.startswith("temp:")}
        return copied

    @override
    async def get_session(
        self,
        *,
        app_name: str,
        user_id: str,
        session_id: str,
        config: GetSessionConfig | None = None,
    ) -> Session | None:
        """Return a light copy of the session."""
        session = self._sessions.get(session_id)
        return None if session is None else self._copy(session)

    @override
    async def list_sessions(
        self, *, app_name: str, user_id: str | None = None
    ) -> ListSessionsResponse:
        """List nothing (the Runner does not list)."""
        return ListSessionsResponse(sessions=[])

    @override
    async def delete_session(self, *, app_name: str, user_id: str, session_id: str) -> None:
        """Forget the session."""
        self._sessions.pop(session_id, None)

    @override
    async def append_event(self, session: Session, event: Event) -> Event:
        """Apply the event to the caller's session and keep it in the stored one."""
        event = await super().append_event(session, event)
        if not event.partial:
            stored = self._sessions[session.id]
            stored.events.append(event)
            stored.state.update(
                {k: v for k, v in event.actions.state_delta.items() if not k.startswith("temp:")}
            )
            stored.last_update_time = event.timestamp
        return event


class _Clock:
    """Seconds spent inside a store's ``get_session``/``append_event``, and the calls made."""

    def __init__(self, service: BaseSessionService) -> None:
        self.seconds = 0.0
        self.calls: dict[str, int] = {"get_session": 0, "append_event": 0}
        self.per_call: dict[str, list[float]] = {name: [] for name in self.calls}
        for name in self.calls:
            setattr(service, name, self._timed(name, getattr(service, name)))

    def _timed(self, name: str, call: Callable[..., Awaitable[Any]]) -> Callable[..., Any]:
        async def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return await call(*args, **kwargs)
            finally:
                elapsed = time.perf_counter() - started
                self.seconds += elapsed
                self.calls[name] += 1
                self.per_call[name].append(elapsed)

        return timed


async def _turn(runner: Runner, session_id: str, n: int) -> None:
    message = types.Content(role="user", parts=[types.Part(text=f"where is order {n}?")])
    async for _ in runner.run_async(user_id=USER, session_id=session_id, new_message=message):
        pass


async def _fill(service: BaseSessionService, session_id: str, size: int) -> None:
    session = await service.create_session(
        app_name=APP, user_id=USER, session_id=session_id, state={"plan": "free"}
    )
    for i in range(size):
        await service.append_event(session, history_event(i))


async def run_turns(
    stores: dict[str, BaseSessionService],
    history_sizes: tuple[int, ...],
    turns: int,
    progress: Callable[[str], None],
) -> dict[str, Any]:
    """Measure Runner turns on every store at every history size.

    Args:
        stores: The stores by contender key; a ``null`` store is added.
        history_sizes: Events each session holds before its first turn.
        turns: Measured turns per store and size (after one warm-up turn).
        progress: Called with a description of each step.

    Returns:
        ``{size: {key: {"turn_ms", "store_ms", "share_ms", "call_ms", "calls_per_turn",
        "events"}}}``: medians over the turns; ``share_ms`` is the store's turn time minus the
        null store's in the same round (``None`` for the null store itself); ``call_ms`` the
        median duration of one ``get_session`` and of one ``append_event``; ``events`` is the
        history before the first and after the last turn.
    """
    stores = {"null": NullSessionService(), **stores}
    runners = {key: make_runner(service) for key, service in stores.items()}
    clocks = {key: _Clock(service) for key, service in stores.items()}
    out: dict[str, Any] = {}
    for size in history_sizes:
        session_id = f"turn-{size}-{uuid.uuid4().hex[:8]}"
        progress(f"runner turn · {size:,} events · filling {len(stores)} stores")
        async with anyio.create_task_group() as tg:
            for service in stores.values():
                tg.start_soon(_fill, service, session_id, size)
        for runner in runners.values():  # warm-up: caches, statement caches, imports
            await _turn(runner, session_id, 0)
        times: dict[str, list[float]] = {key: [] for key in stores}
        inside: dict[str, list[float]] = {key: [] for key in stores}
        calls = {key: dict(clock.calls) for key, clock in clocks.items()}
        for clock in clocks.values():
            for durations in clock.per_call.values():
                durations.clear()
        for n in range(turns):
            progress(f"runner turn · {size:,} events · turn {n + 1}/{turns}")
            order = list(runners.items())
            for key, runner in order if n % 2 == 0 else order[::-1]:
                # As in the other workloads: what survived earlier turns (every store's history,
                # google-adk's modules) goes to the permanent generation, so a collection during
                # this turn costs what this turn allocated, whichever store went before.
                gc.collect()
                gc.freeze()
                clock = clocks[key]
                before = clock.seconds
                started = time.perf_counter()
                await _turn(runner, session_id, n + 1)
                times[key].append(time.perf_counter() - started)
                inside[key].append(clock.seconds - before)
        result: dict[str, Any] = {}
        for key in stores:
            shares = [a - b for a, b in zip(times[key], times["null"], strict=True)]
            result[key] = {
                "turn_ms": 1000 * statistics.median(times[key]),
                "store_ms": 1000 * statistics.median(inside[key]),
                "call_ms": {
                    name: 1000 * statistics.median(durations) if durations else None
                    for name, durations in clocks[key].per_call.items()
                },
                "share_ms": None if key == "null" else 1000 * statistics.median(shares),
                "calls_per_turn": {
                    name: (clocks[key].calls[name] - calls[key][name]) / turns
                    for name in clocks[key].calls
                },
                "events": [size, size + 4 * (turns + 1)],
            }
        out[str(size)] = result
    return out


async def cache_memory(
    service_factory: Callable[[int], Any],
    writer: BaseSessionService,
    *,
    capacity: int,
    per_session: int,
    reads: tuple[int, ...],
) -> dict[str, Any]:
    """Measure what a cached ``AdkSessionService`` holds after reading more and more sessions.

    Args:
        service_factory: Builds an ``AdkSessionService`` with ``event_cache=capacity`` on the
            writer's database (an async context manager).
        writer: A store on the same database that creates the sessions.
        capacity: The cache's capacity in events.
        per_session: Events per session.
        reads: How many sessions to read, for each measurement.

    Returns:
        ``{"capacity", "per_session", "points": [{"sessions", "events_held", "bytes"}]}``:
        tracemalloc's current size of what is still allocated once the results are dropped.
    """
    tag = uuid.uuid4().hex[:8]
    ids = [f"mem-{tag}-{k}" for k in range(max(reads))]
    for session_id in ids:
        await _fill(writer, session_id, per_session)
    points = []
    for count in reads:
        async with service_factory(capacity) as service:
            await service.get_session(app_name=APP, user_id=USER, session_id="none")  # connect
            gc.collect()
            tracemalloc.start()
            try:
                base = tracemalloc.get_traced_memory()[0]
                for session_id in ids[:count]:
                    got = await service.get_session(
                        app_name=APP, user_id=USER, session_id=session_id
                    )
                    assert got is not None and len(got.events) == per_session
                del got
                gc.collect()
                held = tracemalloc.get_traced_memory()[0] - base
            finally:
                tracemalloc.stop()
            points.append(
                {
                    "sessions": count,
                    "events_held": service.event_cache_info.events,
                    "bytes": held,
                }
            )
    return {"capacity": capacity, "per_session": per_session, "points": points}
