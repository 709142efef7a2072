"""The workloads and the loop that runs them, round-robin over the contenders."""

from __future__ import annotations

import contextlib
import gc
import statistics
import sys
import tempfile
import time
import tracemalloc
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any, cast

import anyio
import attrs

from . import _pg
from ._contenders import Contender, OursAdkCache, adk_wrapper_available, build_contenders
from ._events import event_spec

__all__ = ("DEFAULT", "QUICK", "STEPS", "WORKLOADS", "Progress", "Sizes", "run_backend")

# Workload key -> label, in the order they are reported.
WORKLOADS: dict[str, str] = {
    "create": "create_session",
    "append_seq": "append_event, 1 session, sequential",
    "append_plain": "append_event, {tasks} users in turn, no app:/user: key",
    "append_user": "append_event, {tasks} users in turn, a user: key",
    "append_app": "append_event, {tasks} users in turn, an app: key",
    "get_full": "get_session, all {seq} events",
    "get_recent": "get_session, last 20 of {seq}",
    "list": "list_sessions, user with {creates}",
    "append_conc": "append_event, {tasks} tasks x {tasks} users",
}
# The steps that run, in order, and the workloads each one records. "scopes" interleaves its
# three kinds of append in small batches, so that drift on a shared machine hits all three alike.
STEPS: dict[str, tuple[str, ...]] = {
    "create": ("create",),
    "append_seq": ("append_seq",),
    "scopes": ("append_plain", "append_user", "append_app"),
    "get_full": ("get_full",),
    "get_recent": ("get_recent",),
    "list": ("list",),
    "append_conc": ("append_conc",),
}
# Keys of the state delta each "scopes" append adds to the usual three session keys.
_SCOPED_KEYS = {"append_plain": None, "append_user": "user:last_seen", "append_app": "app:events"}
_BATCH = 8


@attrs.frozen(kw_only=True)
class Sizes:
    """How much work each workload does.

    Attributes:
        rounds: Repetitions of every workload; the median is reported.
        creates: Sessions created in total (all for one user, then listed).
        seq: Events appended sequentially to one session in total (then read back).
        tasks: Concurrent tasks (one session each).
        per_task: Events each task appends per round.
        full_reads: Full reads per round.
        recent_reads: Last-20 reads per round.
        list_reads: List calls per round.
        small: History of the small growth session.
        big: History of the big growth session.
        growth_ops: Appends and reads per round and size in the growth workloads.
        warmup: Appends before measuring (connections, statement caches).
        turn_sizes: History sizes of the Runner-turn workload.
        turns: Measured Runner turns per store and size.
        cache_capacity: ``event_cache`` of the cache-memory measurement.
        cache_per_session: Events per session in the cache-memory measurement.
        cache_reads: Sessions read, one measurement each, in the cache-memory measurement.
    """

    rounds: int
    creates: int
    seq: int
    tasks: int = 32
    per_task: int
    full_reads: int
    recent_reads: int
    list_reads: int
    small: int = 100
    big: int
    growth_ops: int
    warmup: int
    turn_sizes: tuple[int, ...] = (10, 100, 1000)
    turns: int
    cache_capacity: int
    cache_per_session: int = 10
    cache_reads: tuple[int, ...] = (10, 40, 160)


DEFAULT = Sizes(
    rounds=5,
    creates=1000,
    seq=1000,
    per_task=10,
    full_reads=6,
    recent_reads=100,
    list_reads=4,
    big=100_000,
    growth_ops=100,
    warmup=20,
    turns=15,
    cache_capacity=200,
)
QUICK = Sizes(
    rounds=3,
    creates=240,
    seq=240,
    per_task=3,
    full_reads=3,
    recent_reads=30,
    list_reads=2,
    big=10_000,
    growth_ops=30,
    warmup=5,
    turn_sizes=(10, 100, 300),
    turns=5,
    cache_capacity=100,
    cache_per_session=5,
)


class Progress:
    """A one-line progress indicator on stderr (a line per step when stderr is not a tty)."""

    def __init__(self, total: int) -> None:
        """Start the clock.

        Args:
            total: Steps expected.
        """
        self.total = max(total, 1)
        self.done = 0
        self.start = time.perf_counter()
        self.tty = sys.stderr.isatty()

    def step(self, text: str, *, advance: bool = True) -> None:
        """Show what runs now.

        Args:
            text: Description of the step.
            advance: Whether this counts as a finished step.
        """
        if advance:
            self.done = min(self.done + 1, self.total)
        elapsed = time.perf_counter() - self.start
        line = f"[{100 * self.done // self.total:3d}% {elapsed:6.1f}s] {text}"
        if self.tty:
            sys.stderr.write("\r\x1b[2K" + line[:150])
        else:
            sys.stderr.write(line + "\n")
        sys.stderr.flush()

    def finish(self) -> None:
        """End the line."""
        if self.tty:
            sys.stderr.write("\n")
        sys.stderr.flush()


