"""Throwaway PostgreSQL servers for the test suite and the benchmarks (not used by the library).

Order of preference: PostgreSQL binaries on the machine (``initdb``/``pg_ctl``, run through
``runuser -u postgres`` when root, since PostgreSQL refuses to run as root), then the ``pgserver``
package (a test extra).
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import socket
import subprocess
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path

__all__ = ("PostgresUnavailable", "find_pg_bindir", "throwaway_postgres")


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


@contextlib.contextmanager
def _from_binaries(bindir: Path, *, fsync: bool) -> Iterator[str]:
    as_root = hasattr(os, "geteuid") and os.geteuid() == 0
    prefix = ["runuser", "-u", "postgres", "--"] if as_root else []
    base = Path(tempfile.mkdtemp(prefix="adk-sessions-pg-"))
    data, sockets = base / "data", base / "sock"
    sockets.mkdir()
    if as_root:
        shutil.chown(base, "postgres")
        shutil.chown(sockets, "postgres")
    run = {"check": True, "capture_output": True, "text": True}
    port = _free_port()
    durable = "on" if fsync else "off"
    options = (
        f"-p {port} -k {sockets} -c listen_addresses=127.0.0.1 -c max_connections=200 "
        f"-c fsync={durable} -c synchronous_commit={durable} -c full_page_writes={durable}"
    )
    try:
        subprocess.run(
            [
                *prefix,
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
            ],
            **run,  # type: ignore[call-overload]
        )
        subprocess.run(
            [
                *prefix,
                str(bindir / "pg_ctl"),
                "-D",
                str(data),
                "-o",
                options,
                "-w",
                "-t",
                "60",
                "-l",
                str(base / "server.log"),
                "start",
            ],
            **run,  # type: ignore[call-overload]
        )
    except (OSError, subprocess.CalledProcessError) as exc:
        shutil.rmtree(base, ignore_errors=True)
        detail = getattr(exc, "stderr", "") or str(exc)
        raise PostgresUnavailable(f"could not start PostgreSQL from {bindir}: {detail}") from exc
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(
            [*prefix, str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"],
            check=False,
            capture_output=True,
        )
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
