"""google-adk integration: :class:`AdkSessionService`, a drop-in ``BaseSessionService``.

Install with the ``adk`` extra (``pip install "adk-sessions[adk]"``): google-adk 1.28.0 up to,
not including, 3.0; the differences between those releases live in ``_adk_compat``. The service
keeps google-adk's signatures, exceptions and semantics and stores through an ``adk_sessions``
core service, so swapping it in for ``DatabaseSessionService`` or ``SqliteSessionService`` is a
one-line change::

    runner = Runner(agent=agent, app_name="app",
                    session_service=AdkSessionService("sqlite:///sessions.db"))

How google-adk's models map onto the core's:

- ADK ``Event`` <-> core :class:`~adk_sessions.Event` through google-adk's own JSON form,
  ``model_dump(mode="json", exclude_none=True)`` and ``Event.model_validate``, so every field
  (present or future) survives the round trip.
- ADK ``Session`` <-> core :class:`~adk_sessions.Session`; the core's ``revision`` travels in
  ADK's private ``Session._storage_update_marker`` (as ``"rev:<n>"``), the same slot google-adk's
  ``DatabaseSessionService`` uses for its own stale-writer marker. A session without a marker of
  ours (built by hand, or loaded by another service) is judged by google-adk's documented
  fallback rule: accepted when the stored update time is not newer than the session's
  ``last_update_time``, or when its last event is the newest stored event.

Deliberate differences from google-adk's database services:

- State values that are not JSON are converted the way google-adk converts them (pydantic's
  ``to_jsonable_python``, then ``repr`` for what that cannot convert), but values that JSON cannot
  represent even then (``NaN``, ``Infinity``, strings containing ``\\x00``) raise ``ValueError``
  (the core's ``InvalidArgumentError``) before anything is written, on every backend alike.
- Empty ``app_name``/``user_id`` raise ``ValueError``; an event id that already exists in the
  session raises ``ValueError`` and writes nothing.
- Staleness is decided by the revision, never by timestamps, and events reload in append order
  (never re-sorted by timestamp).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from types import TracebackType
from typing import TYPE_CHECKING, Any, cast

import anyio
from pydantic_core import to_jsonable_python
from typing_extensions import Self, override

import adk_sessions

from . import _adk_compat as compat
from ._adk_compat import AlreadyExistsError, BaseSessionService, GetSessionConfig
from ._adk_compat import Event as AdkEvent
from ._adk_compat import ListSessionsResponse as AdkListSessionsResponse
from ._adk_compat import Session as AdkSession
from ._adk_compat import SessionNotFoundError as AdkSessionNotFoundError
from ._models import Event, Session
from ._service import DEFAULT_BATCH_SIZE
from .errors import (
    InvalidArgumentError,
    SessionExistsError,
    SessionNotFoundError,
    StaleSessionError,
)

if TYPE_CHECKING:
    from adk_sessions import SessionService

    from ._adk_compat import ServiceRegistry

__all__ = ("SCHEMES", "AdkSessionService", "from_adk_event", "register", "to_adk_event")

logger = logging.getLogger(__name__)

SCHEMES: tuple[str, ...] = (
    "sqlite",
    "sqlite+aiosqlite",
    "postgresql",
    "postgres",
    "postgresql+asyncpg",
)
"""URI schemes :func:`register` claims in google-adk's service registry."""

_MARKER_PREFIX = "rev:"


def _core_url(url: str) -> str:
    """Turn a google-adk style database URL or a SQLite file path into a core URL.

    SQLAlchemy driver suffixes (``postgresql+asyncpg``, ``sqlite+aiosqlite``) are dropped,
    ``sqlite://`` without a path means an in-memory database (as in google-adk's registry), and
    a string without ``://`` is a SQLite file path (``SqliteSessionService(db_path)``'s form).
    """
    url = url.strip()
    if "://" not in url:
        return "sqlite:///" + url
    scheme, rest = url.split("://", 1)
    base = scheme.split("+", 1)[0].lower()
    if base == "sqlite" and rest in ("", "/"):
        return "sqlite:///:memory:"
    return f"{base}://{rest}"


