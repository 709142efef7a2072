"""The session service: every operation, and every transaction boundary."""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

import anyio

from . import _migrations
from . import _transactions as tx
from ._codec import StoredSession, build_page, events_from_texts, session_state, stored_events
from ._dialects import layout as _layout
from ._dialects.base import Dialect, read
from ._json import encode_state
from ._models import Event, ListSessionsResponse, Session
from ._state import (
    SCOPE_PREFIXES,
    prefixed_scopes,
    validate_state,
)
from ._tokens import START, decode_token, next_token
from ._tracing import SYSTEM_NAMES, traced
from ._validate import MAX_COUNT, check_count, check_name, check_seconds
from .errors import (
    InvalidArgumentError,
)

__all__ = ("SessionService",)

_T = TypeVar("_T")


def _core_session(
    app_name: str,
    user_id: str,
    session_id: str,
    state: dict[str, Any],
    last_update_time: float,
    revision: int,
) -> Session:
    """Build a listed core session (no events)."""
    return Session(
        id=session_id,
        app_name=app_name,
        user_id=user_id,
        state=state,
        last_update_time=last_update_time,
        revision=revision,
    )


# The keyset cursor before the first session: every update time is > -inf.

DEFAULT_BATCH_SIZE = 500
"""Sessions deleted per transaction by :meth:`SessionService.delete_sessions`."""


def _nothing(_: object) -> None:
    """An ``on_commit`` for writes that advance nothing in memory."""


