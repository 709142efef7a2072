"""A real uvicorn server in the test's event loop, for the HTTP tests
(tests/integrations/test_http_*.py)."""

from __future__ import annotations

import contextlib
import os
import re
import socket
import sqlite3
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Generator, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import anyio
import httpx
import pytest
import uvicorn

import adk_sessions
from adk_sessions import SessionService
from adk_sessions.asgi import create_app

from ._pg import pg_connection

JSON = {"Content-Type": "application/json"}


class Server(uvicorn.Server):
    """uvicorn in the test's event loop: reports readiness, leaves signal handlers alone."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.ready = anyio.Event()

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        self.ready.set()


@contextlib.asynccontextmanager
async def running(
    service: SessionService, **options: Any
) -> AsyncIterator[tuple[httpx.AsyncClient, str]]:
    """Serve ``create_app(service, **options)`` on 127.0.0.1; yield a client and the base URL."""
    app = create_app(service, **options)
    config = uvicorn.Config(
        app, host="127.0.0.1", port=0, lifespan="off", log_level="warning", ws="none"
    )
    server = Server(config)
    failure: Exception | None = None
    async with anyio.create_task_group() as tg:
        tg.start_soon(server.serve)
        with anyio.fail_after(10):
            await server.ready.wait()
        port = server.servers[0].sockets[0].getsockname()[1]
        base = f"http://127.0.0.1:{port}"
        try:
            async with httpx.AsyncClient(base_url=base, timeout=30) as client:
                yield client, base
        except Exception as exc:  # a failed test: still let the server shut down cleanly
            failure = exc
        finally:
            server.should_exit = True
    if failure is not None:
        raise failure


def own_database(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A database a test may break, by ``request.param``: an SQLite file or a new PostgreSQL one.

    For fixtures parametrised over ``("sqlite", "postgres")``.
    """
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'own.db'}"
    make: Callable[[], Awaitable[str]] = request.getfixturevalue("fresh_pg_database")

    async def create() -> str:
        return await make()

    return anyio.run(create)


async def execute_elsewhere(url: str, statement: str) -> None:
    """Run one statement on a connection of its own (another client of the database)."""
    if url.startswith("sqlite"):
        conn = sqlite3.connect(url.removeprefix("sqlite:///"))
        try:
            conn.execute(statement)
            conn.commit()
        finally:
            conn.close()
        return
    async with pg_connection(url) as pg:
        await pg.execute(statement)


def path(app: str = "app", user: str = "u1", session: str | None = None) -> str:
    """The URL path of a user's sessions, or of one session, ids percent-encoded."""
    result = f"/apps/{quote(app, safe='')}/users/{quote(user, safe='')}/sessions"
    return result if session is None else f"{result}/{quote(session, safe='')}"


def error(response: httpx.Response, status: int, code: str) -> str:
    """Assert a JSON error answer with that status and code; return its detail."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert set(body) == {"error", "detail"}
    assert body["error"] == code
    assert isinstance(body["detail"], str)
    return str(body["detail"])


_SERVE_SCRIPT = """
import argparse, sys
from adk_sessions._serve import add_serve_parser, serve_command
parser = argparse.ArgumentParser()
add_serve_parser(parser.add_subparsers(dest="command", required=True))
sys.exit(serve_command(parser.parse_args(sys.argv[1:])))
"""


@contextlib.contextmanager
def server_process(
    argv: list[str], cwd: Path, env: dict[str, str] | None = None
) -> Iterator[tuple[subprocess.Popen[str], str, list[str]]]:
    """Run ``adk-sessions serve`` in a subprocess; yield it, its base URL and its log lines.

    The environment is this process's without ``ADK_SESSIONS_*`` variables, plus ``env``.
    """
    env = {
        name: value for name, value in os.environ.items() if not name.startswith("ADK_SESSIONS_")
    } | (env or {})
    package_root = str(Path(adk_sessions.__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_root, env.get("PYTHONPATH")]))
    lines: list[str] = []
    base: list[str] = []
    found = threading.Event()
    with subprocess.Popen(
        [sys.executable, "-c", _SERVE_SCRIPT, "serve", *argv],
        cwd=cwd,
        env=env,
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
    ) as process:

        def read() -> None:
            assert process.stderr is not None
            for line in process.stderr:
                lines.append(line)
                match = re.search(r"running on (http://127\.0\.0\.1:\d+)", line)
                if match:
                    base.append(match.group(1))
                    found.set()
            found.set()

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        try:
            if not found.wait(60) or not base:
                pytest.fail("server did not start:\n" + "".join(lines))
            yield process, base[0], lines
        finally:
            if process.poll() is None:
                process.kill()
            process.wait()
            reader.join(10)
