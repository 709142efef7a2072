"""PostgreSQL for the benchmark: a DSN or a throwaway cluster; a fresh database per contender.

A Citus cluster (backend ``citus``) is the same: a coordinator DSN or a throwaway coordinator with
two workers; each contender's fresh database is created on every node and wired together.
"""

from __future__ import annotations

import contextlib
import inspect
import secrets
import urllib.parse
from collections.abc import AsyncIterator, Iterator
from typing import Any

import asyncpg

__all__ = ("citus_server", "durability_settings", "fresh_database", "pg_server", "with_database")

_SETTINGS = (
    "server_version",
    "fsync",
    "synchronous_commit",
    "full_page_writes",
    "wal_sync_method",
    "shared_buffers",
    "max_connections",
)


@contextlib.contextmanager
def pg_server(dsn: str | None) -> Iterator[tuple[str, str]]:
    """Yield an administrative DSN and a description of where it came from.

    Args:
        dsn: A ``postgresql://`` DSN given on the command line, or ``None`` for a throwaway
            cluster from ``adk_sessions._pgcluster.throwaway_postgres()``, asked to keep fsync on
            when it offers an option for that.

    Yields:
        ``(dsn, source)``.
    """
    if dsn:
        yield dsn, "--pg-dsn"
        return
    from adk_sessions import _pgcluster

    factory: Any = _pgcluster.throwaway_postgres
    params = inspect.signature(factory).parameters
    kwargs: dict[str, Any] = {}
    for name in ("fsync", "durable"):
        if name in params:
            kwargs[name] = True
    with factory(**kwargs) as throwaway_dsn:
        yield str(throwaway_dsn), f"throwaway_postgres({', '.join(f'{k}=True' for k in kwargs)})"


@contextlib.contextmanager
def citus_server(dsn: str | None) -> Iterator[tuple[str, str]]:
    """Yield an administrative DSN of a Citus coordinator and where it came from.

    Args:
        dsn: A coordinator DSN given on the command line, or ``None`` for a throwaway cluster
            (``adk_sessions._pgcluster.throwaway_citus(fsync=True)``: a coordinator and two
            workers, durability on for every node).

    Yields:
        ``(dsn, source)``.
    """
    if dsn:
        yield dsn, "--citus-dsn"
        return
    from adk_sessions import _pgcluster

    with _pgcluster.throwaway_citus(workers=2, fsync=True) as throwaway_dsn:
        yield throwaway_dsn, "throwaway_citus(workers=2, fsync=True)"


async def citus_versions(dsn: str) -> dict[str, str]:
    """Return the Citus version and the worker count of a coordinator (for the report).

    Args:
        dsn: An administrative DSN of the coordinator.

    Returns:
        ``{"citus": ..., "workers": ...}``.
    """
    from adk_sessions import _pgcluster

    conn = await asyncpg.connect(dsn)
    try:
        version = await conn.fetchval("SELECT citus_version()")
    finally:
        await conn.close()
    nodes = await _pgcluster.citus_nodes(dsn)
    return {"citus": str(version).split(" on ")[0], "workers": str(len(nodes.workers))}


async def durability_settings(dsn: str, *, enforce: bool) -> dict[str, str]:
    """Read (and, for a throwaway cluster, switch on) the settings that decide commit cost.

    ``fsync`` can be changed with a configuration reload, so a throwaway cluster started with
    fsync off is switched back on with ``ALTER SYSTEM``; a command-line ``-F`` wins over that, and
    the value actually in force is what gets reported.

    Args:
        dsn: An administrative DSN.
        enforce: Whether to turn ``fsync``/``synchronous_commit``/``full_page_writes`` on.

    Returns:
        Setting name to value, as the server reports it.
    """
    conn = await asyncpg.connect(dsn)
    try:
        if enforce:
            current = {n: await conn.fetchval(f"SHOW {n}") for n in _SETTINGS}
            changed = False
            for name in ("fsync", "synchronous_commit", "full_page_writes"):
                if current[name] != "on":
                    await conn.execute(f"ALTER SYSTEM SET {name} = on")
                    changed = True
            if changed:
                await conn.execute("SELECT pg_reload_conf()")
                await conn.close()
                conn = await asyncpg.connect(dsn)
        return {n: str(await conn.fetchval(f"SHOW {n}")) for n in _SETTINGS}
    finally:
        await conn.close()


def with_database(dsn: str, database: str) -> str:
    """Return ``dsn`` pointing at another database.

    Args:
        dsn: A libpq-style URL.
        database: The database name.

    Returns:
        The new URL.
    """
    parts = urllib.parse.urlsplit(dsn)
    return urllib.parse.urlunsplit(parts._replace(path="/" + database))


async def _nodes(admin_dsn: str, citus: bool) -> tuple[list[str], Any]:
    """The maintenance DSN of every node (coordinator first) and the Citus nodes, if any."""
    if not citus:
        return [admin_dsn], None
    from adk_sessions import _pgcluster

    nodes = await _pgcluster.citus_nodes(admin_dsn)
    return [admin_dsn, *nodes.worker_dsns(admin_dsn)], nodes


@contextlib.asynccontextmanager
async def fresh_database(admin_dsn: str, label: str, *, citus: bool = False) -> AsyncIterator[str]:
    """Create a new database for one contender and drop it afterwards.

    Args:
        admin_dsn: A DSN with the right to create databases.
        label: Part of the database name.
        citus: ``admin_dsn`` is a Citus coordinator: create the database on every node, with
            the extension, and register the nodes in it.

    Yields:
        A DSN of the new, empty database.
    """
    name = f"bench_{label.replace('-', '_')}_{secrets.token_hex(3)}"
    dsns, nodes = await _nodes(admin_dsn, citus)
    for node in dsns:
        conn = await asyncpg.connect(node)
        try:
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()
    try:
        url = with_database(admin_dsn, name)
        if nodes is not None:
            from adk_sessions import _pgcluster

            await _pgcluster.wire_citus_database(url, nodes)
        yield url
    finally:
        for node in reversed(dsns):
            conn = await asyncpg.connect(node)
            try:
                await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            finally:
                await conn.close()
