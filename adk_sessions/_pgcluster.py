"""Throwaway PostgreSQL servers for the test suite and the benchmarks (not used by the library).

Order of preference: PostgreSQL binaries on the machine (``initdb``/``pg_ctl``, run through
``runuser -u postgres`` when root, since PostgreSQL refuses to run as root), then the ``pgserver``
package (a test extra).

A throwaway Citus cluster (a coordinator and workers on loopback ports) needs the same binaries
with Citus installed into them (``citus.so`` in ``pg_config --pkglibdir``); the statements that
wire it together live in ``sql/citus/cluster.sql``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import glob
import os
import shutil
import socket
import subprocess
import tempfile
import urllib.parse
import warnings
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
import attrs

from ._queries import Query, parse_queries, sql_root

__all__ = (
    "CitusNodes",
    "PostgresUnavailable",
    "citus_nodes",
    "find_citus_bindir",
    "find_pg_bindir",
    "throwaway_citus",
    "throwaway_postgres",
    "wire_citus_database",
)

_T = TypeVar("_T")


class PostgresUnavailable(RuntimeError):
    """No way to start a PostgreSQL server on this machine."""


def find_pg_bindir() -> Path | None:
    """Return a folder holding ``initdb`` and ``pg_ctl``, newest major version first."""
    candidates: list[str] = []
    initdb = shutil.which("initdb")
    if initdb:
        candidates.append(str(Path(initdb).resolve().parent))
    candidates += sorted(
        glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(p.split("/")[-2]), reverse=True
    )
    candidates += [*sorted(glob.glob("/usr/local/pgsql*/bin")), "/opt/homebrew/bin"]
    for folder in candidates:
        path = Path(folder)
        if (path / "initdb").exists() and (path / "pg_ctl").exists():
            return path
    return None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _as_postgres() -> list[str]:
    """The command prefix that runs a server program as ``postgres`` when we are root."""
    as_root = hasattr(os, "geteuid") and os.geteuid() == 0
    return ["runuser", "-u", "postgres", "--"] if as_root else []


def _server_options(port: int, sockets: Path, *, fsync: bool, extra: str = "") -> str:
    durable = "on" if fsync else "off"
    return (
        f"-p {port} -k {sockets} -c listen_addresses=127.0.0.1 -c max_connections=200 "
        f"-c fsync={durable} -c synchronous_commit={durable} -c full_page_writes={durable}"
        + (f" {extra}" if extra else "")
    )


def _run(command: list[str]) -> None:
    subprocess.run(command, check=True, capture_output=True, text=True)


def _initdb(bindir: Path, data: Path) -> None:
    _run(
        [
            *_as_postgres(),
            str(bindir / "initdb"),
            "-D",
            str(data),
            "-U",
            "postgres",
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--locale=C",
            "--no-sync",
        ]
    )


def _start(bindir: Path, data: Path, options: str, log: Path) -> None:
    _run(
        [
            *_as_postgres(),
            str(bindir / "pg_ctl"),
            "-D",
            str(data),
            "-o",
            options,
            "-w",
            "-t",
            "60",
            "-l",
            str(log),
            "start",
        ]
    )


def _stop(bindir: Path, data: Path) -> None:
    subprocess.run(
        [*_as_postgres(), str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"],
        check=False,
        capture_output=True,
    )


def _workspace(prefix: str) -> tuple[Path, Path]:
    """A temporary folder (owned by ``postgres`` when root) and its socket folder."""
    base = Path(tempfile.mkdtemp(prefix=prefix))
    sockets = base / "sock"
    sockets.mkdir()
    if _as_postgres():
        shutil.chown(base, "postgres")
        shutil.chown(sockets, "postgres")
    return base, sockets


def _failure(what: str, exc: BaseException) -> PostgresUnavailable:
    detail = getattr(exc, "stderr", "") or str(exc)
    return PostgresUnavailable(f"could not start {what}: {detail}")


@contextlib.contextmanager
def _from_binaries(bindir: Path, *, fsync: bool) -> Iterator[str]:
    base, sockets = _workspace("adk-sessions-pg-")
    data = base / "data"
    port = _free_port()
    try:
        _initdb(bindir, data)
        _start(bindir, data, _server_options(port, sockets, fsync=fsync), base / "server.log")
    except (OSError, subprocess.CalledProcessError) as exc:
        shutil.rmtree(base, ignore_errors=True)
        raise _failure(f"PostgreSQL from {bindir}", exc) from exc
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        _stop(bindir, data)
        shutil.rmtree(base, ignore_errors=True)


@contextlib.contextmanager
def _from_pgserver() -> Iterator[str]:
    with warnings.catch_warnings():
        # pgserver reads platformdirs' runtime dir on import, which warns when XDG_RUNTIME_DIR
        # is unset (root in CI); harmless here, and fatal under pytest's warnings-as-errors.
        warnings.simplefilter("ignore")
        try:
            import pgserver  # type: ignore[import-not-found,unused-ignore]
        except ImportError as exc:
            raise PostgresUnavailable(
                "no PostgreSQL binaries found and the pgserver package is not installed "
                "(pip install 'adk-sessions[test]')"
            ) from exc
        base = tempfile.mkdtemp(prefix="adk-sessions-pgserver-")
        server = pgserver.get_server(  # type: ignore[attr-defined,unused-ignore]
            base, cleanup_mode="delete"
        )
    try:
        yield str(server.get_uri())
    finally:
        server.cleanup()


@contextlib.contextmanager
def throwaway_postgres(*, fsync: bool = False, source: str = "auto") -> Iterator[str]:
    """Start a private PostgreSQL server for the duration of the block.

    Args:
        fsync: Keep durability on (``fsync``, ``synchronous_commit``); benchmarks want it, tests
            run faster without it (the ``pgserver`` fallback keeps its own settings).
        source: ``"auto"`` (binaries, else ``pgserver``), ``"binaries"`` or ``"pgserver"``.

    Yields:
        A ``postgresql://`` DSN of the ``postgres`` database, trust authentication.

    Raises:
        PostgresUnavailable: When neither binaries nor ``pgserver`` can provide a server.
    """
    if source not in ("auto", "binaries", "pgserver"):
        raise ValueError(f"source must be 'auto', 'binaries' or 'pgserver', not {source!r}")
    bindir = find_pg_bindir() if source != "pgserver" else None
    if source == "binaries" and bindir is None:
        raise PostgresUnavailable("no initdb/pg_ctl found on this machine")
    if bindir is not None:
        with _from_binaries(bindir, fsync=fsync) as dsn:
            yield dsn
        return
    with _from_pgserver() as dsn:
        yield dsn


# --- Citus ----------------------------------------------------------------------------------------


def find_citus_bindir() -> Path | None:
    """Return the folder of :func:`find_pg_bindir` when its PostgreSQL has Citus installed.

    Citus is installed when ``citus.so`` is in that PostgreSQL's ``pg_config --pkglibdir``.
    """
    bindir = find_pg_bindir()
    if bindir is None or not (bindir / "pg_config").exists():
        return None
    try:
        found = subprocess.run(
            [str(bindir / "pg_config"), "--pkglibdir"], check=True, capture_output=True, text=True
        )
    except (OSError, subprocess.CalledProcessError):
        return None
    return bindir if (Path(found.stdout.strip()) / "citus.so").exists() else None


@attrs.frozen(kw_only=True)
class CitusNodes:
    """The nodes of a Citus cluster, as the coordinator reaches them.

    Attributes:
        coordinator: ``(host, port)`` of the coordinator, or None when it is not registered.
        workers: ``(host, port)`` of each worker.
    """

    coordinator: tuple[str, int] | None
    workers: tuple[tuple[str, int], ...]

    def worker_dsns(self, dsn: str) -> list[str]:
        """Return ``dsn`` (user, password, database) pointed at each worker.

        Args:
            dsn: A DSN of the coordinator.

        Returns:
            One DSN per worker.
        """
        return [_at(dsn, host, port) for host, port in self.workers]


def _cluster_queries() -> dict[str, Query]:
    text = (sql_root() / "citus" / "cluster.sql").read_text("utf-8")
    return parse_queries(text, positional=True, source="sql/citus/cluster.sql")


def _at(dsn: str, host: str, port: int) -> str:
    """``dsn`` with its host and port replaced (user, password and database kept)."""
    parts = urllib.parse.urlsplit(dsn)
    userinfo, _, _ = parts.netloc.rpartition("@")
    address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    return urllib.parse.urlunsplit(
        parts._replace(netloc=f"{userinfo}@{address}" if userinfo else address)
    )


async def _execute(conn: asyncpg.Connection, query: Query, **params: Any) -> list[asyncpg.Record]:
    return await conn.fetch(query.statements[0], *[params[name] for name in query.params])  # type: ignore[no-any-return]


async def citus_nodes(dsn: str) -> CitusNodes:
    """Read a Citus database's nodes from its coordinator.

    Args:
        dsn: A database on the coordinator that has the ``citus`` extension.

    Returns:
        The coordinator and the workers.
    """
    nodes = _cluster_queries()["nodes"]
    conn = await asyncpg.connect(dsn)
    try:
        rows = await _execute(conn, nodes)
    finally:
        await conn.close()
    coordinator = [(r["nodename"], int(r["nodeport"])) for r in rows if r["is_coordinator"]]
    return CitusNodes(
        coordinator=coordinator[0] if coordinator else None,
        workers=tuple((r["nodename"], int(r["nodeport"])) for r in rows if not r["is_coordinator"]),
    )


async def wire_citus_database(dsn: str, nodes: CitusNodes) -> None:
    """Make a database that exists on every node one Citus cluster.

    Creates the ``citus`` extension in the database on each worker and on the coordinator, then
    registers the coordinator and the workers in it (both idempotent). The workers are reached
    at the addresses in ``nodes`` with the user and password of ``dsn``.

    Args:
        dsn: The database on the coordinator.
        nodes: The nodes (:func:`citus_nodes` of a database already wired, or a new cluster's).
    """
    q = _cluster_queries()
    for worker in nodes.worker_dsns(dsn):
        conn = await asyncpg.connect(worker)
        try:
            await _execute(conn, q["create_extension"])
        finally:
            await conn.close()
    conn = await asyncpg.connect(dsn)
    try:
        await _execute(conn, q["create_extension"])
        if nodes.coordinator is not None:
            host, port = nodes.coordinator
            await _execute(conn, q["set_coordinator"], host=host, port=port)
        for host, port in nodes.workers:
            await _execute(conn, q["add_node"], host=host, port=port)
    finally:
        await conn.close()


def _in_a_thread(coro: Coroutine[Any, Any, _T]) -> _T:
    """Run a coroutine to completion from synchronous code, even inside a running event loop."""
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coro).result()


@contextlib.contextmanager
def throwaway_citus(*, workers: int = 2, fsync: bool = False) -> Iterator[str]:
    """Start a private Citus cluster, a coordinator and ``workers`` workers, for the block.

    Every node is a PostgreSQL server from :func:`find_citus_bindir`'s binaries on a loopback
    port with ``shared_preload_libraries = 'citus'``; one ``initdb`` is copied to every node.
    The coordinator's ``postgres`` database is wired (:func:`wire_citus_database`); new databases
    need the same, on every node.

    Args:
        workers: Worker nodes (at least 1).
        fsync: Keep durability on (``fsync``, ``synchronous_commit``) on every node.

    Yields:
        A ``postgresql://`` DSN of the coordinator's ``postgres`` database, trust authentication.

    Raises:
        PostgresUnavailable: When no PostgreSQL binaries with Citus are found, or a node fails
            to start.
    """
    if workers < 1:
        raise ValueError(f"a Citus cluster needs at least one worker, not {workers}")
    bindir = find_citus_bindir()
    if bindir is None:
        raise PostgresUnavailable(
            "no PostgreSQL binaries with Citus installed (citus.so in pg_config --pkglibdir)"
        )
    base, sockets = _workspace("adk-sessions-citus-")
    ports = [_free_port() for _ in range(workers + 1)]
    datas = [base / f"node{i}" for i in range(workers + 1)]
    started: list[Path] = []
    try:
        try:
            _initdb(bindir, datas[0])
            for data in datas[1:]:
                _run([*_as_postgres(), "cp", "-a", str(datas[0]), str(data)])
            for data, port in zip(datas, ports, strict=True):
                options = _server_options(
                    port, sockets, fsync=fsync, extra="-c shared_preload_libraries=citus"
                )
                _start(bindir, data, options, base / f"{data.name}.log")
                started.append(data)
            dsn = f"postgresql://postgres@127.0.0.1:{ports[0]}/postgres"
            nodes = CitusNodes(
                coordinator=("127.0.0.1", ports[0]),
                workers=tuple(("127.0.0.1", port) for port in ports[1:]),
            )
            _in_a_thread(wire_citus_database(dsn, nodes))
        except (OSError, subprocess.CalledProcessError, asyncpg.PostgresError) as exc:
            raise _failure(f"a Citus cluster from {bindir}", exc) from exc
        yield dsn
    finally:
        for data in started:
            _stop(bindir, data)
        shutil.rmtree(base, ignore_errors=True)
