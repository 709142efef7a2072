"""A throwaway PgBouncer in transaction pooling mode in front of a test PostgreSQL server.

Debian's ``pgbouncer`` (1.18) does not support protocol-level prepared statements, which is what
``?pgbouncer=true`` is for. PgBouncer refuses to run as root, so as root it runs as ``postgres``
(like the throwaway clusters of ``adk_sessions._pgcluster``).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

from adk_sessions._pgcluster import PostgresUnavailable, _free_port

__all__ = ("find_pgbouncer", "throwaway_pgbouncer")


def find_pgbouncer() -> str | None:
    """The ``pgbouncer`` program, or None (Debian installs it in /usr/sbin)."""
    return shutil.which("pgbouncer") or shutil.which("pgbouncer", path="/usr/sbin:/usr/local/sbin")


def _quote(value: str) -> str:
    """A libpq connection-string value, single-quoted."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


@contextlib.contextmanager
def throwaway_pgbouncer(server_dsn: str, *, pool_size: int = 5) -> Iterator[int]:
    """Run PgBouncer (transaction pooling) in front of the server of ``server_dsn``.

    Every database of that server is reachable through it, as the DSN's user (trust between the
    client and PgBouncer, the DSN's password between PgBouncer and the server).

    Args:
        server_dsn: A ``postgresql://`` DSN of the server (TCP or a socket directory in ``host=``).
        pool_size: Server connections per database and user: fewer than the clients use, so
            statements of different clients really share server connections.

    Yields:
        The port PgBouncer listens on at 127.0.0.1.

    Raises:
        PostgresUnavailable: No ``pgbouncer`` program, or it did not start.
    """
    program = find_pgbouncer()
    if program is None:
        raise PostgresUnavailable("pgbouncer is not installed (apt-get install pgbouncer)")
    parts = urllib.parse.urlsplit(server_dsn)
    query = dict(urllib.parse.parse_qsl(parts.query))
    user = urllib.parse.unquote(parts.username or query.get("user", "postgres"))
    target = {
        "host": query.get("host") or parts.hostname or "127.0.0.1",
        "port": str(parts.port or query.get("port", 5432)),
        "user": user,
    }
    if parts.password:
        target["password"] = urllib.parse.unquote(parts.password)
    port = _free_port()
    as_root = hasattr(os, "geteuid") and os.geteuid() == 0
    base = Path(tempfile.mkdtemp(prefix="adk-sessions-pgbouncer-"))
    (base / "users.txt").write_text(f'"{user}" ""\n')
    (base / "pgbouncer.ini").write_text(
        "[databases]\n"
        f"* = {' '.join(f'{key}={_quote(value)}' for key, value in target.items())}\n"
        "[pgbouncer]\n"
        "listen_addr = 127.0.0.1\n"
        f"listen_port = {port}\n"
        "unix_socket_dir =\n"
        "auth_type = trust\n"
        f"auth_file = {base / 'users.txt'}\n"
        "pool_mode = transaction\n"
        f"default_pool_size = {pool_size}\n"
        "max_client_conn = 500\n"
        f"logfile = {base / 'pgbouncer.log'}\n"
    )
    if as_root:
        for path in (base, base / "users.txt", base / "pgbouncer.ini"):
            shutil.chown(path, "postgres")
    prefix = ["runuser", "-u", "postgres", "--"] if as_root else []
    process = subprocess.Popen(
        [*prefix, program, str(base / "pgbouncer.ini")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 15
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
                break
            if process.poll() is not None or time.monotonic() > deadline:
                log = base / "pgbouncer.log"
                detail = log.read_text() if log.exists() else ""
                raise PostgresUnavailable(f"pgbouncer did not start: {detail[-2000:]}")
            time.sleep(0.05)
        yield port
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        shutil.rmtree(base, ignore_errors=True)
