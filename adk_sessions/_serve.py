"""``adk-sessions serve``: the HTTP session endpoints under uvicorn.

This module imports neither Starlette nor uvicorn at the top, so the command line works without
the ``[http]`` extra; ``serve`` alone needs it and says so when it is missing.

Logging: uvicorn's own configuration, extended to the ``adk_sessions`` loggers (stderr, the
``--log-level``). At start one line names the database (never its password), the address and
the authentication mode; then ``adk_sessions.access`` logs one line per request (method, path
template, status, duration) in place of uvicorn's access log, which would log the ids.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import ipaddress
import logging
import logging.config
import os
import signal
import socket
import sys
from collections.abc import Generator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio

from ._connect import DEFAULT_URL, redact

if TYPE_CHECKING:
    import uvicorn

__all__ = (
    "DEFAULT_HOST",
    "DEFAULT_PORT",
    "JWT_AUDIENCE_ENV",
    "JWT_ISSUER_ENV",
    "JWT_PUBLIC_KEY_ENV",
    "JWT_SECRET_ENV",
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

JWT_SECRET_ENV = "ADK_SESSIONS_JWT_SECRET"  # noqa: S105 - a variable name, not a secret
"""The environment variable read for the HS256 secret when ``--jwt-secret`` is not given."""

JWT_PUBLIC_KEY_ENV = "ADK_SESSIONS_JWT_PUBLIC_KEY"
"""The environment variable read when ``--jwt-public-key`` is not given: a PEM public key, or
the path of a file holding one."""

JWT_AUDIENCE_ENV = "ADK_SESSIONS_JWT_AUDIENCE"
"""The environment variable read when ``--jwt-audience`` is not given."""

JWT_ISSUER_ENV = "ADK_SESSIONS_JWT_ISSUER"
"""The environment variable read when ``--jwt-issuer`` is not given."""

_log = logging.getLogger("adk_sessions.serve")


class _UsageError(Exception):
    """A command-line mistake: reported on stderr, exit status 2."""


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
            "Serve /apps/{app}/users/{user}/sessions[/{id}], /openapi.json, /healthz and /readyz "
            "with uvicorn until SIGINT or SIGTERM, then finish the requests in flight and close "
            "the database."
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
        help=(
            "the operator's token: 'Authorization: Bearer TOKEN' reaches every session "
            f"(default: ${TOKEN_ENV} when set)"
        ),
    )
    parser.add_argument(
        "--jwt-secret",
        default=None,
        metavar="SECRET",
        help=(
            "accept per-user HS256 JWTs signed with SECRET, at least 32 bytes "
            f"(default: ${JWT_SECRET_ENV} when set; prefer the variable, arguments show in ps)"
        ),
    )
    parser.add_argument(
        "--jwt-public-key",
        default=None,
        metavar="FILE",
        help=(
            "accept per-user JWTs (RS256, ES256, ...) verified with the PEM public key in FILE "
            f"(default: ${JWT_PUBLIC_KEY_ENV} when set: a PEM key or a file path)"
        ),
    )
    parser.add_argument(
        "--jwt-audience",
        default=None,
        help=f"require this 'aud' claim in JWTs (default: ${JWT_AUDIENCE_ENV} when set)",
    )
    parser.add_argument(
        "--jwt-issuer",
        default=None,
        help=f"require this 'iss' claim in JWTs (default: ${JWT_ISSUER_ENV} when set)",
    )
    parser.add_argument(
        "--cors-origin",
        action="append",
        default=[],
        metavar="ORIGIN",
        help="allow browser calls from ORIGIN, e.g. https://app.example.com (repeatable; "
        "default: CORS off)",
    )
    parser.add_argument(
        "--allowed-host",
        action="append",
        default=[],
        metavar="NAME",
        help="accept NAME in the Host header (repeatable; e.g. the name a reverse proxy "
        "forwards); loopback names are always accepted on a loopback address",
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
        help="log level of uvicorn and adk_sessions (default: info)",
    )
    return parser


def check_bind(host: str, token: str | None, *, allow_unauthenticated: bool = False) -> str | None:
    """Say why serving on ``host`` would be unsafe, or ``None`` when it is fine.

    Args:
        host: The address to bind.
        token: The credential requests are checked against (the operator token or a JWT key),
            or ``None`` when requests are not authenticated.
        allow_unauthenticated: The operator accepts an open non-loopback server.

    Returns:
        An error message when ``host`` is not a loopback address (``127.0.0.0/8``, ``::1``,
        ``localhost``), no token is set and ``allow_unauthenticated`` is false; else ``None``.
    """
    if token or allow_unauthenticated or _is_loopback(host):
        return None
    return (
        f"refusing to serve on {host!r} without a token: anyone who can reach it could read "
        f"and change every session. Pass --token (or set ${TOKEN_ENV}), --jwt-secret or "
        f"--jwt-public-key, bind to {DEFAULT_HOST}, or pass --allow-unauthenticated."
    )


def _is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _public_key(args: argparse.Namespace) -> str | None:
    """The PEM text of the JWT public key: from ``--jwt-public-key FILE`` or the variable."""
    path = args.jwt_public_key
    if path is None:
        value = os.environ.get(JWT_PUBLIC_KEY_ENV) or None
        if value is None or value.lstrip().startswith("-----BEGIN"):
            return value
        path = value
    try:
        return Path(path).read_text("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise _UsageError(f"cannot read the JWT public key {path!r}: {exc}") from exc


def _app_options(args: argparse.Namespace) -> dict[str, Any]:
    """The keyword arguments of ``create_app`` from the command line and the environment."""
    options: dict[str, Any] = {
        "token": args.token or os.environ.get(TOKEN_ENV) or None,
        "jwt_secret": args.jwt_secret or os.environ.get(JWT_SECRET_ENV) or None,
        "jwt_public_key": _public_key(args),
        "jwt_audience": args.jwt_audience or os.environ.get(JWT_AUDIENCE_ENV) or None,
        "jwt_issuer": args.jwt_issuer or os.environ.get(JWT_ISSUER_ENV) or None,
        "cors_origins": tuple(args.cors_origin),
        "allowed_hosts": tuple(args.allowed_host),
    }
    if args.max_body_size is not None:
        if args.max_body_size < 0:
            raise _UsageError("--max-body-size must be >= 0")
        options["max_body_size"] = args.max_body_size
    return options


def serve_command(args: argparse.Namespace) -> int:
    """Run ``adk-sessions serve`` with arguments parsed by :func:`add_serve_parser`'s parser.

    Serves until SIGINT or SIGTERM (a second one forces the exit), then waits for the requests
    in flight and closes the database, so every answered write is stored. Must run in the main
    thread (it handles signals).

    Args:
        args: The parsed arguments.

    Returns:
        The exit status: 0 after a clean shutdown, 1 when the server could not start, 2 for a
        usage error (unsafe bind, bad option, missing ``[http]`` extra).
    """
    try:
        import uvicorn  # noqa: F401

        from . import asgi
    except ImportError as exc:
        print(
            f"adk-sessions serve: {exc.name} is missing; install the HTTP extra: "
            "pip install 'adk-sessions[http]'",
            file=sys.stderr,
        )
        return 2
    try:
        options = _app_options(args)
        credential = options["token"] or options["jwt_secret"] or options["jwt_public_key"]
        problem = check_bind(
            args.host, credential, allow_unauthenticated=args.allow_unauthenticated
        )
        if problem is not None:
            raise _UsageError(problem)
        # Check every option before the database is opened (or created).
        checked = asgi._Options.build(**options)
    except (_UsageError, ValueError) as exc:
        print(f"adk-sessions serve: {exc}", file=sys.stderr)
        return 2
    origins = ", ".join(checked.cors_origins) or "off"
    summary = f"auth: {checked.auth.describe()}; CORS: {origins}"
    return anyio.run(
        _serve,
        args.url or DEFAULT_URL,
        args.host,
        args.port,
        options,
        summary,
        args.log_level,
        backend="asyncio",
    )


def _log_config(level: str) -> dict[str, Any]:
    """uvicorn's logging configuration plus the ``adk_sessions`` loggers on its handler."""
    import uvicorn.config

    config = copy.deepcopy(uvicorn.config.LOGGING_CONFIG)
    config["loggers"]["adk_sessions"] = {
        "handlers": ["default"],
        "level": level.upper(),
        "propagate": False,
    }
    return config


def _address(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


async def _serve(
    url: str, host: str, port: int, options: dict[str, Any], summary: str, log_level: str
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

        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await super().startup(sockets)
            if self.started:
                bound = [sock for server in self.servers for sock in server.sockets]
                _log.info(
                    "serving %s (%s) on %s; %s",
                    redact(url),
                    service.dialect,
                    ", ".join(_address(sock) for sock in bound) or f"{host}:{port}",
                    summary,
                )

    # Configure logging before the database opens, so that its messages show too.
    logging.config.dictConfig(_log_config(log_level))
    try:
        service = await connect(url)
    except AdkSessionsError as exc:
        print(f"adk-sessions serve: {exc}", file=sys.stderr)
        return 1
    try:
        config = uvicorn.Config(
            create_app(service, **options),
            host=host,
            port=port,
            lifespan="off",
            ws="none",  # no route takes a WebSocket
            log_level=log_level,
            log_config=None,  # configured above
            access_log=False,  # adk_sessions.access logs each request, without the ids
        )
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
