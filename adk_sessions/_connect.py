"""``connect(url)``: parse the URL, open the dialect, migrate, hand back a service."""

from __future__ import annotations

import urllib.parse
from collections.abc import Generator
from types import TracebackType
from typing import Any

import anyio

from ._dialect import Dialect
from ._layout import refresh as refresh_layout
from ._migrations import check_version, schema_version
from ._service import SessionService
from .errors import InvalidArgumentError, StorageError

__all__ = ("DEFAULT_URL", "connect", "redact")

DEFAULT_URL = "sqlite:///adk_sessions.db"

# SQLAlchemy-style driver suffixes are accepted so google-adk's DatabaseSessionService URLs work.
_SQLITE_SCHEMES = ("sqlite", "sqlite+aiosqlite")
_POSTGRES_SCHEMES = ("postgresql", "postgres", "postgresql+asyncpg")


def redact(url: str) -> str:
    """Return ``url`` with its password replaced by ``***`` (for messages and logs)."""
    try:
        parts = urllib.parse.urlsplit(url)
        if parts.password is None:
            return url
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
        return urllib.parse.urlunsplit(parts._replace(netloc=netloc))
    except ValueError:
        return "<unparseable URL>"


def _scrub(message: str, url: str) -> str:
    try:
        password = urllib.parse.urlsplit(url).password
    except ValueError:
        password = None
    if password:
        message = message.replace(password, "***")
        message = message.replace(urllib.parse.quote(password, safe=""), "***")
    return message


async def _open_dialect(url: str, options: dict[str, Any]) -> Dialect:
    if not isinstance(url, str):
        raise InvalidArgumentError(f"url must be a string, not {type(url).__name__}")
    scheme, sep, rest = url.partition("://")
    scheme = scheme.lower()
    if sep and scheme in _SQLITE_SCHEMES:
        if not rest.startswith("/"):
            raise InvalidArgumentError(
                f"SQLite URL {url!r} must be sqlite:///relative.db, sqlite:////absolute.db "
                "or sqlite:///:memory:"
            )
        path = rest[1:].split("?", 1)[0]
        if not path:
            raise InvalidArgumentError(f"SQLite URL {url!r} names no file")
        from ._sqlite import SqliteDialect

        return await SqliteDialect.open(path, options)
    if sep and scheme in _POSTGRES_SCHEMES:
        from ._postgres import PostgresDialect

        dsn = "postgresql://" + rest
        try:
            return await PostgresDialect.open(dsn, options)
        except StorageError as exc:
            raise StorageError(_scrub(str(exc), url)) from exc.__cause__
    raise InvalidArgumentError(
        f"unsupported database URL {redact(url)!r}: use sqlite:///path.db, sqlite:///:memory: "
        "or postgresql://user:password@host:port/database"
    )


async def _open(url: str, migrate: bool, options: dict[str, Any]) -> SessionService:
    dialect = await _open_dialect(url, options)
    service = SessionService(dialect)
    try:
        if migrate:
            await service.migrate()  # reads the layout (Citus or not) afterwards
        else:
            check_version(dialect, await schema_version(dialect))
            await refresh_layout(dialect)
    except BaseException:
        with anyio.CancelScope(shield=True):
            await service.close()
        raise
    return service


class _Connecting:
    """What :func:`connect` returns: await it, or use it with ``async with``."""

    def __init__(self, url: str, migrate: bool, options: dict[str, Any]) -> None:
        self._args = (url, migrate, options)
        self._service: SessionService | None = None

    def __await__(self) -> Generator[Any, None, SessionService]:
        return _open(*self._args).__await__()

    async def __aenter__(self) -> SessionService:
        self._service = await _open(*self._args)
        return self._service

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._service is not None:
            service, self._service = self._service, None
            await service.close()


def connect(url: str = DEFAULT_URL, *, migrate: bool = True, **options: Any) -> _Connecting:
    """Open a session store.

    ``await connect(url)`` returns a :class:`SessionService`; ``async with connect(url) as s``
    also closes it at the end.

    Args:
        url: ``sqlite:///relative.db``, ``sqlite:////absolute.db``, ``sqlite:///:memory:``,
            ``postgresql://user:password@host:port/db`` (or ``postgres://``; the SQLAlchemy forms
            ``sqlite+aiosqlite://`` and ``postgresql+asyncpg://`` are accepted too).
        migrate: Create or upgrade the schema (under a lock, safe from many processes). With
            False the schema is only checked: one newer than the code raises ``SchemaError``,
            an older one is left for :meth:`SessionService.migrate`.
        **options: SQLite: ``busy_timeout`` (seconds, 30), ``synchronous`` (``"FULL"``),
            ``max_readers`` (4). PostgreSQL: asyncpg pool options, ``min_size`` (1),
            ``max_size`` (10), ``command_timeout``, ``connect_timeout``, ``statement_cache_size``,
            ``server_settings``, ``ssl``, ..., and ``distribute`` (default True: on a database
            with the ``citus`` extension, migrations distribute the tables; False, or the URL
            parameter ``distribute=false``, keeps them local).

    Returns:
        An awaitable async context manager giving the service.

    Raises:
        InvalidArgumentError: On a malformed URL or an unknown option.
        StorageError: When the database cannot be reached or opened (no password in the message).
        SchemaError: When the schema is newer than the code.
    """
    return _Connecting(url, migrate, dict(options))
