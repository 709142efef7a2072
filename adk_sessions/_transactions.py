"""What the service's transactions (and its reads of several queries) do, one body each.

A body is a generator that yields ``(query, params)`` and receives each result (see
``_dialects.base.Body``): it says which queries run, in which order, and what their results
mean, and leaves how they reach the database to the dialect. Pure: no I/O, no driver.

Plain PostgreSQL tables get one statement where they can (data-modifying CTEs); Citus tables
(``distributed``) get one statement per table, each routed to a single shard, since Citus plans
a statement touching tables of different shards in steps across nodes.

The arguments were checked and encoded before (:func:`prepare_event`, :func:`prepare_session`),
so a body fails only on what storage says: a stale or missing session, an existing id.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from ._dialects.base import Body, ConstraintError, Row
from ._json import dumps, encode_state, loads
from ._models import Event, Session
from ._queries import Queries
from ._state import merge_state, split_delta, validate_state, without_temp
from ._validate import check_name, check_seconds, check_text
from .errors import (
    InvalidArgumentError,
    SessionExistsError,
    SessionNotFoundError,
    StaleSessionError,
)

__all__ = (
    "NewSession",
    "PreparedEvent",
    "append",
    "create",
    "delete_expired_batch",
    "list_page",
    "prepare_event",
    "prepare_session",
    "read_session",
    "scopes",
    "update_scope",
)


@attrs.frozen(kw_only=True)
class PreparedEvent:
    """An event checked and encoded before any transaction starts.

    Attributes:
        stored: The event as stored (``temp:`` keys removed from its delta).
        params: The query parameters of its append.
    """

    stored: Event
    params: dict[str, Any]


def prepare_event(event: Event, *, app_name: str, user_id: str, session_id: str) -> PreparedEvent:
    """Validate an event and build its stored form and query parameters.

    Raises:
        InvalidArgumentError: Not an event, a malformed id or timestamp, state that is not JSON,
            content that cannot be stored.
    """
    if not isinstance(event, Event):
        raise InvalidArgumentError(
            f"event must be an adk_sessions.Event, not {type(event).__name__}"
        )
    check_name("event.id", event.id)
    timestamp = check_seconds(f"event {event.id!r}: timestamp", event.timestamp, finite=True)
    delta = event.actions.state_delta
    exact = validate_state(delta)
    stored_delta = without_temp(delta)
    stored = event
    if len(stored_delta) != len(delta):
        stored = attrs.evolve(event, actions=attrs.evolve(event.actions, state_delta=stored_delta))
    try:
        encoded = dumps(stored.to_dict())
    except (TypeError, ValueError, RecursionError) as exc:
        raise InvalidArgumentError(f"event {event.id!r} is not JSON-serialisable: {exc}") from exc
    check_text(f"event {event.id!r}", encoded)
    scoped = split_delta(stored_delta)
    params = {
        "app_name": app_name,
        "user_id": user_id,
        "session_id": session_id,
        "event_id": event.id,
        "timestamp": timestamp,
        "event": encoded,
        "app_delta": encode_state(scoped.app, positional_floats=exact) if scoped.app else None,
        "user_delta": encode_state(scoped.user, positional_floats=exact) if scoped.user else None,
        "session_delta": encode_state(scoped.session, positional_floats=exact),
    }
    return PreparedEvent(stored=stored, params=params)


@attrs.frozen(kw_only=True)
class NewSession:
    """A session to create, checked and encoded.

    Attributes:
        key: ``app_name``, ``user_id`` and ``session_id``.
        state: The session scope of the initial state (no prefixed keys).
        params: The ``insert_session`` parameters.
        app_delta: The app scope's delta, encoded (None: none).
        user_delta: The user scope's delta, encoded (None: none).
        events: The events to append at once.
    """

    key: dict[str, str]
    state: dict[str, Any]
    params: dict[str, Any]
    app_delta: str | None
    user_delta: str | None
    events: list[PreparedEvent]

    @property
    def simple(self) -> bool:
        """Nothing to write but the session row: no scope keys, no events."""
        return self.app_delta is None and self.user_delta is None and not self.events

    def exists(self) -> SessionExistsError:
        """The error for an id that exists for (app, user)."""
        key = self.key
        return SessionExistsError(
            f"session {key['session_id']!r} already exists for app {key['app_name']!r}, "
            f"user {key['user_id']!r}"
        )

    def session(
        self,
        revision: int,
        update_time: float,
        app_state: Mapping[str, Any],
        user_state: Mapping[str, Any],
    ) -> Session:
        """The created session, its scopes as stored after the creating transaction."""
        merged = merge_state(app_state, user_state, self.state)
        for item in self.events:
            merged.update(item.stored.actions.state_delta)
        return Session(
            id=self.key["session_id"],
            app_name=self.key["app_name"],
            user_id=self.key["user_id"],
            state=merged,
            events=[item.stored for item in self.events],
            last_update_time=update_time,
            revision=revision,
        )


def prepare_session(
    *,
    app_name: str,
    user_id: str,
    state: Mapping[str, Any] | None,
    session_id: str | None,
    events: Sequence[Event] | None,
    last_update_time: float | None,
) -> NewSession:
    """Check and encode what ``create_session`` was given (see there).

    Raises:
        InvalidArgumentError: Empty or malformed names, state that is not JSON, bad events.
    """
    check_name("app_name", app_name)
    check_name("user_id", user_id)
    if session_id is None or session_id == "":
        session_id = str(uuid.uuid4())
    check_name("session_id", session_id)
    state = dict(state) if state is not None else {}
    exact = validate_state(state)
    scoped = split_delta(state)
    given_time = check_seconds("last_update_time", last_update_time, finite=True)
    key = {"app_name": app_name, "user_id": user_id, "session_id": session_id}
    return NewSession(
        key=key,
        state=scoped.session,
        params={
            **key,
            "state": encode_state(scoped.session, positional_floats=exact),
            "update_time": time.time() if given_time is None else given_time,
        },
        app_delta=encode_state(scoped.app, positional_floats=exact) if scoped.app else None,
        user_delta=encode_state(scoped.user, positional_floats=exact) if scoped.user else None,
        events=[
            prepare_event(event, app_name=app_name, user_id=user_id, session_id=session_id)
            for event in (events or ())
            if not event.partial
        ],
    )


def create(
    q: Queries, new: NewSession, *, distributed: bool
) -> Body[tuple[int, float, tuple[Any, Any]]]:
    """Insert the session, merge its app/user deltas, append its events; read the scopes.

    Returns:
        The revision and update time after the events, and the stored app and user scopes.

    Raises:
        SessionExistsError: The id exists for (app, user).
    """
    created = yield q.insert_session, new.params
    if created is None:
        raise new.exists()
    update_time: float = new.params["update_time"]
    yield from merge_scopes(
        q, new.key, app_delta=new.app_delta, user_delta=new.user_delta, update_time=update_time
    )
    revision = 0
    for item in new.events:
        revision, update_time = yield from write_event(
            q, item, revision=revision, update_time=update_time, distributed=distributed
        )
    stored = yield from scopes(
        q, app_name=new.key["app_name"], user_id=new.key["user_id"], distributed=distributed
    )
    return revision, update_time, stored


def merge_scopes(
    q: Queries,
    key: Mapping[str, Any],
    *,
    app_delta: str | None,
    user_delta: str | None,
    update_time: float,
) -> Body[None]:
    """Merge encoded deltas into the app and the user scope (app first, in every transaction,
    so that no two transactions wait on each other)."""
    if app_delta is not None:
        yield (
            q.merge_app_state,
            {"app_name": key["app_name"], "delta": app_delta, "update_time": update_time},
        )
    if user_delta is not None:
        yield (
            q.merge_user_state,
            {
                "app_name": key["app_name"],
                "user_id": key["user_id"],
                "delta": user_delta,
                "update_time": update_time,
            },
        )


def write_event(
    q: Queries, item: PreparedEvent, *, revision: int, update_time: float, distributed: bool
) -> Body[tuple[int, float]]:
    """Insert one event and apply its deltas; the transaction holds the session lock.

    Returns:
        The session's new revision and update time.

    Raises:
        InvalidArgumentError: The event id exists in the session.
    """
    seq = revision + 1
    new_time = max(update_time, item.params["timestamp"])
    params = {**item.params, "seq": seq, "update_time": new_time}
    try:
        if not distributed:
            yield q.append_event, params  # every write in one statement
        else:
            yield q.insert_event, params
            yield from merge_scopes(
                q,
                params,
                app_delta=params["app_delta"],
                user_delta=params["user_delta"],
                update_time=new_time,
            )
            yield q.advance_session, params
    except ConstraintError as exc:
        raise InvalidArgumentError(
            f"event id {item.stored.id!r} already exists in session {params['session_id']!r}"
        ) from exc
    return seq, new_time


def append(
    q: Queries, decode: Any, session: Session, item: PreparedEvent, *, distributed: bool
) -> Body[tuple[int, float]]:
    """The append transaction: lock, check the revision (or recognise a retry), write.

    Returns:
        The session's revision and update time after the append.

    Raises:
        SessionNotFoundError: No such session.
        StaleSessionError: The stored revision is not the caller's.
        InvalidArgumentError: The event id exists (with other content, on a retry).
    """
    key = {"app_name": session.app_name, "user_id": session.user_id, "session_id": session.id}
    row = yield q.lock_session, key
    if row is None:
        raise SessionNotFoundError(
            f"session {session.id!r} of app {session.app_name!r}, user "
            f"{session.user_id!r} does not exist"
        )
    revision, update_time = row["revision"], row["update_time"]
    if revision == session.revision:
        return (
            yield from write_event(
                q, item, revision=revision, update_time=update_time, distributed=distributed
            )
        )
    if revision == session.revision + 1:
        # The caller may be retrying an append whose reply it never got (a connection lost
        # after COMMIT, a timeout): the same event stored last means the append happened.
        last = yield q.get_event_at, {**key, "seq": revision}
        if last is not None and last["id"] == item.stored.id:
            if decode(last["event"]) != loads(item.params["event"]):
                raise InvalidArgumentError(
                    f"event id {item.stored.id!r} already exists in session {session.id!r} "
                    "with other content"
                )
            return revision, update_time
    raise StaleSessionError(
        f"session {session.id!r} is at revision {revision} in storage but "
        f"{session.revision} in hand; reload it with get_session and retry"
    )


def scopes(
    q: Queries, *, app_name: str, user_id: str | None, distributed: bool, app: bool = True
) -> Body[tuple[Any, Any]]:
    """Read the app scope (when ``app``) and one user's scope (when ``user_id``), as stored.

    One statement on plain tables; on Citus tables one per scope, each on its own shard.
    """
    if not distributed:
        row = yield q.get_scope_states, {"app_name": app_name, "user_id": user_id or ""}
        return row["app_state"], row["user_state"]
    app_state = (yield q.get_app_scope, {"app_name": app_name}) if app else None
    user_state = None
    if user_id is not None:
        user_state = yield q.get_user_scope, {"app_name": app_name, "user_id": user_id}
    return app_state, user_state


def update_scope(
    q: Queries, params: Mapping[str, Any], *, user_id: str | None, distributed: bool
) -> Body[Any]:
    """Merge a delta into the app scope (``user_id`` None) or a user's; read it back."""
    yield (q.merge_app_state if user_id is None else q.merge_user_state), params
    app_state, user_state = yield from scopes(
        q,
        app_name=params["app_name"],
        user_id=user_id,
        distributed=distributed,
        app=user_id is None,
    )
    return app_state if user_id is None else user_state