def _check_finite(state: dict[str, Any]) -> None:
    """Refuse ``NaN``/``Infinity`` anywhere in a state mapping, naming the top-level key.

    google-adk's JSON conversion would store them as ``null`` while the caller's session keeps
    the float; nothing can store them faithfully, so they are an error before anything changes.
    """
    for key, value in state.items():
        stack = [value]
        while stack:
            item = stack.pop()
            if isinstance(item, float) and not math.isfinite(item):
                raise InvalidArgumentError(
                    f"state key {key!r}: {item!r} cannot be stored (JSON has no NaN/Infinity)"
                )
            if isinstance(item, dict):
                stack.extend(item.values())
            elif isinstance(item, (list, tuple, set, frozenset)):
                stack.extend(item)


def _json_safe(state: dict[str, Any]) -> dict[str, Any]:
    """Convert state values to JSON the way google-adk's database services do.

    Rich values (datetimes, pydantic models, sets, ...) are converted faithfully; values that
    cannot be (callables, ...) are replaced by their ``repr`` and a warning is logged.
    """
    _check_finite(state)
    try:
        return cast("dict[str, Any]", to_jsonable_python(state))
    except Exception:
        logger.warning(
            "Session state has values that are not JSON-serializable; they are stored as "
            "their string representation.",
            exc_info=True,
        )
        return cast("dict[str, Any]", to_jsonable_python(state, serialize_unknown=True))


def from_adk_event(event: AdkEvent) -> Event:
    """Convert a google-adk ``Event`` to a core :class:`~adk_sessions.Event`, losslessly.

    Args:
        event: The google-adk event.

    Returns:
        The core event holding google-adk's JSON form of every field.
    """
    data = event.model_dump(mode="json", exclude_none=True)
    configs = event.actions.requested_auth_configs
    if configs:
        # By field name, FastAPI's OpenAPI security schemes dump ``type_``/``in_``, which do not
        # validate back (an API-key scheme would reload as a redacted CustomAuthScheme); their
        # aliases do, so auth configs are kept in their aliased JSON form.
        data["actions"]["requested_auth_configs"] = {
            key: config.model_dump(mode="json", exclude_none=True, by_alias=True)
            for key, config in configs.items()
        }
    return Event.from_dict(data)


def to_adk_event(event: Event) -> AdkEvent:
    """Convert a core :class:`~adk_sessions.Event` back to a google-adk ``Event``.

    Args:
        event: The core event.

    Returns:
        The google-adk event, equal to the one :func:`from_adk_event` was given.
    """
    return AdkEvent.model_validate(event.to_dict())


def _marker(revision: int) -> str:
    return f"{_MARKER_PREFIX}{revision}"


def _revision(marker: str | None) -> int | None:
    """Our revision from a session's marker; ``None`` when the marker is absent or foreign."""
    if marker is None or not marker.startswith(_MARKER_PREFIX):
        return None
    digits = marker[len(_MARKER_PREFIX) :]
    return int(digits) if digits.isdigit() else None


def _to_adk_session(session: Session) -> AdkSession:
    adk_session = AdkSession(
        id=session.id,
        app_name=session.app_name,
        user_id=session.user_id,
        state=session.state,
        events=[to_adk_event(event) for event in session.events],
        last_update_time=session.last_update_time,
    )
    compat.set_marker(adk_session, _marker(session.revision))
    return adk_session


