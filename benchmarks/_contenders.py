"""The contenders: one small adapter per session store, all with the same five operations.

Every adapter gets a fresh database in :meth:`Contender.open` and is driven through the same
calls; events are converted to the contender's own type before the clock starts, because that is
what its callers hold in their hands.
"""

from __future__ import annotations

import abc
import contextlib
import importlib.util
import json
import sqlite3
from collections.abc import AsyncIterator, Sequence
from typing import Any

import aiosqlite
import asyncpg

from . import _floor

__all__ = ("EVENT_CACHE", "Contender", "adk_wrapper_available", "build_contenders")

APP = "bench-app"
EVENT_CACHE = 100_000
"""Events the ``ours-adk-cache`` contender may hold (more than any workload reads)."""


class Contender(abc.ABC):
    """One session store under test.

    Attributes:
        key: Short name used in tables and JSON (``ours``, ``ours-adk``, ``adk-db``, ...).
        title: Long name for the legend.
        backend: ``"sqlite"``, ``"postgres"`` or ``"citus"`` (PostgreSQL distributed by Citus).
        growth: Whether the growth workloads (100 vs 100,000 events) run on it.
        scopes: Whether the appends with and without ``app:``/``user:`` keys run on it.
        adk_api: Whether it is a google-adk ``BaseSessionService`` (its ``service``), which
            the Runner-turn workload drives.
    """

    key: str = ""
    title: str = ""
    growth: bool = False
    scopes: bool = False
    adk_api: bool = False

    def __init__(self, backend: str, location: str, pool_size: int) -> None:
        """Remember where the contender's fresh database is.

        Args:
            backend: ``"sqlite"``, ``"postgres"`` or ``"citus"``.
            location: A file path (SQLite) or a DSN of an empty database (PostgreSQL, Citus).
            pool_size: Connections the contender may open (PostgreSQL).
        """
        self.backend = backend
        self.location = location
        self.pool_size = pool_size
        self.settings: dict[str, str] = {}

    @abc.abstractmethod
    async def open(self) -> None:
        """Connect and create the schema."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Release every connection."""

    @abc.abstractmethod
    def make_event(self, spec: dict[str, Any]) -> Any:
        """Convert a neutral event (JSON form) to the contender's event type."""

    @abc.abstractmethod
    async def create(self, user_id: str, session_id: str, state: dict[str, Any]) -> Any:
        """Create a session and return the contender's handle of it."""

    @abc.abstractmethod
    async def append(self, handle: Any, event: Any) -> None:
        """Append one event to the session behind ``handle``."""

    @abc.abstractmethod
    async def get(self, handle: Any, recent: int | None) -> int:
        """Read the session with its last ``recent`` events (all for ``None``); return the count."""

    @abc.abstractmethod
    async def list(self, user_id: str) -> int:
        """List one user's sessions; return how many came back."""

    async def bulk_history(self, handle: Any, specs: Sequence[dict[str, Any]]) -> Any:
        """Load a long history fast (setup of the growth workloads, not measured).

        Args:
            handle: A session handle.
            specs: Events in JSON form.

        Returns:
            A handle that is current after the load.
        """
        raise NotImplementedError


# --- adk_sessions, core API ----------------------------------------------------------------


