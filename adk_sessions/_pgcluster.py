"""Throwaway PostgreSQL servers for the test suite and the benchmarks (not used by the library).

Order of preference: PostgreSQL binaries on the machine (``initdb``/``pg_ctl``, run through
``runuser -u postgres`` when root, since PostgreSQL refuses to run as root), then the ``pgserver``
package (a test extra). :class:`PgCluster` also crashes and restarts its server, for the fault
tests (``tests/faults/``).

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
import signal
import socket
import subprocess
import tempfile
import time
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
    "PgCluster",
    "PostgresUnavailable",
    "citus_nodes",
    "find_citus_bindir",
    "find_pg_bindir",
    "postgres_cluster",
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


class PgCluster:
    """A PostgreSQL cluster of its own in a temporary folder, made with ``initdb``/``pg_ctl``.

    It can be started, SIGKILLed (the postmaster, as a machine crash would) and started again on
    the same port and data directory, which runs crash recovery. The fault tests use that; the
    test suite and the benchmarks only start and remove it (:func:`throwaway_postgres`).

    Attributes:
        dsn: ``postgresql://`` DSN of the ``postgres`` database (trust authentication).
        port: The TCP port on 127.0.0.1, the same for every start.
        log: The server's log file.
    """

    def __init__(self, bindir: Path, *, fsync: bool = False, settings: str = "") -> None:
        """Create the data directory (``initdb``); the server is not started yet.

        Args:
            bindir: A folder holding ``initdb`` and ``pg_ctl``.
            fsync: Keep durability on (``fsync``, ``synchronous_commit``).
            settings: More server options (``-c name=value ...``), e.g. Citus's
                ``shared_preload_libraries``.

        Raises:
            PostgresUnavailable: When ``initdb`` fails.
        """
        self._bindir = bindir
        as_root = hasattr(os, "geteuid") and os.geteuid() == 0
        self._prefix = ["runuser", "-u", "postgres", "--"] if as_root else []
        self._base = Path(tempfile.mkdtemp(prefix="adk-sessions-pg-"))
        self._data = self._base / "data"
        sockets = self._base / "sock"
        sockets.mkdir()
        if as_root:
            shutil.chown(self._base, "postgres")
            shutil.chown(sockets, "postgres")
        self.port = _free_port()
        self.log = self._base / "server.log"
        self.dsn = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        durable = "on" if fsync else "off"
        self._options = (
            f"-p {self.port} -k {sockets} -c listen_addresses=127.0.0.1 -c max_connections=200 "
            f"-c fsync={durable} -c synchronous_commit={durable} -c full_page_writes={durable}"
            + (f" {settings}" if settings else "")
        )
        initdb = ["-D", str(self._data), "-U", "postgres", "-A", "trust", "-E", "UTF8"]
        try:
            self._run("initdb", [*initdb, "--locale=C", "--no-sync"])
        except PostgresUnavailable:
            self.remove()
            raise

    def _run(self, program: str, args: list[str]) -> None:
        try:
            subprocess.run(
                [*self._prefix, str(self._bindir / program), *args],
                check=True,
                capture_output=True,
                text=True,
            )
        except (OSError, subprocess.CalledProcessError) as exc:
            detail = getattr(exc, "stderr", "") or str(exc)
            if self.log.exists():
                detail += "\n" + self.log.read_text(errors="replace")[-2000:]
            raise PostgresUnavailable(
                f"could not run {program} from {self._bindir}: {detail}"
            ) from exc

    def start(self) -> None:
        """Start the server and wait until it accepts connections (after crash recovery).

        Raises:
            PostgresUnavailable: When the server does not start.
        """
        options = ["-o", self._options, "-w", "-t", "60", "-l", str(self.log)]
        self._run("pg_ctl", ["-D", str(self._data), *options, "start"])

    def postmaster_pid(self) -> int:
        """Return the process id of the running postmaster (from ``postmaster.pid``)."""
        return int((self._data / "postmaster.pid").read_text().split()[0])

    def kill(self, *, grace: float = 10.0) -> int:
        """SIGKILL the postmaster, then wait until it and every server process are gone.

        The backends notice their postmaster's death and exit on their own; any still alive
        after ``grace`` seconds are SIGKILLed too, so that the next :meth:`start` finds no
        process attached to the old shared memory.

        Args:
            grace: Seconds to wait for the server processes to exit.

        Returns:
            The number of server processes (postmaster included) that were running.
        """
        pid = self.postmaster_pid()
        processes = [pid, *_children(pid)]
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + grace
        while any(_alive(p) and not _zombie(p) for p in processes):
            if time.monotonic() > deadline:
                for p in processes:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(p, signal.SIGKILL)
            time.sleep(0.005)
        # pg_ctl left the postmaster to init, which reaps it soon; until then its pid exists
        # and a new postmaster takes the old lock file for one of a running server.
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.005)
        if _alive(pid):  # an init that never reaps: the process is dead, its lock file stale
            (self._data / "postmaster.pid").unlink()
        return len(processes)

    def stop(self) -> None:
        """Stop the server at once (``pg_ctl -m immediate``); no error when it is not running."""
        pg_ctl = [*self._prefix, str(self._bindir / "pg_ctl"), "-D", str(self._data)]
        subprocess.run(
            [*pg_ctl, "-m", "immediate", "-w", "stop"],
            check=False,
            capture_output=True,
        )

    def remove(self) -> None:
        """Delete the data directory (stop the server first)."""
        shutil.rmtree(self._base, ignore_errors=True)


def _children(pid: int) -> list[int]:
    """Process ids whose parent is ``pid`` (Linux ``/proc``; empty elsewhere)."""
    found = []
    for stat in glob.glob("/proc/[0-9]*/stat"):
        try:
            fields = Path(stat).read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.split("/")[2]))
    return found


def _alive(pid: int) -> bool:
    """Whether process ``pid`` still exists (a zombie not yet reaped by its parent counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _zombie(pid: int) -> bool:
    """Whether ``pid`` has exited but not been reaped (Linux ``/proc``; False elsewhere)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return False


@contextlib.contextmanager
def postgres_cluster(*, fsync: bool = False, bindir: Path | None = None) -> Iterator[PgCluster]:
    """Start a :class:`PgCluster` from the machine's binaries for the duration of the block.

    Args:
        fsync: Keep durability on.
        bindir: The folder of ``initdb``/``pg_ctl``; default :func:`find_pg_bindir`.

    Yields:
        The running cluster; stopped and removed afterwards.

    Raises:
        PostgresUnavailable: When there are no binaries or the server does not start.
    """
    bindir = bindir or find_pg_bindir()
    if bindir is None:
        raise PostgresUnavailable("no initdb/pg_ctl found on this machine")
    cluster = PgCluster(bindir, fsync=fsync)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()
        cluster.remove()


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
        with postgres_cluster(fsync=fsync, bindir=bindir) as cluster:
            yield cluster.dsn
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

    Every node is a :class:`PgCluster` from :func:`find_citus_bindir`'s binaries on a loopback
    port with ``shared_preload_libraries = 'citus'``. The coordinator's ``postgres`` database is
    wired (:func:`wire_citus_database`); new databases need the same, on every node.

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
    nodes: list[PgCluster] = []
    try:
        for _ in range(workers + 1):
            node = PgCluster(bindir, fsync=fsync, settings="-c shared_preload_libraries=citus")
            nodes.append(node)
            node.start()
        coordinator, others = nodes[0], nodes[1:]
        wiring = CitusNodes(
            coordinator=("127.0.0.1", coordinator.port),
            workers=tuple(("127.0.0.1", node.port) for node in others),
        )
        try:
            _in_a_thread(wire_citus_database(coordinator.dsn, wiring))
        except (OSError, asyncpg.PostgresError) as exc:
            raise PostgresUnavailable(f"could not wire a Citus cluster: {exc}") from exc
        yield coordinator.dsn
    finally:
        for node in nodes:
            node.stop()
            node.remove()
