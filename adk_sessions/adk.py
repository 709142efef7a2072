"""google-adk integration: :class:`AdkSessionService`, a drop-in ``BaseSessionService``.

Install with the ``adk`` extra (``pip install "adk-sessions[adk]"``). The service keeps
google-adk's signatures, exceptions and semantics and stores through an ``adk_sessions``
core service, so swapping it in for ``DatabaseSessionService`` or ``SqliteSessionService`` is a
one-line change::

    runner = Runner(agent=agent, app_name="app",
                    session_service=AdkSessionService("sqlite:///sessions.db"))

How google-adk's models map onto the core's:

- ADK ``Event`` <-> core :class:`~adk_sessions.Event` through google-adk's own JSON form,
  ``model_dump(mode="json", exclude_none=True)`` and ``Event.model_validate``, so every field
  (present or future) survives the round trip.
- Reads build google-adk's objects straight from the stored JSON in one pass: each event with
  ``Event.model_validate_json`` (google-adk's own validation, the bulk of a read's cost), the
  session around them without validating again what storage already holds.
- ADK ``Session`` <-> core :class:`~adk_sessions.Session`; the core's ``revision`` travels in
  ADK's private ``Session._storage_update_marker`` (as ``"rev:<n>"``), the same slot google-adk's
  ``DatabaseSessionService`` uses for its own stale-writer marker. A session without a marker of
  ours (built by hand, or loaded by another service) is judged by google-adk's documented
  fallback rule: accepted when the stored update time is not newer than the session's
  ``last_update_time``, or when its last event is the newest stored event.

The event cache (``AdkSessionService(url, event_cache=N)``, off by default) keeps the validated
events of recently read sessions, at most ``N`` events in all (least recently used sessions go
first). A cached ``get_session`` reads the session row and only the events stored after the
cached revision, and returns a new ``Session`` with a new ``events`` list holding the *same*
``Event`` objects as earlier results: the trade google-adk's own
``IN_MEMORY_SESSION_SERVICE_LIGHT_COPY`` makes. With the cache on, do not mutate loaded events in
place. Each read checks the cache against storage (the session's creation time, its revision and
the stored text of the last cached event), so appends by other services or processes, and a
session deleted and created again under the same id, are seen. The one re-creation it cannot
tell apart: one given the very creation time of the session it replaces (only
``create_session(last_update_time=...)``, which importers use, can do that) that also stores,
at the cached revision, an event byte for byte equal to the cached one while earlier events
differ.

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

import collections
import logging
import math
import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, cast

import anyio
import attrs
from pydantic_core import to_jsonable_python
from typing_extensions import Self, override

import adk_sessions

from . import _adk_compat as compat
from ._adk_compat import AlreadyExistsError, BaseSessionService, GetSessionConfig
from ._adk_compat import Event as AdkEvent
from ._adk_compat import ListSessionsResponse as AdkListSessionsResponse
from ._adk_compat import Session as AdkSession
from ._adk_compat import SessionNotFoundError as AdkSessionNotFoundError
from ._codec import StoredSession, unreadable_event
from ._dialects import SCHEMES as dialect_schemes
from ._dialects import SQLITE
from ._json import dumps
from ._models import Event, Session
from ._service import DEFAULT_BATCH_SIZE
from ._validate import check_count, check_seconds
from .errors import (
    InvalidArgumentError,
    SessionExistsError,
    SessionNotFoundError,
    StaleSessionError,
)

if TYPE_CHECKING:
    from adk_sessions import SessionService

    from ._adk_compat import ServiceRegistry

__all__ = (
    "SCHEMES",
    "AdkSessionService",
    "EventCacheInfo",
    "from_adk_event",
    "register",
    "to_adk_event",
)

_log = logging.getLogger(__name__)

SCHEMES: tuple[str, ...] = dialect_schemes
"""URI schemes :func:`register` claims in google-adk's service registry (every scheme
``adk_sessions.connect`` answers to)."""

_MARKER_PREFIX = "rev:"


def _core_url(url: str) -> str:
    """Turn a google-adk style database URL or a SQLite file path into a core URL.

    ``sqlite://`` without a path means an in-memory database (as in google-adk's registry), and
    a string without ``://`` is a SQLite file path (``SqliteSessionService(db_path)``'s form);
    every other URL (SQLAlchemy driver suffixes included) is one ``connect`` reads as it is.
    """
    url = url.strip()
    if "://" not in url:
        return "sqlite:///" + url
    scheme, rest = url.split("://", 1)
    if scheme.lower() in SQLITE.schemes and rest in ("", "/"):
        return "sqlite:///:memory:"
    return url


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
        _log.warning(
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


_SESSION_FIELDS = frozenset(("id", "app_name", "user_id", "state", "events", "last_update_time"))
_new_object = object.__new__
_set = object.__setattr__


def _validated_session(
    app_name: str,
    user_id: str,
    session_id: str,
    state: dict[str, Any],
    last_update_time: float,
    revision: int,
    events: list[AdkEvent] | None = None,
) -> AdkSession:
    """Build a google-adk ``Session`` through pydantic's validation (the reference)."""
    adk_session = AdkSession(
        id=session_id,
        app_name=app_name,
        user_id=user_id,
        state=state,
        events=events if events is not None else [],
        last_update_time=last_update_time,
    )
    compat.set_marker(adk_session, _marker(revision))
    return adk_session


