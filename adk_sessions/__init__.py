"""adk_sessions: a durable async session store for agent runtimes (PostgreSQL and SQLite)."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError as _PackageNotFoundError
from importlib.metadata import version as _version

from ._connect import connect as connect
from ._models import Event as Event
from ._models import EventActions as EventActions
from ._models import ListSessionsResponse as ListSessionsResponse
from ._models import Session as Session
from ._service import SessionService as SessionService

__all__ = (
    "Event",
    "EventActions",
    "ListSessionsResponse",
    "Session",
    "SessionService",
    "__version__",
    "connect",
)

try:
    __version__: str = _version("adk-sessions")
except _PackageNotFoundError:  # pragma: no cover - running from a checkout without install
    __version__ = "0+unknown"
