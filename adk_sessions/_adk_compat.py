"""Every difference between the google-adk releases the adapter supports, in one place.

Supported: google-adk 1.28.0 up to, not including, 3.0. 1.28.0 is the first release whose
``Session`` has the private ``_storage_update_marker`` slot that carries our revision (older
releases would judge every append by timestamps) and whose ``BaseSessionService`` has all the
hooks below; ``google.adk.errors.session_not_found_error`` exists since 1.26.0.

What differs between supported releases, and how it is bridged here:

- ``google.adk.errors.StaleSessionError`` exists since 2.7.0. Before, google-adk's
  ``DatabaseSessionService`` raised a plain ``ValueError`` with the same message for a stale
  session, so :data:`StaleSessionError` is ``ValueError`` there and callers' ``except`` clauses
  keep working on every release.
- ``BaseSessionService._commit_event_to_session`` exists since 2.10.0; it is what every release's
  ``append_event`` does after trimming (``_update_session_state``, then ``events.append``), so
  :func:`commit_event_to_session` does that on every release.
- google-adk's private hooks (:data:`HOOKS`) are called where they exist. Should a future release
  remove one, the equivalent below is used instead (the same documented semantics), and
  :func:`missing_hooks` names it, which the test suite asserts is empty, so CI fails loudly. Without
  ``Session._storage_update_marker`` no revision rides on sessions and the adapter judges every
  append by google-adk's marker-less rule.

``adk_sessions.adk`` imports google-adk only through this module; nothing else branches on the
google-adk release.
"""

from __future__ import annotations

import enum
import importlib
import importlib.metadata
import io
import pickle
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Final, cast

import pydantic
from google.adk.errors.already_exists_error import AlreadyExistsError as AlreadyExistsError
from google.adk.errors.session_not_found_error import (
    SessionNotFoundError as SessionNotFoundError,
)
from google.adk.events import Event as Event
from google.adk.events import EventActions
from google.adk.sessions import BaseSessionService as BaseSessionService
from google.adk.sessions import Session as Session
from google.adk.sessions.base_session_service import GetSessionConfig as GetSessionConfig
from google.adk.sessions.base_session_service import (
    ListSessionsResponse as ListSessionsResponse,
)
from google.adk.sessions.state import State

if TYPE_CHECKING:
    from google.adk.cli.service_registry import ServiceRegistry as ServiceRegistry

__all__ = (
    "ADK_VERSION",
    "HOOKS",
    "STALE_SESSION_MESSAGE",
    "AlreadyExistsError",
    "BaseSessionService",
    "Event",
    "GetSessionConfig",
    "ListSessionsResponse",
    "Session",
    "SessionNotFoundError",
    "StaleSessionError",
    "apply_temp_state",
    "commit_event_to_session",
    "get_marker",
    "legacy_event",
    "missing_hooks",
    "private_attributes",
    "service_registry",
    "set_marker",
    "trim_temp_delta_state",
)

ADK_VERSION: Final[str] = importlib.metadata.version("google-adk")
"""The installed google-adk release."""


def _stale_session_error() -> type[ValueError]:
    errors = importlib.import_module("google.adk.errors")
    found = getattr(errors, "StaleSessionError", None)  # google-adk 2.7.0 and later
    return cast("type[ValueError]", found) if found is not None else ValueError


StaleSessionError: Final[type[ValueError]] = _stale_session_error()
"""What google-adk's ``DatabaseSessionService`` raises for a stale session on this release:
``google.adk.errors.StaleSessionError`` (a ``ValueError``) since 2.7.0, ``ValueError`` before."""

STALE_SESSION_MESSAGE: Final[str] = (
    "The session has been modified in storage since it was loaded. "
    "Please reload the session before appending more events."
)
"""The message google-adk's ``DatabaseSessionService`` gives a stale session (1.28.0 onwards)."""

_MARKER: Final = "_storage_update_marker"

HOOKS: Final[tuple[tuple[type[Any], str], ...]] = (
    (BaseSessionService, "_apply_temp_state"),
    (BaseSessionService, "_trim_temp_delta_state"),
    (BaseSessionService, "_update_session_state"),
    (Session, _MARKER),
)
"""google-adk's private names the adapter relies on (present in every supported release)."""


def _has(owner: type[Any], name: str) -> bool:
    if name.startswith("_") and hasattr(owner, "__private_attributes__"):
        private: dict[str, Any] = owner.__private_attributes__
        if name in private:
            return True
    return callable(getattr(owner, name, None))


def missing_hooks() -> list[str]:
    """Name the private google-adk hooks the adapter uses that the installed release lacks.

    The adapter does not crash without them (it uses the equivalents in this module, and the
    marker-less stale check without ``Session._storage_update_marker``), but a hook that
    disappears means google-adk changed underneath us: the test suite asserts this is empty.

    Returns:
        ``"Owner.name"`` for every missing hook; empty on every supported release.
    """
    return [f"{owner.__name__}.{name}" for owner, name in HOOKS if not _has(owner, name)]


def get_marker(session: Session) -> str | None:
    """Return the session's storage marker, or ``None`` (also when google-adk has no slot).

    Args:
        session: A google-adk session.

    Returns:
        The marker string, or ``None``.
    """
    if not _has(type(session), _MARKER):
        return None
    return cast("str | None", getattr(session, _MARKER))


def set_marker(session: Session, marker: str) -> None:
    """Store a marker on the session; does nothing when google-adk has no slot for it.

    Args:
        session: A google-adk session.
        marker: The marker.
    """
    if _has(type(session), _MARKER):
        setattr(session, _MARKER, marker)