def steps_per_backend(sizes: Sizes, n_contenders: int, n_growth: int, turns: bool) -> int:
    """Return how many progress steps one backend takes.

    Args:
        sizes: The sizes.
        n_contenders: Contenders on the backend.
        n_growth: Contenders that run the growth workloads.
        turns: Whether the Runner-turn workload and the cache-memory measurement run.

    Returns:
        The count.
    """
    steps = n_contenders * (2 + len(STEPS) * sizes.rounds) + n_growth * (2 + sizes.rounds)
    if turns:
        steps += len(sizes.turn_sizes) * (1 + sizes.turns) + 1
    return steps


def _summary(rounds: list[float], latencies: list[float], ops: int) -> dict[str, Any]:
    lat = sorted(latencies)
    out: dict[str, Any] = {
        "ops_per_s": statistics.median(rounds),
        "rounds_ops_per_s": [round(r, 2) for r in rounds],
        "ops": ops,
    }
    if lat:
        out["p50_ms"] = 1000 * lat[len(lat) // 2]
        out["p99_ms"] = 1000 * lat[min(len(lat) - 1, int(len(lat) * 0.99))]
    return out


@attrs.define
class _Lane:
    """One contender and what it has built up during the run."""

    contender: Contender
    error: dict[str, str] = attrs.field(factory=dict)
    rounds: dict[str, list[float]] = attrs.field(factory=dict)
    latencies: dict[str, list[float]] = attrs.field(factory=dict)
    ops: dict[str, int] = attrs.field(factory=dict)
    seq_handle: Any = None
    conc_handles: list[Any] = attrs.field(factory=list)
    scope_handles: list[Any] = attrs.field(factory=list)
    growth: dict[str, Any] = attrs.field(factory=dict)

    def record(self, workload: str, ops: int, elapsed: float, latencies: list[float]) -> None:
        self.rounds.setdefault(workload, []).append(ops / elapsed)
        self.latencies.setdefault(workload, []).extend(latencies)
        self.ops[workload] = self.ops.get(workload, 0) + ops


async def _timed_appends(c: Contender, handle: Any, events: list[Any]) -> list[float]:
    lat = []
    for ev in events:
        t0 = time.perf_counter()
        await c.append(handle, ev)
        lat.append(time.perf_counter() - t0)
    return lat


async def _timed_reads(
    c: Contender, handle: Any, recent: int | None, n: int, want: int
) -> list[float]:
    lat = []
    for _ in range(n):
        t0 = time.perf_counter()
        got = await c.get(handle, recent)
        lat.append(time.perf_counter() - t0)
        if got != want:
            raise AssertionError(f"get_session returned {got} events, expected {want}")
    return lat


def _specs(n: int, start: int = 1) -> list[dict[str, Any]]:
    return [event_spec(start + i) for i in range(n)]


def _scoped_spec(index: int, workload: str) -> dict[str, Any]:
    """An event whose delta has the three session keys and, per workload, one scoped key."""
    spec = event_spec(index)
    delta = spec["actions"]["state_delta"]
    for key in [k for k in delta if ":" in k]:
        del delta[key]
    scoped = _SCOPED_KEYS[workload]
    if scoped is not None:
        delta[scoped] = index
    return spec


async def _scopes_round(lane: _Lane, sizes: Sizes, r: int) -> None:
    """Sequential appends to the scope sessions in turn, by kind, interleaved in batches."""
    c = lane.contender
    n = sizes.seq // sizes.rounds
    elapsed = dict.fromkeys(_SCOPED_KEYS, 0.0)
    latencies: dict[str, list[float]] = {w: [] for w in _SCOPED_KEYS}
    done = 0
    while done < n:
        size = min(_BATCH, n - done)
        for workload in _SCOPED_KEYS:
            events = [
                c.make_event(_scoped_spec(1 + r * n + done + i, workload)) for i in range(size)
            ]
            for i, ev in enumerate(events):
                handle = lane.scope_handles[(done + i) % len(lane.scope_handles)]
                t0 = time.perf_counter()
                await c.append(handle, ev)
                took = time.perf_counter() - t0
                elapsed[workload] += took
                latencies[workload].append(took)
        done += size
    for workload in _SCOPED_KEYS:
        lane.record(workload, n, elapsed[workload], latencies[workload])


async def _round(lane: _Lane, workload: str, sizes: Sizes, r: int) -> None:
    """Run round ``r`` of one workload on one contender and record it."""
    c = lane.contender
    if workload == "scopes":
        await _scopes_round(lane, sizes, r)
    elif workload == "create":
        n = sizes.creates // sizes.rounds
        ids = [f"s-{r}-{i}-{uuid.uuid4().hex[:8]}" for i in range(n)]
        lat = []
        t0 = time.perf_counter()
        for sid in ids:
            t1 = time.perf_counter()
            await c.create("lister", sid, {"plan": "free", "locale": "en-GB", "turns": 0})
            lat.append(time.perf_counter() - t1)
        lane.record(workload, n, time.perf_counter() - t0, lat)
    elif workload == "append_seq":
        n = sizes.seq // sizes.rounds
        events = [c.make_event(s) for s in _specs(n, 1 + r * n)]
        t0 = time.perf_counter()
        lat = await _timed_appends(c, lane.seq_handle, events)
        lane.record(workload, n, time.perf_counter() - t0, lat)
    elif workload in ("get_full", "get_recent"):
        recent, n = (None, sizes.full_reads) if workload == "get_full" else (20, sizes.recent_reads)
        want = sizes.seq if recent is None else 20
        t0 = time.perf_counter()
        lat = await _timed_reads(c, lane.seq_handle, recent, n, want)
        lane.record(workload, n, time.perf_counter() - t0, lat)
    elif workload == "list":
        lat = []
        t0 = time.perf_counter()
        for _ in range(sizes.list_reads):
            t1 = time.perf_counter()
            got = await c.list("lister")
            lat.append(time.perf_counter() - t1)
            if got != sizes.creates // sizes.rounds * sizes.rounds:
                raise AssertionError(f"list_sessions returned {got} sessions")
        lane.record(workload, sizes.list_reads, time.perf_counter() - t0, lat)
    elif workload == "append_conc":
        per_task = [
            [c.make_event(s) for s in _specs(sizes.per_task, 1 + r * sizes.per_task)]
            for _ in lane.conc_handles
        ]
        lat_all: list[float] = []

        async def task(handle: Any, events: list[Any]) -> None:
            lat_all.extend(await _timed_appends(c, handle, events))

        t0 = time.perf_counter()
        async with anyio.create_task_group() as tg:
            for handle, events in zip(lane.conc_handles, per_task, strict=True):
                tg.start_soon(task, handle, events)
        lane.record(workload, sizes.per_task * sizes.tasks, time.perf_counter() - t0, lat_all)


async def _prepare(lane: _Lane, sizes: Sizes) -> None:
    """Warm the contender up and create the sessions the workloads use."""
    c = lane.contender
    warm = await c.create("warm", "warm", {})
    for ev in [c.make_event(s) for s in _specs(sizes.warmup)]:
        await c.append(warm, ev)
    await c.get(warm, None)
    await c.get(warm, 20)
    await c.list("warm")
    lane.seq_handle = await c.create("seq", "seq", {"plan": "free"})
    # One user per session: on Citus each lands on its own user's shard, spread over the workers.
    lane.conc_handles = [await c.create(f"conc-{i}", "conc", {}) for i in range(sizes.tasks)]
    if c.scopes:
        lane.scope_handles = [await c.create(f"scope-{i}", "scope", {}) for i in range(sizes.tasks)]


async def _alloc_peak(c: Contender, handle: Any) -> int:
    await c.get(handle, 20)
    peaks = []
    for _ in range(3):
        gc.collect()
        tracemalloc.start()
        try:
            await c.get(handle, 20)
            peaks.append(tracemalloc.get_traced_memory()[1])
        finally:
            tracemalloc.stop()
    return int(statistics.median(peaks))


async def _growth(lanes: list[_Lane], sizes: Sizes, progress: Progress, backend: str) -> None:
    """Append and last-20 read cost at ``small`` vs ``big`` events of history."""
    for lane in lanes:
        c = lane.contender
        progress.step(
            f"{backend} · growth · {c.key} · loading {sizes.small:,} + {sizes.big:,} events"
        )
        small = await c.create("growth", "small", {"plan": "free"})
        big = await c.create("growth", "big", {"plan": "free"})
        small = await c.bulk_history(small, _specs(sizes.small))
        big = await c.bulk_history(big, _specs(sizes.big))
        lane.growth = {"handles": {"small": small, "big": big}, "append": {}, "read": {}}
        for h in (small, big):  # warm both paths
            await c.append(h, c.make_event(event_spec(0)))
            await c.get(h, 20)
    for r in range(sizes.rounds):
        for lane in lanes:
            c = lane.contender
            progress.step(f"{backend} · growth · {c.key} · round {r + 1}/{sizes.rounds}")
            handles = list(lane.growth["handles"].items())
            for size, h in handles if r % 2 == 0 else handles[::-1]:  # alternate who goes first
                gc.collect()
                gc.freeze()
                events = [c.make_event(s) for s in _specs(sizes.growth_ops, 10 * r)]
                lane.growth["append"].setdefault(size, []).extend(
                    await _timed_appends(c, h, events)
                )
                lane.growth["read"].setdefault(size, []).extend(
                    await _timed_reads(c, h, 20, sizes.growth_ops, 20)
                )
    for lane in lanes:
        c = lane.contender
        progress.step(f"{backend} · growth · {c.key} · tracemalloc")
        handles = lane.growth["handles"]
        lane.growth["alloc"] = {size: await _alloc_peak(c, h) for size, h in handles.items()}


@contextlib.asynccontextmanager
async def _location(backend: str, key: str, admin_dsn: str | None, tmp: str) -> AsyncIterator[str]:
    if backend == "sqlite":
        yield f"{tmp}/{key}.db"
    else:
        assert admin_dsn is not None
        async with _pg.fresh_database(admin_dsn, key, citus=backend == "citus") as dsn:
            yield dsn


def _growth_summary(g: dict[str, Any], sizes: Sizes) -> dict[str, Any]:
    med = {
        kind: {size: statistics.median(v) * 1000 for size, v in g[kind].items()}
        for kind in ("append", "read")
    }
    return {
        "small_events": sizes.small,
        "big_events": sizes.big,
        "append_ms": med["append"],
        "read_recent20_ms": med["read"],
        "append_ratio": med["append"]["big"] / med["append"]["small"],
        "read_ratio": med["read"]["big"] / med["read"]["small"],
        "alloc_peak_bytes": g["alloc"],
        "alloc_ratio": g["alloc"]["big"] / g["alloc"]["small"],
    }


async def run_backend(
    backend: str,
    sizes: Sizes,
    *,
    admin_dsn: str | None,
    pool_size: int,
    only: set[str] | None,
    progress: Progress,
    growth: bool,
    turns: bool = True,
) -> dict[str, Any]:
    """Run every workload on every contender of one backend.

    Args:
        backend: ``"sqlite"``, ``"postgres"`` or ``"citus"``.
        sizes: The sizes.
        admin_dsn: PostgreSQL (or Citus coordinator) administrative DSN (``None`` for SQLite).
        pool_size: Connections per contender on PostgreSQL.
        only: Contender keys to run, or ``None`` for all.
        progress: The progress indicator.
        growth: Whether to run the growth workloads.
        turns: Whether to run the Runner-turn workload and the cache-memory measurement
            (google-adk contenders only).

    Returns:
        ``{"results": {workload: {contender: stats}}, "growth": {...}, "turns": {...},
        "cache_memory": {...}, "contenders": {...}}``.
    """
    classes = build_contenders(backend, only)
    lanes: list[_Lane] = []
    results: dict[str, dict[str, Any]] = {w: {} for w in WORKLOADS}
    async with contextlib.AsyncExitStack() as stack:
        tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="adk-bench-"))
        for cls in classes:
            location = await stack.enter_async_context(_location(backend, cls.key, admin_dsn, tmp))
            c = cls(backend, location, pool_size)
            lane = _Lane(c)
            progress.step(f"{backend} · open · {c.key}")
            try:
                await c.open()
                stack.push_async_callback(c.close)
                await _prepare(lane, sizes)
            except Exception as exc:  # a broken contender is reported, not fatal
                lane.error["*"] = f"{type(exc).__name__}: {exc}"
            progress.step(f"{backend} · ready · {c.key}")
            lanes.append(lane)
        for workload, records in STEPS.items():
            for r in range(sizes.rounds):
                for lane in lanes:
                    progress.step(
                        f"{backend} · {workload} · {lane.contender.key} · "
                        f"round {r + 1}/{sizes.rounds}"
                    )
                    if lane.error.get("*") or lane.error.get(workload):
                        continue
                    if workload == "scopes" and not lane.contender.scopes:
                        continue
                    # Survivors of earlier rounds (other contenders' sessions, thousands of
                    # events) go to the permanent generation, so a collection during this round
                    # costs what this round allocated, not what the whole run holds.
                    gc.collect()
                    gc.freeze()
                    try:
                        await _round(lane, workload, sizes, r)
                    except Exception as exc:
                        for record in records:
                            lane.error[record] = f"{type(exc).__name__}: {exc}"[:300]
                        lane.error[workload] = lane.error[records[0]]
        for workload in WORKLOADS:
            for lane in lanes:
                err = lane.error.get("*") or lane.error.get(workload)
                if err:
                    results[workload][lane.contender.key] = {"error": err}
                elif workload not in lane.rounds:
                    continue  # not run on this contender
                else:
                    results[workload][lane.contender.key] = _summary(
                        lane.rounds[workload], lane.latencies[workload], lane.ops[workload]
                    )
        growth_out: dict[str, Any] = {}
        # The growth workloads measure history length, not scale-out: not repeated on Citus.
        growth = growth and backend != "citus"
        glanes = [ln for ln in lanes if growth and ln.contender.growth and not ln.error.get("*")]
        if glanes:
            try:
                await _growth(glanes, sizes, progress, backend)
                growth_out = {ln.contender.key: _growth_summary(ln.growth, sizes) for ln in glanes}
            except Exception as exc:
                growth_out = {"error": f"{type(exc).__name__}: {exc}"[:300]}
        turns_out: dict[str, Any] = {}
        memory_out: dict[str, Any] = {}
        if turns:
            turns_out, memory_out = await _turns(lanes, sizes, progress, backend)
        contenders = {
            ln.contender.key: {"title": ln.contender.title, "settings": ln.contender.settings}
            for ln in lanes
        }
    gc.unfreeze()
    return {
        "results": results,
        "growth": growth_out,
        "turns": turns_out,
        "cache_memory": memory_out,
        "contenders": contenders,
    }