class OursCore(Contender):
    """``adk_sessions`` through its core API."""

    key = "ours"
    title = "adk_sessions (core API)"
    growth = True
    scopes = True

    async def open(self) -> None:
        """Connect with ``adk_sessions.connect`` (migrations on)."""
        import adk_sessions

        self.service: Any = await adk_sessions.connect(self.url, **self._options())
        self.settings = {"connect": f"{self.url_label} {self._options()}"}

    @property
    def url(self) -> str:
        """The URL passed to ``adk_sessions.connect``."""
        return "sqlite:///" + self.location if self.backend == "sqlite" else self.location

    @property
    def url_label(self) -> str:
        """The URL without the temporary path."""
        return "sqlite:///<file>" if self.backend == "sqlite" else "postgresql://<db>"

    def _options(self) -> dict[str, Any]:
        if self.backend != "sqlite":
            return {"min_size": 1, "max_size": self.pool_size}
        # The library defaults to synchronous=FULL; the benchmark runs everyone at the same level
        # (NORMAL unless --sqlite-synchronous says otherwise).
        return {"synchronous": _floor.SQLITE_SYNCHRONOUS[0]}

    async def close(self) -> None:
        """Close the service."""
        await self.service.close()

    def make_event(self, spec: dict[str, Any]) -> Any:
        """Build an ``adk_sessions.Event``."""
        from adk_sessions import Event

        return Event.from_dict(spec)

    async def create(self, user_id: str, session_id: str, state: dict[str, Any]) -> Any:
        """``create_session``."""
        return await self.service.create_session(
            app_name=APP, user_id=user_id, session_id=session_id, state=state
        )

    async def append(self, handle: Any, event: Any) -> None:
        """``append_event``."""
        await self.service.append_event(handle, event)

    async def get(self, handle: Any, recent: int | None) -> int:
        """``get_session(num_recent_events=recent)``."""
        s = await self.service.get_session(
            app_name=APP, user_id=handle.user_id, session_id=handle.id, num_recent_events=recent
        )
        return len(s.events)

    async def list(self, user_id: str) -> int:
        """``list_sessions(user_id=...)``, all pages at once."""
        r = await self.service.list_sessions(app_name=APP, user_id=user_id)
        return len(r.sessions)

    async def bulk_history(self, handle: Any, specs: Sequence[dict[str, Any]]) -> Any:
        """Write the events straight into the library's tables, then re-read the session.

        The rows are what ``append_event`` stores (``Event.to_dict()`` as JSON, seq 1..n), so the
        reads that follow see an ordinary history.
        """
        from adk_sessions import Event

        records = [
            (
                APP,
                handle.user_id,
                handle.id,
                i,
                e["id"],
                e["timestamp"],
                json.dumps(Event.from_dict(e).to_dict()),
            )
            for i, e in enumerate(specs, start=handle.revision + 1)
        ]
        if self.backend != "sqlite":
            pool = await asyncpg.create_pool(self.location, min_size=1, max_size=1)
            try:
                await _floor.bulk_load_postgres(pool, handle, records)
            finally:
                await pool.close()
        else:
            async with aiosqlite.connect(self.location, isolation_level=None) as conn:
                await conn.execute("PRAGMA busy_timeout=10000")
                await _floor.bulk_load_sqlite(conn, handle, records)
        return await self.service.get_session(
            app_name=APP, user_id=handle.user_id, session_id=handle.id, num_recent_events=20
        )


# --- google-adk's API (its own services and our AdkSessionService) ---------------------------


class _AdkApi(Contender):
    """Drives any google-adk ``BaseSessionService``."""

    service: Any
    adk_api = True

    def make_event(self, spec: dict[str, Any]) -> Any:
        """Build a google-adk ``Event``."""
        from google.adk.events import Event

        return Event.model_validate(spec)

    async def create(self, user_id: str, session_id: str, state: dict[str, Any]) -> Any:
        """``create_session``."""
        return await self.service.create_session(
            app_name=APP, user_id=user_id, session_id=session_id, state=state
        )

    async def append(self, handle: Any, event: Any) -> None:
        """``append_event``."""
        await self.service.append_event(handle, event)

    async def get(self, handle: Any, recent: int | None) -> int:
        """``get_session(config=GetSessionConfig(num_recent_events=recent))``."""
        from google.adk.sessions.base_session_service import GetSessionConfig

        config = None if recent is None else GetSessionConfig(num_recent_events=recent)
        s = await self.service.get_session(
            app_name=APP, user_id=handle.user_id, session_id=handle.id, config=config
        )
        return len(s.events)

    async def list(self, user_id: str) -> int:
        """``list_sessions(user_id=...)``."""
        r = await self.service.list_sessions(app_name=APP, user_id=user_id)
        return len(r.sessions)

    async def close(self) -> None:
        """``close()``."""
        await self.service.close()


class OursAdk(_AdkApi):
    """``adk_sessions.adk.AdkSessionService`` on a core service (event cache off)."""

    key = "ours-adk"
    title = "adk_sessions AdkSessionService"
    event_cache = 0

    async def open(self) -> None:
        """Connect a core service and wrap it."""
        from adk_sessions.adk import AdkSessionService

        self._core = OursCore(self.backend, self.location, self.pool_size)
        await self._core.open()
        self.service = AdkSessionService(self._core.service, event_cache=self.event_cache)
        self.settings = dict(self._core.settings)
        if self.event_cache:
            self.settings["event_cache"] = f"{self.event_cache:,}"

    async def close(self) -> None:
        """Close the wrapper and the core service."""
        with contextlib.suppress(Exception):
            await self.service.close()
        await self._core.close()


class OursAdkCache(OursAdk):
    """``AdkSessionService(..., event_cache=N)``: validated events kept between reads."""

    key = "ours-adk-cache"
    title = "adk_sessions AdkSessionService, event cache on"
    event_cache = EVENT_CACHE


def _sqlite_pragmas(dbapi_connection: Any, connection_record: Any) -> None:
    cursor = dbapi_connection.cursor()
    for pragma in _floor.sqlite_pragmas():
        cursor.execute(pragma)
    cursor.close()


