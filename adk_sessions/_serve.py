"""``adk-sessions serve``: the HTTP session endpoints under uvicorn.

This module imports neither Starlette nor uvicorn at the top, so the command line works without
the ``[http]`` extra; ``serve`` alone needs it and says so when it is missing.
"""

from __future__ import annotations

import argparse
import contextlib
import ipaddress
import logging
import os
import signal
import sys
from collections.abc import Generator
from typing import TYPE_CHECKING, Any

import anyio

from ._connect import DEFAULT_URL

if TYPE_CHECKING:
    import uvicorn

__all__ = (
    "DEFAULT_HOST",
    "DEFAULT_PORT",
    "TOKEN_ENV",
    "add_serve_parser",
    "check_bind",
    "serve_command",
)

DEFAULT_HOST = "127.0.0.1"
"""The default address: loopback only."""

DEFAULT_PORT = 8000
"""The default port (the one ``adk api_server`` uses)."""

TOKEN_ENV = "ADK_SESSIONS_TOKEN"  # noqa: S105 - a variable name, not a secret
"""The environment variable read for the bearer token when ``--token`` is not given."""

_log = logging.getLogger("adk_sessions.serve")


def add_serve_parser(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
) -> argparse.ArgumentParser:
    """Add the ``serve`` sub-command to an ``argparse`` sub-parser set.

    Args:
        subparsers: What ``parser.add_subparsers()`` returned.

    Returns:
        The ``serve`` parser; run the parsed arguments with :func:`serve_command`.
    """
    parser = subparsers.add_parser(
        "serve",
        help="serve the REST session endpoints over HTTP (needs the [http] extra)",
        description=(
            "Serve /apps/{app}/users/{user}/sessions[/{id}] with uvicorn until SIGINT or "
            "SIGTERM, then finish the requests in flight and close the database."
        ),
    )
    parser.add_argument(
        "url",
        nargs="?",
        default=None,
        help=f"database URL (default: {DEFAULT_URL})",
    )
    parser.add_argument(
        "--host", default=DEFAULT_HOST, help=f"address to bind (default: {DEFAULT_HOST})"
    )
    parser.add_argument(
        "--port", type=int, default=DEFAULT_PORT, help=f"port (default: {DEFAULT_PORT}; 0: any)"
    )
    parser.add_argument(
        "--token",
        default=None,
        help=f"require 'Authorization: Bearer TOKEN' (default: ${TOKEN_ENV} when set)",
    )
    parser.add_argument(
        "--allow-unauthenticated",
        action="store_true",
        help="allow a non-loopback --host without a token (anyone who can connect can write)",
    )
    parser.add_argument(
        "--max-body-size",
        type=int,
        default=None,
        metavar="BYTES",
        help="largest request body accepted (default: 8 MiB)",
    )
    parser.add_argument(
        "--log-level",
        default="info",
        choices=("critical", "error", "warning", "info", "debug"),
        help="uvicorn's log level (default: info)",
    )
    return parser


def check_bind(host: str, token: str | None, *, allow_unauthenticated: bool = False) -> str | None:
    """Say why serving on ``host`` would be unsafe, or ``None`` when it is fine.

    Args:
        host: The address to bind.
        token: The bearer token, or ``None``.
        allow_unauthenticated: The operator accepts an open non-loopback server.

    Returns:
        An error message when ``host`` is not a loopback address (``127.0.0.0/8``, ``::1``,
        ``localhost``), no token is set and ``allow_unauthenticated`` is false; else ``None``.
    """
    if token or allow_unauthenticated or _is_loopback(host):
        return None
    return (
        f"refusing to serve on {host!r} without a token: anyone who can reach it could read "
        f"and change every session. Pass --token (or set ${TOKEN_ENV}), bind to {DEFAULT_HOST}, "
        "or pass --allow-unauthenticated."
    )


def _is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def serve_command(args: argparse.Namespace) -> int:
    """Run ``adk-sessions serve`` with arguments parsed by :func:`add_serve_parser`'s parser.

    Serves until SIGINT or SIGTERM (a second one forces the exit), then waits for the requests
    in flight and closes the database, so every answered write is stored. Must run in the main
    thread (it handles signals).

    Args:
        args: The parsed arguments.

    Returns:
        The exit status: 0 after a clean shutdown, 1 when the server could not start, 2 for a
        usage error (unsafe bind, missing ``[http]`` extra).
    """
    token = args.token or os.environ.get(TOKEN_ENV) or None
    problem = check_bind(args.host, token, allow_unauthenticated=args.allow_unauthenticated)
    if problem is not None:
        print(f"adk-sessions serve: {problem}", file=sys.stderr)
        return 2
    try:
        import uvicorn  # noqa: F401

        from . import asgi  # noqa: F401
    except ImportError as exc:
        print(
            f"adk-sessions serve: {exc.name} is missing; install the HTTP extra: "
            "pip install 'adk-sessions[http]'",
            file=sys.stderr,
        )
        return 2
    options: dict[str, Any] = {}
    if args.max_body_size is not None:
        if args.max_body_size < 0:
            print("adk-sessions serve: --max-body-size must be >= 0", file=sys.stderr)
            return 2
        options["max_body_size"] = args.max_body_size
    return anyio.run(
        _serve,
        args.url or DEFAULT_URL,
        args.host,
        args.port,
        token,
        options,
        args.log_level,
        backend="asyncio",
    )


async def _serve(
    url: str, host: str, port: int, token: str | None, options: dict[str, Any], log_level: str
) -> int:
    import uvicorn

    from . import connect
    from .asgi import create_app
    from .errors import AdkSessionsError

    class Server(uvicorn.Server):
        """uvicorn's server minus its signal handling, which re-raises the signal on exit."""

        @contextlib.contextmanager
        def capture_signals(self) -> Generator[None, None, None]:
            yield

    try:
        service = await connect(url)
    except AdkSessionsError as exc:
        print(f"adk-sessions serve: {exc}", file=sys.stderr)
        return 1
    try:
        app = create_app(service, token=token, **options)
        config = uvicorn.Config(app, host=host, port=port, lifespan="off", log_level=log_level)
        server = Server(config)
        async with anyio.create_task_group() as tg:
            tg.start_soon(_stop_on_signals, server)
            try:
                await server.serve()
            except SystemExit:  # uvicorn exits when it cannot bind
                return 1
            finally:
                tg.cancel_scope.cancel()
        return 0 if server.started else 1
    finally:
        with anyio.CancelScope(shield=True):
            await service.close()
        _log.info("session store closed")


async def _stop_on_signals(server: uvicorn.Server) -> None:
    """The first SIGINT/SIGTERM stops gracefully, a second one forces the exit."""
    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async for _ in signals:
            if server.should_exit:
                server.force_exit = True
            server.should_exit = True
