"""Where should app state live on Citus? ``python -m benchmarks.app_scope [--citus-dsn DSN]``.

The three layouts the design weighed, measured side by side on one Citus cluster (a throwaway
coordinator with two workers and fsync on, unless ``--citus-dsn`` names one):

- ``by app_name`` (what migration 2 does): ``adk_app_states`` hash-distributed by ``app_name``;
  an append with an ``app:`` key writes the app's shard too, a two-phase commit when that shard
  is on another worker than the session's.
- ``reference``: app state in a reference table, a copy on every node; every such append writes
  all of them (two-phase commit on every node).
- ``deltas``: the app-scope deltas kept beside the session (a row per user, co-located with
  the user's sessions, merged in place: one shard), the app state folded from every user's row
  when read, which means a read of every shard.

Each append is the library's transaction written out by hand, one statement per table (BEGIN,
lock, event, app scope, session, COMMIT), round-robin over 32 users' sessions; kinds interleave
in batches so drift hits all alike. Reads: the session with its user scope (one shard) plus the
app scope as each layout must read it. Numbers are printed, nothing is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import statistics
import time
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg

import adk_sessions

from . import _pg

USERS = [f"user{i:02d}" for i in range(32)]
APP = "bench-app"
_EVENT = json.dumps({"author": "model", "content": {"parts": [{"text": "x" * 400}]}})

_SETUP = [
    'CREATE TABLE app_ref (app_name TEXT COLLATE "C" PRIMARY KEY, state JSONB NOT NULL, '
    "update_time DOUBLE PRECISION NOT NULL)",
    "SELECT create_reference_table('app_ref')",
    'CREATE TABLE app_deltas (app_name TEXT COLLATE "C" NOT NULL, user_id TEXT COLLATE "C" '
    "NOT NULL, state JSONB NOT NULL, update_time DOUBLE PRECISION NOT NULL, "
    "PRIMARY KEY (app_name, user_id))",
    "SELECT create_distributed_table('app_deltas', 'user_id', colocate_with => 'adk_sessions')",
]
_LOCK = (
    "SELECT revision FROM adk_sessions WHERE app_name = $1 AND user_id = $2 AND id = 's' FOR UPDATE"
)
_EVENT_SQL = (
    "INSERT INTO adk_events (app_name, user_id, session_id, seq, id, timestamp, event) "
    "VALUES ($1, $2, 's', $3, $4, $5, $6::json)"
)
_SESSION = (
    "UPDATE adk_sessions SET state = state || '{\"k\": 1}', revision = $3, update_time = $4 "
    "WHERE app_name = $1 AND user_id = $2 AND id = 's'"
)
_APP_WRITES = {
    "none": None,
    "by app_name": (
        "INSERT INTO adk_app_states AS a (app_name, state, update_time) "
        "VALUES ($1, '{\"n\": 1}', $2) ON CONFLICT (app_name) DO UPDATE "
        "SET state = a.state || EXCLUDED.state, update_time = EXCLUDED.update_time"
    ),
    "reference": (
        "INSERT INTO app_ref AS a (app_name, state, update_time) "
        "VALUES ($1, '{\"n\": 1}', $2) ON CONFLICT (app_name) DO UPDATE "
        "SET state = a.state || EXCLUDED.state, update_time = EXCLUDED.update_time"
    ),
    "deltas": (
        "INSERT INTO app_deltas AS d (app_name, user_id, state, update_time) "
        "VALUES ($1, $3, '{\"n\": 1}', $2) ON CONFLICT (app_name, user_id) DO UPDATE "
        "SET state = d.state || EXCLUDED.state, update_time = EXCLUDED.update_time"
    ),
}
_SESSION_READ = (
    "SELECT s.state, s.revision, u.state AS user_state FROM adk_sessions s "
    "LEFT JOIN adk_user_states u ON u.app_name = s.app_name AND u.user_id = s.user_id "
    "WHERE s.app_name = $1 AND s.user_id = $2 AND s.id = 's'"
)
# get_session as each layout reads it: the statements after the session's own.
_READS: dict[str, list[str]] = {
    "session only": [_SESSION_READ],
    # The app's shard, in a statement of its own (what the library runs).
    "by app_name": [_SESSION_READ, "SELECT state FROM adk_app_states WHERE app_name = $1"],
    # A reference table joins on the session's own worker: still one statement, one shard.
    "reference": [
        "SELECT s.state, s.revision, u.state AS user_state, a.state AS app_state "
        "FROM adk_sessions s "
        "LEFT JOIN adk_user_states u ON u.app_name = s.app_name AND u.user_id = s.user_id "
        "LEFT JOIN app_ref a ON a.app_name = s.app_name "
        "WHERE s.app_name = $1 AND s.user_id = $2 AND s.id = 's'"
    ],
    # Every user's deltas, from every shard.
    "deltas": [_SESSION_READ, "SELECT state, update_time FROM app_deltas WHERE app_name = $1"],
}


async def _append(conn: asyncpg.Connection, kind: str, user: str, seq: int) -> None:
    await conn.execute("BEGIN")
    await conn.fetchval(_LOCK, APP, user)
    await conn.execute(_EVENT_SQL, APP, user, seq, f"e{seq}", float(seq), _EVENT)
    sql = _APP_WRITES[kind]
    if sql is not None:
        args: tuple[Any, ...] = (APP, float(seq)) if kind != "deltas" else (APP, float(seq), user)
        await conn.execute(sql, *args)
    await conn.execute(_SESSION, APP, user, seq, float(seq))
    await conn.execute("COMMIT")


async def _timed(
    kinds: list[str], batches: int, call: Callable[[str, int], Awaitable[None]]
) -> dict[str, float]:
    """Seconds per operation of each kind, the kinds interleaved in batches of 8."""
    spent = dict.fromkeys(kinds, 0.0)
    done = 0
    for _ in range(batches):
        for kind in kinds:
            start = time.perf_counter()
            for i in range(8):
                await call(kind, done + i)
            spent[kind] += time.perf_counter() - start
        done += 8
    return {kind: spent[kind] / (8 * batches) for kind in kinds}


async def _run(dsn: str, batches: int, rounds: int) -> None:
    async with _pg.fresh_database(dsn, "app_scope", citus=True) as url:
        async with adk_sessions.connect(url) as service:  # migration 2 distributes the tables
            for user in USERS:
                await service.create_session(app_name=APP, user_id=user, session_id="s")
        conn = await asyncpg.connect(url)
        try:
            for statement in _SETUP:
                await conn.execute(statement)
            seq = dict.fromkeys(USERS, 0)

            async def append(kind: str, i: int) -> None:
                user = USERS[i % len(USERS)]
                seq[user] += 1
                await _append(conn, kind, user, seq[user])

            async def read(kind: str, i: int) -> None:
                for sql in _READS[kind]:
                    args = (APP, USERS[i % len(USERS)]) if "user_id = $2" in sql else (APP,)
                    await conn.fetch(sql, *args)

            writes: dict[str, list[float]] = {}
            reads: dict[str, list[float]] = {}
            await _timed(list(_APP_WRITES), 1, append)  # warm-up
            for _ in range(rounds):
                for kind, cost in (await _timed(list(_APP_WRITES), batches, append)).items():
                    writes.setdefault(kind, []).append(cost)
                for kind, cost in (await _timed(list(_READS), batches, read)).items():
                    reads.setdefault(kind, []).append(cost)
            shards = await conn.fetchval(
                "SELECT count(*) FROM pg_dist_shard WHERE logicalrelid = 'app_deltas'::regclass"
            )
        finally:
            await conn.close()
    base_write = statistics.median(writes["none"])
    base_read = statistics.median(reads["session only"])
    print(f"median of {rounds} rounds, {8 * batches} operations each; app_deltas: {shards} shards")
    print(f"{'append with an app: key':32} {'ms':>8} {'vs no app: key':>15}")
    for kind, costs in writes.items():
        ms = statistics.median(costs) * 1000
        print(f"{kind:32} {ms:8.3f} {statistics.median(costs) / base_write:14.2f}x")
    print(f"\n{'get_session reads of the app scope':32} {'ms':>8} {'vs session only':>15}")
    for kind, costs in reads.items():
        ms = statistics.median(costs) * 1000
        print(f"{kind:32} {ms:8.3f} {statistics.median(costs) / base_read:14.2f}x")


def main(argv: list[str] | None = None) -> int:
    """Run the comparison and print it.

    Args:
        argv: Arguments (default: ``sys.argv[1:]``).

    Returns:
        The exit status.
    """
    p = argparse.ArgumentParser(prog="python -m benchmarks.app_scope", description=__doc__)
    p.add_argument("--citus-dsn", help="Citus coordinator (default: a throwaway cluster)")
    p.add_argument("--batches", type=int, default=20, help="batches of 8 per kind and round")
    p.add_argument("--rounds", type=int, default=3, help="rounds (the median is reported)")
    args = p.parse_args(argv)
    with contextlib.ExitStack() as stack:
        dsn, source = stack.enter_context(_pg.citus_server(args.citus_dsn))
        print(f"Citus cluster: {source}")
        asyncio.run(_run(dsn, args.batches, args.rounds))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