class AdkDatabase(_AdkApi):
    """google-adk's ``DatabaseSessionService`` (SQLAlchemy, aiosqlite or asyncpg)."""

    key = "adk-db"
    title = "google-adk DatabaseSessionService"

    async def open(self) -> None:
        """Create the engine (SQLite: the benchmark's pragmas on every connection)."""
        from google.adk.sessions.database_session_service import DatabaseSessionService
        from sqlalchemy import event

        if self.backend == "sqlite":
            self.service = DatabaseSessionService("sqlite+aiosqlite:///" + self.location)
            event.listen(self.service.db_engine.sync_engine, "connect", _sqlite_pragmas)
            self.settings = {"engine": "sqlite+aiosqlite, pragmas via connect event"}
        else:
            url = self.location.replace("postgresql://", "postgresql+asyncpg://", 1)
            self.service = DatabaseSessionService(url, pool_size=self.pool_size, max_overflow=0)
            self.settings = {
                "engine": f"postgresql+asyncpg pool_size={self.pool_size} max_overflow=0 "
                "(pool_pre_ping=True, google-adk's default)"
            }
        await self.service.prepare_tables()


class AdkSqlite(_AdkApi):
    """google-adk's ``SqliteSessionService`` (aiosqlite, a new connection per call)."""

    key = "adk-sqlite"
    title = "google-adk SqliteSessionService"

    async def open(self) -> None:
        """Put the file in WAL mode and set ``synchronous`` on each of its connections.

        WAL is a property of the file; ``synchronous`` is per connection, and the service opens
        one per call, so a subclass issues the pragma on each (one extra statement per call).
        """
        from google.adk.sessions.sqlite_session_service import SqliteSessionService

        level = _floor.SQLITE_SYNCHRONOUS[0]
        with contextlib.closing(sqlite3.connect(self.location)) as conn:
            conn.execute("PRAGMA journal_mode=WAL")

        class _Service(SqliteSessionService):
            @contextlib.asynccontextmanager
            async def _get_db_connection(self) -> AsyncIterator[aiosqlite.Connection]:
                async with super()._get_db_connection() as db:
                    await db.execute(f"PRAGMA synchronous={level}")
                    yield db

        self.service = _Service(self.location)
        self.settings = {"pragmas": f"WAL (file), synchronous={level} per connection"}


class Floor(Contender):
    """The raw floor (see :mod:`benchmarks._floor`)."""

    key = "floor"
    title = "floor (raw asyncpg / aiosqlite)"
    growth = True
    scopes = True

    async def open(self) -> None:
        """Create the schema and connect."""
        if self.backend == "sqlite":
            self.impl: Any = _floor.SqliteFloor(self.location)
            self.settings = {"pragmas": ", ".join(_floor.sqlite_pragmas())}
        else:
            self.impl = _floor.PostgresFloor(self.location, self.pool_size)
            self.settings = {"pool": f"asyncpg max_size={self.pool_size}"}
        await self.impl.open()

    async def close(self) -> None:
        """Disconnect."""
        await self.impl.close()

    def make_event(self, spec: dict[str, Any]) -> Any:
        """The JSON form is the floor's event."""
        return spec

    async def create(self, user_id: str, session_id: str, state: dict[str, Any]) -> Any:
        """Insert a session row."""
        import time

        return await self.impl.create_session(APP, user_id, session_id, state, time.time())

    async def append(self, handle: Any, event: Any) -> None:
        """The textbook append transaction."""
        await self.impl.append(handle, event)

    async def get(self, handle: Any, recent: int | None) -> int:
        """Two queries in a read-only transaction, rows decoded to dicts."""
        _, events = await self.impl.get(handle, recent)
        return len(events)

    async def list(self, user_id: str) -> int:
        """One query."""
        return len(await self.impl.list(APP, user_id))

    async def bulk_history(self, handle: Any, specs: Sequence[dict[str, Any]]) -> Any:
        """COPY / executemany into the same tables."""
        await self.impl.bulk_events(handle, specs)
        return handle


def adk_wrapper_available() -> bool:
    """Return whether ``adk_sessions.adk`` can be imported (the ``[adk]`` extra and the module).

    Returns:
        ``True`` when the AdkSessionService contender can run.
    """
    if importlib.util.find_spec("google.adk") is None:
        return False
    try:
        import adk_sessions.adk  # noqa: F401
    except ImportError:
        return False
    return True


def build_contenders(backend: str, only: set[str] | None) -> list[type[Contender]]:
    """Return the contender classes that run on a backend.

    On Citus only the library runs: google-adk's services would keep their tables local on the
    coordinator, and the floor's reads (one statement joining the app scope) are not what a
    Citus-aware reader would send.

    Args:
        backend: ``"sqlite"``, ``"postgres"`` or ``"citus"``.
        only: Keys to keep, or ``None`` for all.

    Returns:
        The classes, library first, floor last.
    """
    if backend == "citus":
        return [c for c in (OursCore,) if only is None or c.key in only]
    classes: list[type[Contender]] = [OursCore]
    if adk_wrapper_available():
        classes += [OursAdk, OursAdkCache]
    classes.append(AdkDatabase)
    if backend == "sqlite":
        classes.append(AdkSqlite)
    classes.append(Floor)
    return [c for c in classes if only is None or c.key in only]