class SessionService:
    """Durable sessions on one database. Create it with :func:`adk_sessions.connect`.

    Safe to share between any number of tasks: PostgreSQL work runs on a connection pool, SQLite
    writes queue on one connection. Also an async context manager that closes on exit.
    """

    def __init__(self, dialect: Dialect, *, trace_ids: bool = False) -> None:
        """Wrap an open dialect (use :func:`adk_sessions.connect` instead).

        Args:
            dialect: The open database.
            trace_ids: Put user and session ids on OpenTelemetry spans (they may be personal
                data; off by default: spans carry the app name only).

        Raises:
            InvalidArgumentError: ``trace_ids`` is not a bool.
        """
        if not isinstance(trace_ids, bool):
            raise InvalidArgumentError(f"trace_ids must be True or False, got {trace_ids!r}")
        self._dialect = dialect
        self._q = dialect.queries
        self._trace_ids = trace_ids
        self._span_attributes = {"db.system.name": SYSTEM_NAMES[dialect.name]}

    @property
    def dialect(self) -> str:
        """``"postgres"`` or ``"sqlite"``."""
        return self._dialect.name

    @property
    def round_trips(self) -> int:
        """Driver calls made so far (each statement, BEGIN and COMMIT count one)."""
        return self._dialect.round_trips

    async def close(self) -> None:
        """Close every connection. Idempotent."""
        await self._dialect.close()

    async def __aenter__(self) -> SessionService:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    @traced("migrate")
    async def migrate(self) -> list[int]:
        """Apply pending schema migrations (idempotent, safe to run from many processes at once).

        On PostgreSQL with the ``citus`` extension installed, migration 2 distributes the tables
        over the Citus cluster (sessions, events and user state by ``user_id``, co-located; app
        state by ``app_name``), unless the URL said ``distribute=false``.

        Returns:
            The versions applied by this call.

        Raises:
            SchemaError: When the schema is newer than this code.
        """
        applied = await _migrations.migrate(self._dialect)
        await _layout.refresh(self._dialect)
        return applied

    @traced("schema_version")
    async def schema_version(self) -> int:
        """Return the applied schema version (0 for an empty database)."""
        return await _migrations.schema_version(self._dialect)

    @traced("status")
    async def status(self) -> dict[str, Any]:
        """Return where the tables live, the schema versions (applied and known), row counts.

        Returns:
            ``{"schema", "schema_version", "code_version", "distributed", "distribution",
            "apps", "users", "sessions", "events"}``; counts are present only once the schema
            exists. ``schema`` is the PostgreSQL schema of the tables (SQLite: ``main``).
            ``distributed`` says whether Citus holds the tables; ``distribution`` is
            ``{"citus": version or None, "tables": {name: {"kind", "column",
            "colocation_id", "shards"}}}``.
        """
        version = await self.schema_version()
        layout = await _layout.read_layout(self._dialect)
        result: dict[str, Any] = {
            "schema": self._dialect.schema,
            "schema_version": version,
            "code_version": len(self._dialect.migrations),
            "distributed": layout.distributed,
            "distribution": layout.to_dict(),
        }
        if version:
            async with self._dialect.reader() as conn:
                row = await conn.one(self._q.count_rows, {})
            assert row is not None
            result.update({key: int(row[key]) for key in ("apps", "users", "sessions", "events")})
        return result

    @traced("ping")
    async def ping(self) -> None:
        """Run a trivial query, to tell whether the database answers (readiness probes).

        Raises:
            StorageError: The database cannot be reached or its schema is missing.
        """
        async with self._dialect.reader() as conn:
            await conn.value(self._q.ping, {})

    @traced("create_session")
    async def create_session(
        self,
        *,
        app_name: str,
        user_id: str,
        state: Mapping[str, Any] | None = None,
        session_id: str | None = None,
        events: Sequence[Event] | None = None,
        last_update_time: float | None = None,
    ) -> Session:
        """Create a session, applying ``state`` to the three scopes.

        ``temp:`` keys of ``state`` are dropped. ``events`` (an extension used by the REST create
        endpoint and importers) are appended in the same transaction, exactly as
        :meth:`append_event` would, so a failing event leaves no session behind.

        Args:
            app_name: The app (non-empty).
            user_id: The user (non-empty).
            state: Initial state; ``app:``/``user:`` keys update those scopes.
            session_id: The id; generated (uuid4) when None or empty, else stored as given.
            events: Events to append after creation (partial ones are skipped).
            last_update_time: The creation time to record (importers keep the source's);
                default now. Events later than it move it on, as appends do.

        Returns:
            The session with merged state (current app/user scopes included) and the events.

        Raises:
            InvalidArgumentError: Empty names, non-JSON state values (naming the key), bad events.
            SessionExistsError: The id exists for (app, user), also when two creates race.
        """
        new = tx.prepare_session(
            app_name=app_name,
            user_id=user_id,
            state=state,
            session_id=session_id,
            events=events,
            last_update_time=last_update_time,
        )
        distributed = self._dialect.distributed
        if new.simple and not distributed:  # Citus reads each scope on its own shard
            row = await self._dialect.write_one(self._q.create_session, new.params)
            if row is None:
                raise new.exists()
            revision, update_time = 0, new.params["update_time"]
            app_state, user_state = row["app_state"], row["user_state"]
        else:
            revision, update_time, (app_state, user_state) = await self._dialect.write(
                lambda: tx.create(self._q, new, distributed=distributed), _nothing
            )
        decode = self._dialect.decode_json
        return new.session(revision, update_time, decode(app_state) or {}, decode(user_state) or {})

    @traced("append_event")
    async def append_event(self, session: Session, event: Event) -> Event:
        """Append an event and apply its state delta, atomically.

        One transaction locks the session row, checks ``session.revision`` against the stored
        one, inserts the event (``temp:`` keys removed from its delta), merges the app, user and
        session deltas server-side and bumps the revision. Only after ``COMMIT`` is ``session``
        advanced: its state gets the whole delta (temp keys included), its events the stored
        event, its revision and ``last_update_time`` move on. On any failure ``session`` is
        unchanged and nothing is stored. Partial events are returned untouched and not stored.

        Args:
            session: The caller's session, as returned by create/get or advanced by appends.
            event: The event.

        Returns:
            The stored event (the argument itself when it had no temp keys).

        Raises:
            StaleSessionError: The stored revision differs: reload the session and retry.
            SessionNotFoundError: The session does not exist (or was deleted).
            InvalidArgumentError: Non-JSON state values, a duplicate event id, a bad event.
            StorageUnavailableError: The database could not be reached or gave up; retry the
                same call (see below).

        Retrying is safe: when the stored revision is ``session.revision + 1`` and the event
        stored there has ``event.id`` and equals ``event`` (its stored form), the append is
        taken as done (its reply was lost): ``session`` is advanced as by a successful append
        and nothing new is stored. The same id with other content raises
        ``InvalidArgumentError``.

        Cancellation is all or nothing, whatever cancels the caller (anyio scopes,
        ``asyncio.wait_for``, ``asyncio.timeout``, ``task.cancel()``): the event is stored and
        ``session`` advanced, or neither, and the cancellation is raised after the write has
        settled.
        """
        if event.partial:
            return event
        if not isinstance(session, Session):
            raise InvalidArgumentError(
                f"session must be an adk_sessions.Session, not {type(session).__name__}"
            )
        item = tx.prepare_event(
            event, app_name=session.app_name, user_id=session.user_id, session_id=session.id
        )

        def advance(moved: tuple[int, float]) -> None:
            session.state.update(event.actions.state_delta)
            session.events.append(item.stored)
            session.revision, session.last_update_time = moved

        distributed = self._dialect.distributed
        await self._dialect.write(
            lambda: tx.append(
                self._q, self._dialect.decode_json, session, item, distributed=distributed
            ),
            advance,
        )
        return item.stored

    @traced("get_session")
    async def get_session(
        self,
        *,
        app_name: str,
        user_id: str,
        session_id: str,
        num_recent_events: int | None = None,
        after: float | None = None,
    ) -> Session | None:
        """Read a session with merged state and (some of) its events, in append order.

        Args:
            app_name: The app.
            user_id: The user.
            session_id: The session id.
            num_recent_events: Only the last N events (0: none, None: all). Costs O(N).
            after: Only events with ``timestamp >= after``; with N, the last N of those.

        Returns:
            The session, or None when it does not exist (or belongs to another user).

        Raises:
            InvalidArgumentError: Empty names, a negative count, a non-numeric ``after``.
        """
        stored = await self._get_stored_session(
            app_name=app_name,
            user_id=user_id,
            session_id=session_id,
            num_recent_events=num_recent_events,
            after=after,
        )
        if stored is None:
            return None
        return Session(
            id=session_id,
            app_name=app_name,
            user_id=user_id,
            state=stored.state,
            events=events_from_texts(stored.events, stored.seqs, session_id=session_id),
            last_update_time=stored.last_update_time,
            revision=stored.revision,
        )

    async def _get_stored_session(
        self,
        *,
        app_name: str,
        user_id: str,
        session_id: str,
        num_recent_events: int | None = None,
        after: float | None = None,
        after_revision: int = 0,
    ) -> StoredSession | None:
        """Read a session with its events as stored JSON text (internal).

        The read path of :meth:`get_session`, for integrations that build their own event
        objects straight from the stored JSON (:mod:`adk_sessions.adk`) and for caches that
        hold the events up to some revision. Two round trips, like :meth:`get_session`.

        Args:
            app_name: The app.
            user_id: The user.
            session_id: The session id.
            num_recent_events: As in :meth:`get_session`.
            after: As in :meth:`get_session`.
            after_revision: Only events stored after this revision (``seq > after_revision``);
                costs O(revision - after_revision) rows.

        Returns:
            The session, or None when it does not exist (or belongs to another user).

        Raises:
            InvalidArgumentError: Empty names, a negative count or revision, a non-numeric
                ``after``.
        """
        check_name("app_name", app_name)
        check_name("user_id", user_id)
        check_name("session_id", session_id)
        limit = check_count("num_recent_events", num_recent_events)
        after = check_seconds("after", after, finite=False)
        first_seq = (check_count("after_revision", after_revision) or 0) + 1
        key = {"app_name": app_name, "user_id": user_id, "session_id": session_id}
        body = tx.read_session(
            self._q,
            key,
            first_seq=first_seq,
            after=after,
            limit=limit,
            distributed=self._dialect.distributed,
        )
        async with self._dialect.reader() as conn:
            found = await read(conn, body)
        if found is None:
            return None
        row, app_state, event_rows = found
        texts, seqs = stored_events(event_rows)
        decode = self._dialect.decode_json
        state = session_state(
            row,
            scopes=prefixed_scopes(decode(app_state) or {}, decode(row["user_state"]) or {}),
            decode=decode,
            session_id=session_id,
        )
        return StoredSession(
            state=state,
            last_update_time=row["update_time"],
            revision=row["revision"],
            create_time=row["create_time"],
            events=texts,
            seqs=seqs,
        )

    @traced("list_sessions")
    async def list_sessions(
        self,
        *,
        app_name: str,
        user_id: str | None = None,
        page_size: int | None = None,
        page_token: str | None = None,
    ) -> ListSessionsResponse:
        """List sessions (merged state, no events), oldest update first, ties by (user_id, id).

        Args:
            app_name: The app.
            user_id: Only this user's sessions; None for every user of the app.
            page_size: At most this many (None: all). 0 gives an empty page with no token.
            page_token: ``next_page_token`` of the previous page of the same query.

        Returns:
            The page and, when more sessions follow, the token for the next page.

        Raises:
            InvalidArgumentError: Empty names, a negative ``page_size``, a foreign token.
        """
        sessions, token = await self._list_stored_sessions(
            _core_session,
            app_name=app_name,
            user_id=user_id,
            page_size=page_size,
            page_token=page_token,
        )
        return ListSessionsResponse(sessions=sessions, next_page_token=token)

    async def _list_stored_sessions(
        self,
        build: Callable[[str, str, str, dict[str, Any], float, int], _T],
        *,
        app_name: str,
        user_id: str | None = None,
        page_size: int | None = None,
        page_token: str | None = None,
    ) -> tuple[list[_T], str | None]:
        """List sessions as :meth:`list_sessions` does, built by ``build`` (internal).

        The read path of :meth:`list_sessions`, for integrations that build their own session
        objects (:mod:`adk_sessions.adk`) without an intermediate :class:`Session` each.

        Args:
            build: Called as ``build(app_name, user_id, session_id, state, last_update_time,
                revision)`` for each session, in list order; ``state`` is merged and the
                caller's to keep.
            app_name: As in :meth:`list_sessions`.
            user_id: As in :meth:`list_sessions`.
            page_size: As in :meth:`list_sessions`.
            page_token: As in :meth:`list_sessions`.

        Returns:
            The built sessions and the next page's token (``None`` on the last page).

        Raises:
            InvalidArgumentError: As :meth:`list_sessions`.
        """
        check_name("app_name", app_name)
        if user_id is not None:
            check_name("user_id", user_id)
        size = check_count("page_size", page_size)
        if page_token is not None and not isinstance(page_token, str):
            raise InvalidArgumentError(f"page_token must be a string, got {page_token!r}")
        cursor = (
            decode_token(page_token, app_name=app_name, user_filter=user_id)
            if page_token
            else START
        )
        if size == 0:
            return [], None
        params = cursor.page_params(
            app_name,
            # One row past the page tells whether another follows (unbounded past 2**63 - 2).
            limit=None if size is None or size >= MAX_COUNT else size + 1,
        )
        body = tx.list_page(self._q, params, user_id=user_id, distributed=self._dialect.distributed)
        async with self._dialect.reader() as conn:
            rows, app_state, user_state = await read(conn, body)
        more = size is not None and len(rows) > size
        rows = rows[:size] if more else rows
        sessions = build_page(
            rows,
            build,
            app_name=app_name,
            app_state=app_state,
            user_state=user_state,
            one_user=user_id is not None,
            decode=self._dialect.decode_json,
        )
        token = next_token(rows[-1], app_name=app_name, user_filter=user_id) if more else None
        return sessions, token

    @traced("delete_session")
    async def delete_session(self, *, app_name: str, user_id: str, session_id: str) -> None:
        """Delete a session and its events; app and user state are kept. Missing: a no-op.

        Args:
            app_name: The app.
            user_id: The user.
            session_id: The session id.

        Raises:
            InvalidArgumentError: Empty names.
        """
        check_name("app_name", app_name)
        check_name("user_id", user_id)
        check_name("session_id", session_id)
        key = {"app_name": app_name, "user_id": user_id, "session_id": session_id}
        await self._dialect.write_one(self._q.delete_session, key)

    @traced("delete_sessions")
    async def delete_sessions(
        self,
        *,
        app_name: str,
        user_id: str | None = None,
        updated_before: float,
        batch_size: int = DEFAULT_BATCH_SIZE,
        progress: Callable[[int], None] | None = None,
    ) -> int:
        """Delete the sessions (and their events) last updated before a time: retention.

        Works in batches of short transactions, oldest sessions first: each batch finds the
        next ``batch_size`` sessions of the app whose ``last_update_time < updated_before`` and
        deletes them, checking the time again in the ``DELETE`` itself, so a session appended
        to after it was found is deleted only if it still qualifies. No lock is held from one
        batch to the next, so appends to other sessions go on while a prune runs, and an
        append to a session being pruned waits for one batch at most (on SQLite the prune
        rests between batches, so that writers of other processes, which poll for the lock,
        get their turn). App and user state are kept. Cancelled or failed half-way, the
        batches committed so far stay deleted; running it again finishes the job.

        Args:
            app_name: The app.
            user_id: Only this user's sessions; None for every user of the app.
            updated_before: Epoch seconds; sessions last updated exactly then are kept.
            batch_size: Sessions per transaction (at least 1).
            progress: Called after each committed batch with the number it deleted.

        Returns:
            How many sessions were deleted.

        Raises:
            InvalidArgumentError: Empty or malformed names, a missing or non-numeric
                ``updated_before``, a ``batch_size`` that is not a positive integer.
        """
        check_name("app_name", app_name)
        if user_id is not None:
            check_name("user_id", user_id)
        before = check_seconds("updated_before", updated_before, finite=False)
        if before is None:
            raise InvalidArgumentError("updated_before must be epoch seconds, got None")
        if type(batch_size) is not int or not 1 <= batch_size <= MAX_COUNT:
            raise InvalidArgumentError(
                f"batch_size must be an integer from 1 to 2**63-1, got {batch_size!r}"
            )
        scope = {"app_name": app_name, "user_id": user_id, "before": before}
        total = batches = 0
        first: tuple[float, str, str] | None = (-math.inf, "", "")
        while first is not None:
            if batches:
                await anyio.sleep(self._dialect.batch_pause)
            deleted, first = await self._dialect.write(
                functools.partial(tx.delete_expired_batch, self._q, scope, first, batch_size),
                _nothing,
            )
            total, batches = total + deleted, batches + 1
            if progress is not None:
                progress(deleted)
        return total

    @traced("count_sessions")
    async def count_sessions(
        self, *, app_name: str, user_id: str | None = None, updated_before: float | None = None
    ) -> int:
        """Count an app's sessions (one user's), optionally only those updated before a time.

        With ``updated_before`` this is how many :meth:`delete_sessions` would delete now (a
        dry run); it only reads.

        Args:
            app_name: The app.
            user_id: Only this user's sessions; None for every user of the app.
            updated_before: Epoch seconds; None counts every session.

        Returns:
            The number of sessions.

        Raises:
            InvalidArgumentError: Empty or malformed names, a non-numeric ``updated_before``.
        """
        check_name("app_name", app_name)
        if user_id is not None:
            check_name("user_id", user_id)
        before = check_seconds("updated_before", updated_before, finite=False)
        params = {
            "app_name": app_name,
            "user_id": user_id,
            "before": math.inf if before is None else before,
        }
        async with self._dialect.reader() as conn:
            return int(await conn.value(self._q.count_expired_sessions, params))

    @traced("list_apps")
    async def list_apps(self) -> list[str]:
        """Return the names of the apps that have at least one session, in byte order.

        Returns:
            The app names.
        """
        query = (
            self._q.list_apps_distributed  # Citus cannot run the recursive skip scan
            if self._dialect.distributed
            else self._q.list_apps_with_sessions
        )
        async with self._dialect.reader() as conn:
            rows = await conn.rows(query, {})
        return [row["app_name"] for row in rows]

    @traced("update_app_state")
    async def update_app_state(self, *, app_name: str, delta: Mapping[str, Any]) -> dict[str, Any]:
        """Merge a delta into the app scope, as an ``app:`` state delta of an event would.

        For importers and admin tools; agents change state through events.

        Args:
            app_name: The app.
            delta: Keys without the ``app:`` prefix; a shallow update (``None`` is stored).

        Returns:
            The app scope after the update, keys without prefix.

        Raises:
            InvalidArgumentError: An empty name, a key with a scope prefix, or a value that is
                not JSON; nothing is written.
        """
        check_name("app_name", app_name)
        return await self._update_scope(app_name, None, delta)

    @traced("update_user_state")
    async def update_user_state(
        self, *, app_name: str, user_id: str, delta: Mapping[str, Any]
    ) -> dict[str, Any]:
        """Merge a delta into one user's scope, as a ``user:`` state delta of an event would.

        For importers and admin tools; agents change state through events.

        Args:
            app_name: The app.
            user_id: The user.
            delta: Keys without the ``user:`` prefix; a shallow update (``None`` is stored).

        Returns:
            The user scope after the update, keys without prefix.

        Raises:
            InvalidArgumentError: An empty name, a key with a scope prefix, or a value that is
                not JSON; nothing is written.
        """
        check_name("app_name", app_name)
        check_name("user_id", user_id)
        return await self._update_scope(app_name, user_id, delta)

    async def _update_scope(
        self, app_name: str, user_id: str | None, delta: Mapping[str, Any]
    ) -> dict[str, Any]:
        exact = validate_state(delta)
        prefixed = [key for key in delta if key.startswith(SCOPE_PREFIXES)]
        if prefixed:
            raise InvalidArgumentError(
                f"scope delta keys are given without a prefix, not {sorted(prefixed)}"
            )
        params = {
            "app_name": app_name,
            "user_id": user_id or "",
            "delta": encode_state(delta, positional_floats=exact),
            "update_time": time.time(),
        }
        distributed = self._dialect.distributed
        stored = await self._dialect.write(
            lambda: tx.update_scope(self._q, params, user_id=user_id, distributed=distributed),
            _nothing,
        )
        return dict(self._dialect.decode_json(stored) or {})

    @traced("get_user_state")
    async def get_user_state(self, *, app_name: str, user_id: str) -> dict[str, Any]:
        """Return the user scope, keys without the ``user:`` prefix (``{}`` when none).

        Args:
            app_name: The app.
            user_id: The user.

        Raises:
            InvalidArgumentError: Empty names.
        """
        check_name("app_name", app_name)
        check_name("user_id", user_id)
        async with self._dialect.reader() as conn:
            _, user_state = await read(
                conn,
                tx.scopes(
                    self._q,
                    app_name=app_name,
                    user_id=user_id,
                    distributed=self._dialect.distributed,
                    app=False,
                ),
            )
        return dict(self._dialect.decode_json(user_state) or {})

    @traced("get_app_state")
    async def get_app_state(self, *, app_name: str) -> dict[str, Any]:
        """Return the app scope, keys without the ``app:`` prefix (``{}`` when none).

        Args:
            app_name: The app.

        Raises:
            InvalidArgumentError: An empty name.
        """
        check_name("app_name", app_name)
        async with self._dialect.reader() as conn:
            app_state, _ = await read(
                conn,
                tx.scopes(
                    self._q,
                    app_name=app_name,
                    user_id=None,
                    distributed=self._dialect.distributed,
                ),
            )
        return dict(self._dialect.decode_json(app_state) or {})