def read_session(
    q: Queries,
    key: Mapping[str, str],
    *,
    first_seq: int,
    after: float | None,
    limit: int | None,
    distributed: bool,
) -> Body[tuple[Row, Any, list[Row]] | None]:
    """Read a session row, its app scope and its events from ``first_seq`` on (newest first).

    Returns:
        The session row (with its user scope), the app scope and the event rows; None when the
        session does not exist.
    """
    if not distributed:
        row = yield q.get_session, key
        if row is None:
            return None
        app_state = row["app_state"]
    else:  # the session with its user scope on one shard, the app scope on another
        row = yield q.get_session_with_user, key
        if row is None:
            return None
        app_state = yield q.get_app_scope, {"app_name": key["app_name"]}
    events: list[Row] = []
    if limit != 0 and row["revision"] >= first_seq:
        events = yield (
            q.get_events,
            {
                **key,
                "min_seq": first_seq,
                "max_seq": row["revision"],
                "after": after,
                "limit": limit,
            },
        )
    return row, app_state, events


def list_page(
    q: Queries, params: Mapping[str, Any], *, user_id: str | None, distributed: bool
) -> Body[tuple[list[Row], Any, Any]]:
    """Read a page of sessions (one row past it, when ``params`` asks) and their scopes.

    Returns:
        The rows, the stored app scope, and the stored user scope (when ``user_id``; a list of
        every user carries each row's user scope in the row).
    """
    if user_id is None:
        rows = yield q.list_sessions, params
    else:
        rows = yield q.list_user_sessions, {**params, "user_id": user_id}
    app_state, user_state = yield from scopes(
        q, app_name=params["app_name"], user_id=user_id, distributed=distributed
    )
    return rows, app_state, user_state


def delete_expired_batch(
    q: Queries, scope: Mapping[str, Any], first: tuple[float, str, str], batch_size: int
) -> Body[tuple[int, tuple[float, str, str] | None]]:
    """Delete the next batch of expired sessions, from the keyset position ``first`` on.

    Returns:
        How many were deleted, and where the next batch starts (None: none left).
    """
    start = {"from_time": first[0], "from_user": first[1], "from_id": first[2]}
    bound = yield q.find_expired_bound, {**scope, **start, "batch_size": batch_size}
    # No session past the batch: it ends where the expired sessions end.
    end = (scope["before"], "", "") if bound is None else (bound[0], bound[1], bound[2])
    deleted = yield (
        q.delete_expired_sessions,
        {**scope, **start, "to_time": end[0], "to_user": end[1], "to_id": end[2]},
    )
    return len(deleted), (None if bound is None else end)