def _assembled_session(
    app_name: str,
    user_id: str,
    session_id: str,
    state: dict[str, Any],
    last_update_time: float,
    revision: int,
    events: list[AdkEvent] | None = None,
    *,
    _new: Callable[[type[AdkSession]], AdkSession] = _new_object,
    _slot: Callable[[object, str, object], None] = _set,
    _cls: type[AdkSession] = AdkSession,
    _fields: frozenset[str] = _SESSION_FIELDS,
) -> AdkSession:
    """Build a google-adk ``Session`` from values storage already validated, without validating.

    Sets the instance slots pydantic's own ``model_construct`` sets (``__dict__``, the fields
    set, no extras, the private attributes): three times faster than validation, which walks
    the state and every event again (``model_construct`` is slower than validation here). The
    argument order is :meth:`SessionService._list_stored_sessions`'s, so that a list builds each
    session with one call; the keyword-only defaults bind the helpers locally.
    """
    adk_session = _new(_cls)
    _slot(
        adk_session,
        "__dict__",
        {
            "id": session_id,
            "app_name": app_name,
            "user_id": user_id,
            "state": state,
            "events": events if events is not None else [],
            "last_update_time": last_update_time,
        },
    )
    _slot(adk_session, "__pydantic_fields_set__", set(_fields))
    _slot(adk_session, "__pydantic_extra__", None)
    _slot(
        adk_session,
        "__pydantic_private__",
        compat.private_attributes(_MARKER_PREFIX + str(revision)),
    )
    return adk_session


def _assembly_matches_validation() -> bool:
    """Whether :func:`_assembled_session` builds what validation builds, slot for slot.

    Checked once at import: should a google-adk or pydantic release lay its models out
    differently, sessions are validated again (slower, never wrong).
    """
    event = AdkEvent(author="user")
    args = ("app", "u", "s", {"k": [1]}, 1.5, 3, [event])
    try:
        built, reference = _assembled_session(*args), _validated_session(*args)
        return bool(
            AdkSession.model_fields.keys() == _SESSION_FIELDS
            and built.__dict__ == reference.__dict__
            and built.__pydantic_fields_set__ == reference.__pydantic_fields_set__
            and built.__pydantic_extra__ == reference.__pydantic_extra__
            and built.__pydantic_private__ == reference.__pydantic_private__
            and built == reference
        )
    except Exception:  # pragma: no cover - depends on the installed google-adk
        return False


_build_session = _assembled_session if _assembly_matches_validation() else _validated_session