def private_attributes(marker: str) -> dict[str, Any]:
    """The private attributes of a ``Session`` assembled without validation, marker included.

    Args:
        marker: The storage marker to carry (dropped when google-adk has no slot for it).

    Returns:
        Every private attribute's default, with the marker where the slot exists.
    """
    private: dict[str, Any] = {
        name: attribute.get_default()
        for name, attribute in getattr(Session, "__private_attributes__", {}).items()
    }
    if _MARKER in private:
        private[_MARKER] = marker
    return private


def _hook(service: BaseSessionService, name: str) -> Callable[..., Any] | None:
    return cast("Callable[..., Any] | None", getattr(service, name, None))


def _state_delta(event: Event) -> dict[str, Any]:
    actions = event.actions
    return actions.state_delta if actions is not None and actions.state_delta else {}


def apply_temp_state(service: BaseSessionService, session: Session, event: Event) -> None:
    """Put the event's ``temp:`` keys into ``session.state`` (google-adk's ``_apply_temp_state``).

    Args:
        service: The session service (its hook is used when google-adk has it).
        session: The caller's session.
        event: The event being appended.
    """
    hook = _hook(service, "_apply_temp_state")
    if hook is not None:
        hook(session, event)
        return
    for key, value in _state_delta(event).items():
        if key.startswith(State.TEMP_PREFIX):
            session.state[key] = value


def trim_temp_delta_state(service: BaseSessionService, event: Event) -> Event:
    """Remove ``temp:`` keys from the event's state delta, in place (``_trim_temp_delta_state``).

    Args:
        service: The session service (its hook is used when google-adk has it).
        event: The event being appended.

    Returns:
        The event.
    """
    hook = _hook(service, "_trim_temp_delta_state")
    if hook is not None:
        return cast("Event", hook(event))
    delta = _state_delta(event)
    if delta:
        event.actions.state_delta = {
            key: value for key, value in delta.items() if not key.startswith(State.TEMP_PREFIX)
        }
    return event


def commit_event_to_session(service: BaseSessionService, session: Session, event: Event) -> Event:
    """Apply the event's (trimmed) state delta to ``session.state`` and append it to its events.

    What every supported release's ``BaseSessionService.append_event`` does after trimming.

    Args:
        service: The session service (its ``_update_session_state`` is used when google-adk has it).
        session: The caller's session.
        event: The stored event.

    Returns:
        The event.
    """
    hook = _hook(service, "_update_session_state")
    if hook is not None:
        hook(session, event)
    else:
        session.state.update(_state_delta(event))
    session.events.append(event)
    return event


def service_registry() -> ServiceRegistry:
    """Return google-adk's global service registry (imported on first use: it is heavy).

    Returns:
        The registry ``adk web``/``adk api_server`` build their services from.
    """
    from google.adk.cli.service_registry import get_service_registry

    return get_service_registry()


# -- google-adk's legacy database schema (v0) -------------------------------------------------
# DatabaseSessionService databases created by google-adk 1.19-1.21 keep that layout, and every
# supported release goes on writing it into them: one column per event field, the actions as a
# pickled ``EventActions``. Pickles from a database are untrusted, so only data types resolve.

_PICKLE_DATA: Final = frozenset(
    {("builtins", name) for name in ("dict", "list", "set", "frozenset", "tuple", "str")}
    | {("builtins", name) for name in ("bytes", "bytearray", "int", "float", "bool", "complex")}
    | {("collections", "OrderedDict"), ("decimal", "Decimal"), ("uuid", "UUID")}
    | {("datetime", name) for name in ("date", "datetime", "time", "timedelta", "timezone")}
)
# Modules whose pydantic models and enums an EventActions pickle holds.
_PICKLE_MODEL_MODULES: Final = ("google.adk.", "google.genai.", "fastapi.openapi.")


class _ActionsUnpickler(pickle.Unpickler):
    """Resolves plain data types and google-adk/genai/OpenAPI models and enums, nothing else.

    Unpickling a pydantic model or an enum only sets its state or looks up a member, so no
    code the pickle chooses can run (the "restricting globals" recipe of the pickle docs).
    """

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _PICKLE_DATA:
            return super().find_class(module, name)
        if module.startswith(_PICKLE_MODEL_MODULES):
            found = super().find_class(module, name)
            if isinstance(found, type) and issubclass(found, (pydantic.BaseModel, enum.Enum)):
                return found
        raise pickle.UnpicklingError(f"refused to load {module}.{name} from a pickled action")


def legacy_event(columns: Mapping[str, Any], actions: bytes | None) -> Event:
    """Build the google-adk ``Event`` a schema-v0 ``events`` row holds, as google-adk reads it.

    Args:
        columns: The row's event fields (JSON columns decoded, ``timestamp`` in epoch
            seconds, ``long_running_tool_ids`` a list); ``None`` values are left out.
        actions: The pickled ``EventActions`` column.

    Returns:
        The event.

    Raises:
        pickle.UnpicklingError: The actions are not a pickle of plain data and google-adk models.
        pydantic.ValidationError: The row does not make a valid event.
    """
    loaded = _ActionsUnpickler(io.BytesIO(actions)).load() if actions else None
    if loaded is not None and not isinstance(loaded, EventActions):
        raise pickle.UnpicklingError(f"a pickled action holds a {type(loaded).__name__}")
    fields = {key: value for key, value in columns.items() if value is not None}
    # google-adk revalidates a dump: a pickle from another release may lack a newer field.
    fields["actions"] = (
        EventActions.model_validate(loaded.model_dump()) if loaded is not None else EventActions()
    )
    return Event.model_validate(fields)
