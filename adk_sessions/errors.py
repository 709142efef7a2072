"""Errors raised by adk_sessions.

One root, :class:`AdkSessionsError`, split by who must act. Where a generic handler should catch an
error, it also derives from the matching stdlib class (``LookupError``, ``ValueError``), so callers
never need to import asyncpg or sqlite3 to handle a failure.
"""

from __future__ import annotations

__all__ = (
    "AdkSessionsError",
    "InvalidArgumentError",
    "SchemaError",
    "SessionExistsError",
    "SessionNotFoundError",
    "StaleSessionError",
    "StorageError",
    "StorageUnavailableError",
)


class AdkSessionsError(Exception):
    """Root of every error this library raises on purpose."""


class SessionNotFoundError(AdkSessionsError, LookupError):
    """The session does not exist (never created, deleted, or owned by another user)."""


class SessionExistsError(AdkSessionsError):
    """A session with that id already exists for the app and user."""


class StaleSessionError(AdkSessionsError, ValueError):
    """The caller's session is older than the stored one; reload it and retry."""


class InvalidArgumentError(AdkSessionsError, ValueError):
    """An argument is malformed; nothing was written."""


class SchemaError(AdkSessionsError):
    """The database schema does not match this version of the code."""


class StorageError(AdkSessionsError):
    """The database failed; the driver's exception is the ``__cause__``."""


class StorageUnavailableError(StorageError):
    """The database could not be reached or gave up for now; a retry may succeed.

    Raised for lost, refused or terminated connections, a server starting up or shutting down,
    timeouts, serialization failures and deadlocks (SQLSTATE 40001, 40P01) and SQLite's write
    lock still held by another process after ``busy_timeout``. A write that failed this way may
    still have been stored (the reply can be lost after ``COMMIT``): retrying ``append_event``
    with the same event is safe (it is idempotent), and a retried ``create_session`` with the
    same id answers :class:`SessionExistsError` when the first attempt was stored.
    """