def _to_adk_session(session: Session) -> AdkSession:
    return _build_session(
        session.app_name,
        session.user_id,
        session.id,
        session.state,
        session.last_update_time,
        session.revision,
        [to_adk_event(event) for event in session.events],
    )


_validate_event = AdkEvent.model_validate_json


def _adk_events(stored: StoredSession, session_id: str, start: int = 0) -> list[AdkEvent]:
    """Validate stored events (JSON text) into google-adk events, one pass each.

    Args:
        stored: What the core read.
        session_id: The session, for the message of a row that cannot be read.
        start: Skip the first ``start`` events read.

    Raises:
        StorageError: A stored row is not a google-adk event; names the session and the
            event's position.
    """
    texts = stored.events[start:] if start else stored.events
    try:
        return [_validate_event(text) for text in texts]
    except Exception:  # find the row, and say which one it is
        for text, seq in zip(texts, stored.seqs[start:], strict=True):
            try:
                _validate_event(text)
            except Exception as exc:
                raise unreadable_event(session_id, seq, exc) from exc
        raise


def _select(
    events: Sequence[AdkEvent], num_recent_events: int | None, after: float | None
) -> list[AdkEvent]:
    """Apply ``get_session``'s filters in memory, exactly as the core's query does."""
    if after is not None:
        events = [event for event in events if event.timestamp >= after]
    if num_recent_events is not None:
        events = events[max(len(events) - num_recent_events, 0) :] if num_recent_events else []
    return list(events)


@attrs.frozen(kw_only=True)
class EventCacheInfo:
    """What :class:`AdkSessionService`'s event cache holds and has done.

    Attributes:
        capacity: The most events held (``event_cache``; 0 when the cache is off).
        sessions: Sessions held.
        events: Events held (never more than ``capacity``).
        hits: ``get_session`` calls answered from the cache (plus the events stored since).
        misses: ``get_session`` calls that read the whole history (nothing cached, or what was
            cached no longer matched storage).
        loaded: Events read from storage and validated by ``get_session`` with the cache on.
    """

    capacity: int
    sessions: int
    events: int
    hits: int
    misses: int
    loaded: int


@attrs.frozen(kw_only=True)
class _Entry:
    """One cached session: its events up to ``revision`` and what identifies them in storage."""

    create_time: float
    revision: int
    events: tuple[AdkEvent, ...]
    last_text: str  # the stored JSON of the event at seq == revision


_Key = tuple[str, str, str]


