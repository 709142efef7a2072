"""``connect(url)``: parse the URL, open the dialect, migrate, hand back a service."""

from __future__ import annotations

import logging
import re
import urllib.parse
from collections.abc import Callable, Generator, Mapping
from typing import Any

import anyio

from ._dialects import parse_url
from ._dialects.base import Dialect
from ._dialects.layout import refresh as refresh_layout
from ._migrations import check_version, schema_version
from ._service import SessionService
from .errors import InvalidArgumentError, StorageError

__all__ = ("DEFAULT_URL", "connect", "redact", "sqlite_location")

DEFAULT_URL = "sqlite:///adk_sessions.db"

_log = logging.getLogger("adk_sessions")
# libpq also takes the password as a URL parameter.
_QUERY_PASSWORD = re.compile(r"((?:^|&)password=)[^&]*", re.IGNORECASE)


def redact(url: str) -> str:
    """Return ``url`` with its password (``user:pw@`` or ``?password=``) as ``***``."""
    try:
        parts = urllib.parse.urlsplit(url)
        netloc, query = parts.netloc, _QUERY_PASSWORD.sub(r"\1***", parts.query)
        if parts.password is not None:
            netloc = netloc.replace(f":{parts.password}@", ":***@", 1)
        if (netloc, query) == (parts.netloc, parts.query):
            return url
        return urllib.parse.urlunsplit(parts._replace(netloc=netloc, query=query))
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


def _url_options(
    url: str, query: str, known: Mapping[str, Callable[[str], Any]], options: dict[str, Any]
) -> list[tuple[str, str]]:
    """Move the URL parameters in ``known`` into ``options``; return the others, in order.

    Raises:
        InvalidArgumentError: A parameter is repeated, malformed, or also given as an option
            with another value.
    """
    try:
        pairs = urllib.parse.parse_qsl(query, keep_blank_values=True, strict_parsing=bool(query))
    except ValueError as exc:
        raise InvalidArgumentError(f"URL {redact(url)!r}: malformed query string") from exc
    names = [name for name, _ in pairs]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise InvalidArgumentError(f"URL {redact(url)!r}: parameter(s) {repeated} given twice")
    rest = []
    for name, text in pairs:
        if name not in known:
            rest.append((name, text))
            continue
        try:
            value = known[name](text)
        except ValueError as exc:
            raise InvalidArgumentError(
                f"URL parameter {name}={text!r} is not a valid {known[name].__name__}"
            ) from exc
        if name in options and options[name] != value:
            raise InvalidArgumentError(
                f"{name} is given both in the URL ({text!r}) and as an option "
                f"({options[name]!r}); give it once"
            )
        options[name] = value
    return rest


def sqlite_location(url: str) -> tuple[str, str] | None:
    """The file path and query string of a ``sqlite://`` URL; ``None`` for another scheme.

    Raises:
        InvalidArgumentError: A SQLite URL without the ``sqlite:///`` form or without a path.
    """
    parsed = parse_url(url)
    if parsed is None or parsed.dialect.name != "sqlite":
        return None
    return parsed.location, parsed.query


async def _open_dialect(url: str, options: dict[str, Any]) -> Dialect:
    parsed = parse_url(url)
    if parsed is None:
        raise InvalidArgumentError(
            f"unsupported database URL {redact(url)!r}: use sqlite:///path.db, "
            "sqlite:///:memory: or postgresql://user:password@host:port/database"
        )
    info = parsed.dialect
    others = _url_options(url, parsed.query, info.url_params, options)
    location = parsed.location
    if info.name == "sqlite":
        if others:
            raise InvalidArgumentError(
                f"SQLite URL {url!r}: unknown parameter(s) {sorted(n for n, _ in others)}; "
                f"known: {sorted(info.url_params)}"
            )
        return await info.open(location, options)
    # Other parameters stay in the DSN: asyncpg reads libpq's (sslmode, application_name,
    # target_session_attrs, ...) and sends any other as a server setting at connect, which the
    # server applies or refuses by name. None is dropped.
    if others:
        location += "?" + urllib.parse.urlencode(others)
    try:
        return await info.open(location, options)
    except StorageError as exc:
        raise type(exc)(_scrub(str(exc), url)) from exc.__cause__


async def _open(url: str, migrate: bool, options: dict[str, Any]) -> SessionService:
    trace_ids = options.pop("trace_ids", False)  # the service's option, not the dialect's
    dialect = await _open_dialect(url, options)
    try:
        service = SessionService(dialect, trace_ids=trace_ids)
        if migrate and not dialect.read_only:
            applied = await service.migrate()  # reads the layout (Citus or not) afterwards
            version = len(dialect.migrations)  # migrate() brought it to the newest
        else:
            applied, version = [], await schema_version(dialect)
            check_version(dialect, version)
            await refresh_layout(dialect)
    except BaseException:
        with anyio.CancelScope(shield=True):
            await dialect.close()
        raise
    _log.info(
        "opened %s (%s%s%s), schema version %d%s",
        redact(url),
        dialect.name,
        f", tables in schema {dialect.schema!r}"
        if dialect.schema not in ("main", "public")
        else "",
        ", read-only" if dialect.read_only else "",
        version,
        f" (applied {applied})" if applied else "",
    )
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

    async def __aexit__(self, *exc_info: object) -> None:
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
            ``max_readers`` (4), ``mode`` (``"rwc"``; ``"rw"``: the file must exist; ``"ro"``:
            read-only, nothing is created, migrated or written). PostgreSQL: asyncpg pool
            options, ``min_size`` (1), ``max_size`` (10), ``command_timeout``,
            ``connect_timeout``, ``statement_cache_size``, ``server_settings``, ``ssl``, ...;
            ``schema``, ``pgbouncer``; ``distribute`` (default true: on a database with the
            ``citus`` extension, migrations distribute the tables; false keeps them local).
            Both: ``trace_ids`` (False): put user and session ids on OpenTelemetry spans.

    URL query parameters are honoured or rejected, never dropped: the options above can be
    given in the URL too (``sqlite:///x.db?mode=ro``, ``postgresql://...?max_size=20``; both
    ways at once must agree). Any other parameter of a SQLite URL is an
    ``InvalidArgumentError``; any other parameter of a PostgreSQL URL goes to asyncpg, which
    reads libpq's (``sslmode``, ...) and sends the rest to the server as settings
    (``application_name``, ...); one the server refuses is an ``InvalidArgumentError``.

    Returns:
        An awaitable async context manager giving the service.

    Raises:
        InvalidArgumentError: On a malformed URL, an unknown option or SQLite URL parameter,
            or a SQLite path whose directory does not exist.
        StorageError: When the database cannot be reached or opened (no password in the message;
            ``StorageUnavailableError`` when a retry may succeed).
        SchemaError: When the schema is newer than the code.
    """
    return _Connecting(url, migrate, dict(options))
