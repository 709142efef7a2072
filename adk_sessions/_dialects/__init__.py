"""The database dialects, and the one registry that says which URL selects which.

``connect()``, the google-adk adapter, the importer, the tests' backend matrix and the benchmarks
all read :data:`DIALECTS`: a dialect's name, the URL schemes that select it (SQLAlchemy-style
driver suffixes included, so google-adk's ``DatabaseSessionService`` URLs work), the URL
parameters it reads as ``connect()`` options, and its module, imported only when a URL needs it.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import attrs

from ..errors import InvalidArgumentError

if TYPE_CHECKING:
    from .base import Dialect

__all__ = ("DIALECTS", "NAMES", "SCHEMES", "DialectInfo", "ParsedURL", "parse_url")


def _flag(text: str) -> bool:
    """A boolean URL parameter: true/false, 1/0 (any case)."""
    lowered = text.lower()
    if lowered not in ("true", "false", "1", "0"):
        raise ValueError(text)
    return lowered in ("true", "1")


_flag.__name__ = "boolean"


@attrs.frozen(kw_only=True)
class DialectInfo:
    """One dialect as the rest of the package sees it.

    Attributes:
        name: ``"sqlite"`` or ``"postgres"`` (the ``sql/<name>/`` folder, ``service.dialect``).
        schemes: The URL schemes that select it, the canonical one first.
        url_params: URL query parameters read as ``connect()`` options, with their parsers.
        module: The module (in this package) holding its ``Dialect`` class.
        class_name: That class's name; it has ``async open(location, options)``.
    """

    name: str
    schemes: tuple[str, ...]
    url_params: Mapping[str, Callable[[str], Any]]
    module: str
    class_name: str

    async def open(self, location: str, options: Mapping[str, Any]) -> Dialect:
        """Open the database at ``location`` (a file path, or a ``postgresql://`` DSN)."""
        module = importlib.import_module(f"{__name__}.{self.module}")
        dialect: Dialect = await getattr(module, self.class_name).open(location, options)
        return dialect


SQLITE = DialectInfo(
    name="sqlite",
    schemes=("sqlite", "sqlite+aiosqlite"),
    url_params={"mode": str, "synchronous": str, "busy_timeout": float, "max_readers": int},
    module="sqlite",
    class_name="SqliteDialect",
)
POSTGRES = DialectInfo(
    name="postgres",
    schemes=("postgresql", "postgres", "postgresql+asyncpg"),
    url_params={
        "min_size": int,
        "max_size": int,
        "command_timeout": float,
        "connect_timeout": float,
        "statement_cache_size": int,
        "schema": str,
        "pgbouncer": _flag,
        "distribute": _flag,
    },
    module="postgres",
    class_name="PostgresDialect",
)

DIALECTS: tuple[DialectInfo, ...] = (SQLITE, POSTGRES)
"""Every dialect, SQLite (the embedded default) first."""

NAMES: tuple[str, ...] = tuple(info.name for info in DIALECTS)
"""The dialects' names: the tests' backend matrix and the benchmarks' backends start here."""

SCHEMES: tuple[str, ...] = tuple(scheme for info in DIALECTS for scheme in info.schemes)
"""Every URL scheme a dialect answers to."""


@attrs.frozen(kw_only=True)
class ParsedURL:
    """A database URL split once, for every caller.

    Attributes:
        dialect: The dialect its scheme selects.
        location: SQLite: the file path (``:memory:`` included). PostgreSQL: the
            ``postgresql://`` DSN without its query string.
        query: The query string (without ``?``), for the dialect's URL parameters.
    """

    dialect: DialectInfo
    location: str
    query: str


def parse_url(url: object) -> ParsedURL | None:
    """Split a database URL; ``None`` when its scheme is none of :data:`SCHEMES`.

    Raises:
        InvalidArgumentError: Not a string, or a SQLite URL that is not ``sqlite:///path``.
    """
    if not isinstance(url, str):
        raise InvalidArgumentError(f"url must be a string, not {type(url).__name__}")
    scheme, sep, rest = url.partition("://")
    info = next((d for d in DIALECTS if scheme.lower() in d.schemes), None) if sep else None
    if info is None:
        return None
    location, _, query = rest.partition("?")
    if info is POSTGRES:
        return ParsedURL(dialect=info, location="postgresql://" + location, query=query)
    if not location.startswith("/"):
        raise InvalidArgumentError(
            f"SQLite URL {url!r} must be sqlite:///relative.db, sqlite:////absolute.db "
            "or sqlite:///:memory:"
        )
    if not location[1:]:
        raise InvalidArgumentError(f"SQLite URL {url!r} names no file")
    return ParsedURL(dialect=info, location=location[1:], query=query)