class _EventCache:
    """Validated events per session, least recently used first out, at most ``capacity`` events.

    Entries are immutable and replaced whole, so concurrent tasks never see half an update. A
    lock guards the bookkeeping: google-adk's synchronous ``Runner.run`` drives the service from
    threads of its own, each with its own event loop.
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._entries: collections.OrderedDict[_Key, _Entry] = collections.OrderedDict()
        self._lock = threading.Lock()
        self._held = 0
        self._hits = 0
        self._misses = 0
        self._loaded = 0

    def get(self, key: _Key) -> _Entry | None:
        return self._entries.get(key)

    def put(self, key: _Key, entry: _Entry) -> None:
        size = len(entry.events)
        with self._lock:
            self._drop(key)
            if not size or size > self.capacity:
                return
            self._entries[key] = entry
            self._held += size
            while self._held > self.capacity:
                _, evicted = self._entries.popitem(last=False)
                self._held -= len(evicted.events)

    def drop(self, key: _Key) -> None:
        with self._lock:
            self._drop(key)

    def _drop(self, key: _Key) -> None:
        entry = self._entries.pop(key, None)
        if entry is not None:
            self._held -= len(entry.events)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._held = 0

    def drop_matching(self, app_name: str, user_id: str | None) -> None:
        with self._lock:
            for key in [k for k in self._entries if k[0] == app_name and user_id in (None, k[1])]:
                self._drop(key)

    def count(self, *, hits: int = 0, misses: int = 0, loaded: int = 0) -> None:
        with self._lock:
            self._hits += hits
            self._misses += misses
            self._loaded += loaded

    def info(self) -> EventCacheInfo:
        with self._lock:
            return EventCacheInfo(
                capacity=self.capacity,
                sessions=len(self._entries),
                events=self._held,
                hits=self._hits,
                misses=self._misses,
                loaded=self._loaded,
            )


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

    ``event_cache=N`` keeps the validated events of recently read sessions in memory, at most
    ``N`` events in all; a ``get_session`` of a cached session then reads only the session row
    and the events stored since (see the module documentation). Loaded events are shared
    between the sessions returned: do not mutate them in place.

    Args:
        url_or_service: A database URL, a SQLite file path, or an open core service.
        uri: The URL, as google-adk's service registry passes it.
        db_url: The URL, as ``DatabaseSessionService(db_url=...)`` takes it.
        db_path: A SQLite path or URL, as ``SqliteSessionService(db_path=...)`` takes it.
        agents_dir: Passed by google-adk's registry; not used.
        event_cache: The most events the cache holds; 0 (the default) turns it off.
        **options: Passed to :func:`adk_sessions.connect` (pool sizes, timeouts, pragmas, ...).

    Raises:
        TypeError: When no URL or service, or more than one, is given, or options are given
            together with a service.
        ValueError: When ``event_cache`` is not a count (an int >= 0).
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
        event_cache: int = 0,
        **options: Any,
    ) -> None:
        given = [value for value in (url_or_service, uri, db_url, db_path) if value is not None]
        if len(given) != 1:
            raise TypeError(
                "AdkSessionService takes exactly one of a URL or service (positional), uri=, "
                f"db_url= or db_path=; got {len(given)}"
            )
        capacity = check_count("event_cache", event_cache) or 0
        self._cache = _EventCache(capacity) if capacity else None
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

    @property
    def event_cache_info(self) -> EventCacheInfo:
        """What the event cache holds and has done (all zeros when it is off)."""
        if self._cache is None:
            return EventCacheInfo(capacity=0, sessions=0, events=0, hits=0, misses=0, loaded=0)
        return self._cache.info()

    async def close(self) -> None:
        """Close the connection this service opened; a service given to it is left open.

        The event cache is emptied. A URL-built service can be used again after ``close()``:
        it reconnects on next use.
        """
        if self._cache is not None:
            self._cache.clear()
        service = self._service
        if service is None or not self._owns_service:
            return
        self._service = None
        await service.close()

    async def __aenter__(self) -> Self:
        """Connect (if not yet connected) and return this service."""
        await self._core()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
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
        if self._cache is not None:
            self._cache.drop((app_name, user_id, session.id))
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
        num_recent_events = check_count(
            "num_recent_events", config.num_recent_events if config else None
        )
        # google-adk treats a falsy after_timestamp (0.0) as "no filter".
        after = check_seconds(
            "after_timestamp",
            config.after_timestamp if config and config.after_timestamp else None,
            finite=False,
        )
        core = await self._core()
        key = (app_name, user_id, session_id)
        found = await self._read_cached(core, key, num_recent_events, after)
        if found is None:
            found = await self._read_stored(core, key, num_recent_events, after)
        if found is None:
            return None
        stored, events = found
        return _build_session(
            app_name,
            user_id,
            session_id,
            stored.state,
            stored.last_update_time,
            stored.revision,
            events,
        )

    async def _read_cached(
        self,
        core: SessionService,
        key: _Key,
        num_recent_events: int | None,
        after: float | None,
    ) -> tuple[StoredSession, list[AdkEvent]] | None:
        """A read served by the cache: the session row and only the events past the cached
        revision (the first one tells whether the cache still matches storage); None when the
        session is not cached, or its cache entry no longer matches."""
        if self._cache is None or (entry := self._cache.get(key)) is None:
            return None
        app_name, user_id, session_id = key
        stored = await core._get_stored_session(
            app_name=app_name,
            user_id=user_id,
            session_id=session_id,
            after_revision=entry.revision - 1,
        )
        if stored is None:
            self._cache.drop(key)
            return None
        cached = self._cached_events(key, entry, stored)
        if cached is None:
            return None
        return stored, _select(cached, num_recent_events, after)

    async def _read_stored(
        self,
        core: SessionService,
        key: _Key,
        num_recent_events: int | None,
        after: float | None,
    ) -> tuple[StoredSession, list[AdkEvent]] | None:
        """A read from storage, validating every event; a whole session read fills the cache."""
        app_name, user_id, session_id = key
        stored = await core._get_stored_session(
            app_name=app_name,
            user_id=user_id,
            session_id=session_id,
            num_recent_events=num_recent_events,
            after=after,
        )
        if stored is None:
            return None
        events = _adk_events(stored, session_id)
        if self._cache is not None:
            full = num_recent_events is None and after is None
            self._cache.count(misses=int(full), loaded=len(events))
            if full and events:
                self._cache.put(
                    key,
                    _Entry(
                        create_time=stored.create_time,
                        revision=stored.revision,
                        events=tuple(events),
                        last_text=stored.events[-1],
                    ),
                )
        return stored, events

    def _cached_events(
        self, key: _Key, entry: _Entry, stored: StoredSession
    ) -> tuple[AdkEvent, ...] | None:
        """Extend a cache entry with the events read after it; ``None`` when it is outdated.

        ``stored`` holds the events from seq ``entry.revision`` on. The entry still describes
        storage when the session was created at the same time (a session deleted and created
        again under the same id has, in practice, another creation time), storage has not
        gone back before ``entry.revision``, and the event stored at that seq is, byte for
        byte, the one cached last.
        """
        assert self._cache is not None
        texts = stored.events
        if (
            stored.create_time != entry.create_time
            or stored.revision < entry.revision
            or len(texts) != stored.revision - entry.revision + 1
            or texts[0] != entry.last_text
        ):
            self._cache.drop(key)
            return None
        events = entry.events
        if len(texts) > 1:
            new = _adk_events(stored, key[2], start=1)
            self._cache.count(loaded=len(new))
            events = events + tuple(new)
            entry = attrs.evolve(
                entry, revision=stored.revision, events=events, last_text=texts[-1]
            )
        self._cache.count(hits=1)
        self._cache.put(key, entry)
        return events

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
        sessions, _ = await core._list_stored_sessions(
            _build_session, app_name=app_name, user_id=user_id
        )
        return AdkListSessionsResponse(sessions=sessions)

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
        if self._cache is not None:
            self._cache.drop((app_name, user_id, session_id))

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
        try:
            return await core.delete_sessions(
                app_name=app_name,
                user_id=user_id,
                updated_before=updated_before,
                batch_size=batch_size,
                progress=progress,
            )
        finally:
            # The cache does not know when its sessions were last updated: it lets go of every
            # one the call may have deleted (a later read would find out, but hold them till then).
            if self._cache is not None:
                self._cache.drop_matching(app_name, user_id)

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
        if self._cache is not None:
            key = (session.app_name, session.user_id, session.id)
            self._cache_append(key, target.revision - 1, target.events[-1])
        session.last_update_time = target.last_update_time
        compat.set_marker(session, _marker(target.revision))
        return compat.commit_event_to_session(self, session, event)

    def _cache_append(self, key: _Key, revision: int, stored: Event) -> None:
        """Extend the cache entry of a session after an append from ``revision`` committed.

        The cache gets the event as storage holds it, validated from the stored JSON (never
        the caller's object, which the caller may change), so a cached read returns what a
        read from storage would.
        """
        assert self._cache is not None
        entry = self._cache.get(key)
        if entry is None or entry.revision < revision:
            return  # nothing cached, or behind: the next get reads what it lacks
        if entry.revision > revision:
            self._cache.drop(key)  # storage was behind the cache: another incarnation
            return
        text = dumps(stored.to_dict())
        self._cache.put(
            key,
            attrs.evolve(
                entry,
                revision=revision + 1,
                events=(*entry.events, _validate_event(text)),
                last_text=text,
            ),
        )

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
