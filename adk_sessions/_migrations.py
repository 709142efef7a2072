"""Schema migrations: versioned scripts, each applied in one transaction with its version row."""

from __future__ import annotations

import hashlib
import time

from ._dialects.base import Body, Dialect, statement
from .errors import SchemaError

__all__ = ("MIGRATION_LOCK_KEY", "lock_key", "migrate", "schema_version")

# pg_advisory_xact_lock key shared by every migrator of this library ("adk_sess" in ASCII).
MIGRATION_LOCK_KEY = 0x61646B5F73657373


def lock_key(schema: str) -> int:
    """The migration lock of one schema: the library's key for ``public``, else one of its own.

    Migrators of different schemas never wait for each other; ``public`` keeps the key every
    earlier version used, so old and new migrators still exclude each other there.
    """
    if schema == "public":
        return MIGRATION_LOCK_KEY
    digest = hashlib.blake2b(schema.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def _too_new(found: int, known: int) -> SchemaError:
    return SchemaError(
        f"the database schema is at version {found}, newer than this code knows ({known}); "
        "upgrade adk-sessions instead of touching the schema"
    )


async def schema_version(dialect: Dialect) -> int:
    """Return the newest applied migration (0 for an empty database), without locking or DDL.

    Args:
        dialect: The database.

    Returns:
        The schema version.
    """
    q = dialect.queries
    async with dialect.reader() as conn:
        if not await conn.value(q.migrations_table_exists, {}):
            return 0
        rows = await conn.rows(q.applied_versions, {})
    return max((row["version"] for row in rows), default=0)


def check_version(dialect: Dialect, version: int) -> None:
    """Raise :class:`SchemaError` when the schema is newer than the code.

    Args:
        dialect: The database.
        version: The schema version found.
    """
    if version > len(dialect.migrations):
        raise _too_new(version, len(dialect.migrations))


async def migrate(dialect: Dialect) -> list[int]:
    """Apply every pending migration, one transaction each, under the migration lock.

    Many processes may run this at once: the lock (an advisory lock on PostgreSQL, the write lock
    of ``BEGIN IMMEDIATE`` on SQLite) serialises them and each re-reads the applied versions
    after taking it, so every migration runs exactly once. Each migration's transaction first
    records ``dialect.distribute`` (``set_distribute``), which the Citus migration reads.

    Args:
        dialect: The database.

    Returns:
        The versions this call applied (empty when the schema was current).

    Raises:
        SchemaError: When the schema is newer than the code; nothing is changed.
    """
    applied: list[int] = []
    while True:
        version = await dialect.write(lambda: _apply_next(dialect), _ignore)
        if version is None:
            return applied
        applied.append(version)


def _ignore(_: object) -> None:
    pass


def _apply_next(dialect: Dialect) -> Body[int | None]:
    """The transaction applying the oldest pending migration; returns its version, or None."""
    q = dialect.queries
    yield q.lock_migrations, {"key": lock_key(dialect.schema), "schema": dialect.schema}
    yield q.create_schema, {}
    yield q.create_migrations_table, {}
    done = {row["version"] for row in (yield q.applied_versions, {})}
    check_version(dialect, max(done, default=0))
    pending = [m for m in dialect.migrations if m.version not in done]
    if not pending:
        return None
    migration = pending[0]
    # Read by migration 0002_distribute.sql: 'off' keeps the tables local on Citus.
    yield q.set_distribute, {"value": "on" if dialect.distribute else "off"}
    for sql in migration.statements:
        yield statement(sql), {}
    yield (
        q.record_migration,
        {"version": migration.version, "name": migration.name, "applied_at": time.time()},
    )
    return migration.version