async def _turns(
    lanes: list[_Lane], sizes: Sizes, progress: Progress, backend: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Run the Runner-turn workload and the cache-memory measurement on the google-adk stores."""
    if not adk_wrapper_available():
        return {}, {}
    from . import _turn

    stores = {
        ln.contender.key: cast("Any", ln.contender).service
        for ln in lanes
        if ln.contender.adk_api and not ln.error.get("*")
    }
    if not stores:
        return {}, {}
    turns_out: dict[str, Any]
    try:
        turns_out = await _turn.run_turns(
            stores,
            tuple(sizes.turn_sizes),
            sizes.turns,
            lambda text: progress.step(f"{backend} · {text}"),
        )
    except Exception as exc:
        turns_out = {"error": f"{type(exc).__name__}: {exc}"[:300]}
    memory_out: dict[str, Any] = {}
    cached = [ln.contender for ln in lanes if isinstance(ln.contender, OursAdkCache)]
    if cached and not any(ln.error.get("*") for ln in lanes if ln.contender is cached[0]):
        progress.step(f"{backend} · event cache memory")
        contender = cached[0]
        from adk_sessions.adk import AdkSessionService

        core = contender.service.service

        def factory(capacity: int) -> AdkSessionService:
            return AdkSessionService(core, event_cache=capacity)

        try:
            memory_out = await _turn.cache_memory(
                factory,
                contender.service,
                capacity=sizes.cache_capacity,
                per_session=sizes.cache_per_session,
                reads=tuple(sizes.cache_reads),
            )
        except Exception as exc:
            memory_out = {"error": f"{type(exc).__name__}: {exc}"[:300]}
    return turns_out, memory_out


def describe(workload: str, sizes: Sizes) -> str:
    """Return a workload's label with its sizes filled in.

    Args:
        workload: A key of :data:`WORKLOADS`.
        sizes: The sizes.

    Returns:
        The label.
    """
    return WORKLOADS[workload].format(
        seq=f"{sizes.seq:,}", creates=f"{sizes.creates:,}", tasks=sizes.tasks
    )


Formatter = Callable[[float], str]