class AdkSessionService(BaseSessionService):
    """google-adk's ``BaseSessionService`` on an ``adk_sessions`` store (PostgreSQL or SQLite).

    Construct it from a URL (the connection opens lazily, on first use, in the event loop that
    uses it) or from an open core service (used as is, and left open by :meth:`close`)::

        AdkSessionService("postgresql://user:pw@host/db", max_size=10)
        AdkSessionService("sqlite:///sessions.db")      # or a plain path: "sessions.db"
        AdkSessionService(await adk_sessions.connect(url))
        AdkSessionService(uri=url, agents_dir="agents")  # what google-adk's services.yaml calls
        AdkSessionService(db_url=url)                    # DatabaseSessionService's keyword
        AdkSessionService(db_path="sessions.db")         # SqliteSessionService's keyword

    SQLAlchemy-style URLs (``postgresql+asyncpg://``, ``sqlite+aiosqlite://``) are accepted.

    Args:
        url_or_service: A database URL, a SQLite file path, or an open core service.
        uri: The URL, as google-adk's service registry passes it.
        db_url: The URL, as ``DatabaseSessionService(db_url=...)`` takes it.
        db_path: A SQLite path or URL, as ``SqliteSessionService(db_path=...)`` takes it.
        agents_dir: Passed by google-adk's registry; not used.
        **options: Passed to :func:`adk_sessions.connect` (pool sizes, timeouts, pragmas, ...).

    Raises:
        TypeError: When no URL or service, or more than one, is given, or options are given
            together with a service.
    """

    def __init__(
        self,
        url_or_service: str | SessionService | None = None,
        /,
        *,
        uri: str | None = None,
        db_url: str | None = None,
        db_path: str | None = None,
        agents_dir: str | None = None,
        **options: Any,
    ) -> None:
        given = [value for value in (url_or_service, uri, db_url, db_path) if value is not None]
        if len(given) != 1:
            raise TypeError(
                "AdkSessionService takes exactly one of a URL or service (positional), uri=, "
                f"db_url= or db_path=; got {len(given)}"
            )
        self._agents_dir = agents_dir
        self._options = options
        self._connect_lock: anyio.Lock | None = None
        source = given[0]
        if isinstance(source, str):
            self._url: str | None = _core_url(source)
            self._service: SessionService | None = None
            self._owns_service = True
        else:
            if options:
                raise TypeError("options apply to a URL, not to an open service")
            self._url = None
            self._service = source
            self._owns_service = False

    async def _core(self) -> SessionService:
        """The core service, connecting on first use."""
        if self._service is not None:
            return self._service
        if self._connect_lock is None:
            self._connect_lock = anyio.Lock()
        async with self._connect_lock:
            if self._service is None:
                assert self._url is not None
                self._service = await adk_sessions.connect(self._url, **self._options)
        return self._service

    @property
    def service(self) -> SessionService | None:
        """The core service in use, or ``None`` before a URL-built service first connects."""
        return self._service

    async def close(self) -> None:
        """Close the connection this service opened; a service given to it is left open.

        A URL-built service can be used again after ``close()``: it reconnects on next use.
        """
        service = self._service
        if service is None or not self._owns_service:
            return
        self._service = None
        await service.close()

    async def __aenter__(self) -> Self:
        """Connect (if not yet connected) and return this service."""
        await self._core()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc_val: BaseException | None,
        exc_tb: TracebackType | None,
    ) -> None:
        """Close, as :meth:`close` does."""
        await self.close()

    @override
    async def flush(self) -> None:
        """Do nothing: every event is committed before ``append_event`` returns."""

    @override
    async def create_session(
        self,
        *,
        app_name: str,
        user_id: str,
        state: dict[str, Any] | None = None,
        session_id: str | None = None,
    ) -> AdkSession:
        """Create a session, storing ``app:``/``user:`` keys in their scopes.

        Args:
            app_name: The application.
            user_id: The user.
            state: Initial state; ``temp:`` keys are dropped, values converted to JSON as
                google-adk converts them.
            session_id: The id; a uuid4 is generated when ``None`` or empty.

        Returns:
            The new session, carrying the merged state and its revision marker.

        Raises:
            AlreadyExistsError: The id exists for this app and user.
            ValueError: Empty app or user, or a state value JSON cannot represent.
        """
        core = await self._core()
        try:
            session = await core.create_session(
                app_name=app_name,
                user_id=user_id,
                state=_json_safe(state) if state else None,
                session_id=session_id,
            )
        except SessionExistsError as exc:
            raise AlreadyExistsError(f"Session with id {session_id} already exists.") from exc
        return _to_adk_session(session)

    @override
    async def get_session(
        self,
        *,
        app_name: str,
        user_id: str,
        session_id: str,
        config: GetSessionConfig | None = None,
    ) -> AdkSession | None:
        """Load a session with its merged state and (some of) its events, in append order.

        Args:
            app_name: The application.
            user_id: The user.
            session_id: The session.
            config: ``num_recent_events`` keeps the last N events (0: none);
                ``after_timestamp`` keeps events with ``timestamp >= after_timestamp``.

        Returns:
            The session, equal to the one ``create_session``/``append_event`` left in the
            caller's hands; ``None`` when it does not exist.
        """
        core = await self._core()
        session = await core.get_session(
            app_name=app_name,
            user_id=user_id,
            session_id=session_id,
            num_recent_events=config.num_recent_events if config else None,
            # google-adk treats a falsy after_timestamp (0.0) as "no filter".
            after=config.after_timestamp if config and config.after_timestamp else None,
        )
        return None if session is None else _to_adk_session(session)

    @override
    async def list_sessions(
        self, *, app_name: str, user_id: str | None = None
    ) -> AdkListSessionsResponse:
        """List an app's sessions (one user's when ``user_id`` is given), oldest update first.

        Args:
            app_name: The application.
            user_id: The user, or ``None`` for every user.

        Returns:
            The sessions with merged state and no events.
        """
        core = await self._core()
        response = await core.list_sessions(app_name=app_name, user_id=user_id)
        return AdkListSessionsResponse(
            sessions=[_to_adk_session(session) for session in response.sessions]
        )

    @override
    async def delete_session(self, *, app_name: str, user_id: str, session_id: str) -> None:
        """Delete a session and its events; a missing session is a no-op.

        Args:
            app_name: The application.
            user_id: The user.
            session_id: The session.
        """
        core = await self._core()
        await core.delete_session(app_name=app_name, user_id=user_id, session_id=session_id)

    @override
    async def get_user_state(self, *, app_name: str, user_id: str) -> dict[str, Any]:
        """Return the user scope, keys without the ``user:`` prefix (``{}`` when none).

        Args:
            app_name: The application.
            user_id: The user.

        Returns:
            A new dict.
        """
        core = await self._core()
        return await core.get_user_state(app_name=app_name, user_id=user_id)

    async def get_app_state(self, *, app_name: str) -> dict[str, Any]:
        """Return the app scope, keys without the ``app:`` prefix (``{}`` when none).

        Not part of google-adk's ``BaseSessionService``; offered because the core has it.

        Args:
            app_name: The application.

        Returns:
            A new dict.
        """
        core = await self._core()
        return await core.get_app_state(app_name=app_name)

    async def delete_sessions(
        self,
        *,
        app_name: str,
        user_id: str | None = None,
        updated_before: float,
        batch_size: int = DEFAULT_BATCH_SIZE,
        progress: Callable[[int], None] | None = None,
    ) -> int:
        """Delete the sessions (with their events) last updated before a time: retention.

        Not part of google-adk's ``BaseSessionService``; the core's
        :meth:`~adk_sessions.SessionService.delete_sessions`, in batches of short transactions
        while agents keep appending. App and user state are kept.

        Args:
            app_name: The application.
            user_id: Only this user's sessions; ``None`` for every user.
            updated_before: Epoch seconds; sessions last updated exactly then are kept.
            batch_size: Sessions per transaction.
            progress: Called after each batch with the number it deleted.

        Returns:
            How many sessions were deleted.

        Raises:
            ValueError: Empty names, a missing or non-numeric ``updated_before``, a
                ``batch_size`` below 1 (the core's ``InvalidArgumentError``).
        """
        core = await self._core()
        return await core.delete_sessions(
            app_name=app_name,
            user_id=user_id,
            updated_before=updated_before,
            batch_size=batch_size,
            progress=progress,
        )

    @override
    async def append_event(self, session: AdkSession, event: AdkEvent) -> AdkEvent:
        """Store an event and advance ``session``, as google-adk's database service does.

        Partial events are returned untouched. ``temp:`` keys go to ``session.state`` and are
        then removed from ``event.actions.state_delta`` (the caller's event, in place), so they
        are never stored. The event, the state deltas and the new revision commit in one
        transaction; only then do ``session.events``, ``session.state``,
        ``session.last_update_time`` and the revision marker move on. An event without an id
        gets the id it is stored under.

        Args:
            session: The session the event belongs to, as loaded or created by this service.
            event: The event.

        Returns:
            ``event`` itself.

        Raises:
            StaleSessionError: The stored session moved on since ``session`` was loaded.
            SessionNotFoundError: The session does not exist.
            ValueError: The event id exists in the session, or a state value JSON cannot
                represent; nothing was written.
        """
        if event.partial:
            return event
        if event.actions and event.actions.state_delta:
            _check_finite(event.actions.state_delta)
        core = await self._core()
        revision = _revision(compat.get_marker(session))
        last_update_time = session.last_update_time
        if revision is None:
            revision, last_update_time = await self._fallback_revision(core, session)
        target = Session(
            id=session.id,
            app_name=session.app_name,
            user_id=session.user_id,
            last_update_time=last_update_time,
            revision=revision,
        )
        # The core stores the event without its temp: keys; the caller's event and session
        # change only once it is stored, so a failed append leaves both as they were and can be
        # retried with the same event.
        try:
            await core.append_event(target, from_adk_event(event))
        except StaleSessionError as exc:
            raise compat.StaleSessionError(compat.STALE_SESSION_MESSAGE) from exc
        except SessionNotFoundError as exc:
            raise AdkSessionNotFoundError(f"Session {session.id} not found.") from exc
        except BaseException:
            # A cancellation that landed after COMMIT: the core advanced ``target``; the
            # caller's session must move with it before the cancellation goes on.
            if target.revision != revision:
                self._advance(session, event, target)
            raise
        return self._advance(session, event, target)

    def _advance(self, session: AdkSession, event: AdkEvent, target: Session) -> AdkEvent:
        """Move the caller's session and event on after the core stored the event."""
        compat.apply_temp_state(self, session, event)
        event = compat.trim_temp_delta_state(self, event)
        if not event.id:
            event.id = target.events[-1].id
        session.last_update_time = target.last_update_time
        compat.set_marker(session, _marker(target.revision))
        return compat.commit_event_to_session(self, session, event)

    async def _fallback_revision(
        self, core: SessionService, session: AdkSession
    ) -> tuple[int, float]:
        """Judge a session without our marker by google-adk's rule; return the stored revision.

        google-adk's ``DatabaseSessionService``: when storage has not advanced past the
        session's ``last_update_time`` the session is current; otherwise it is current only if
        its last event is the newest stored event (or both have no events).
        """
        stored = await core.get_session(
            app_name=session.app_name,
            user_id=session.user_id,
            session_id=session.id,
            num_recent_events=1,
        )
        if stored is None:
            raise AdkSessionNotFoundError(f"Session {session.id} not found.")
        if stored.last_update_time > session.last_update_time:
            newest = stored.events[-1].id if stored.events else None
            mine = session.events[-1].id if session.events else None
            if newest != mine:
                raise compat.StaleSessionError(compat.STALE_SESSION_MESSAGE)
        return stored.revision, stored.last_update_time


def _factory(uri: str, **kwargs: Any) -> AdkSessionService:
    """google-adk service-registry factory: ``(uri, **kwargs) -> service``."""
    return AdkSessionService(uri=uri, **kwargs)


def register(
    registry: ServiceRegistry | None = None, *, schemes: tuple[str, ...] = SCHEMES
) -> None:
    """Make google-adk's service registry build :class:`AdkSessionService` for database URLs.

    After this, ``adk web``/``adk api_server --session_service_uri=postgresql://...`` (or
    ``sqlite:///...``) and ``get_fast_api_app(session_service_uri=...)`` use this library.
    Call it from a ``services.py`` in the agents directory, which google-adk imports at start-up.

    Args:
        registry: The registry; google-adk's global one by default.
        schemes: The URI schemes to claim; :data:`SCHEMES` by default.
    """
    if registry is None:
        registry = compat.service_registry()
    factory = cast("Callable[..., Any]", _factory)
    for scheme in schemes:
        registry.register_session_service(scheme, factory)
