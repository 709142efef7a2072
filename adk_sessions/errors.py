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
