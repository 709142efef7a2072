"""How the schema is laid out: plain tables, or tables that Citus distributes over its nodes.

Read from the catalog (never from the migration history, since an operator may distribute or
undistribute tables by hand); the service runs its Citus-routable statements when any of the
library's tables is a Citus table.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

from .base import Dialect

__all__ = ("Layout", "TableLayout", "read_layout", "refresh")


@attrs.frozen(kw_only=True)
class TableLayout:
    """How Citus holds one table.

    Attributes:
        kind: ``"distributed"`` (hash-distributed), ``"reference"`` (a copy on every node),
            ``"single shard"`` or ``"citus local"``.
        column: The distribution column (None unless hash-distributed).
        colocation_id: Tables with the same id keep rows of equal column values on one node.
        shards: How many shards the table has.
    """

    kind: str
    column: str | None
    colocation_id: int
    shards: int


@attrs.frozen(kw_only=True)
class Layout:
    """The schema's layout.

    Attributes:
        citus: The installed ``citus`` extension's version (None without Citus).
        tables: Each of the library's tables that Citus holds, by name; empty when none.
    """

    citus: str | None
    tables: Mapping[str, TableLayout]

    @property
    def distributed(self) -> bool:
        """Whether any of the library's tables is a Citus table."""
        return bool(self.tables)

    def to_dict(self) -> dict[str, Any]:
        """Return the layout as JSON-ready values (for ``adk-sessions status``)."""
        return {
            "citus": self.citus,
            "tables": {name: attrs.asdict(table) for name, table in self.tables.items()},
        }


async def read_layout(dialect: Dialect) -> Layout:
    """Read the layout from the catalog (one query, two with Citus; no lock, no DDL).

    Args:
        dialect: The database.

    Returns:
        The layout.
    """
    q = dialect.queries
    async with dialect.reader() as conn:
        version = await conn.value(q.citus_version, {})
        rows = await conn.rows(q.distribution, {}) if version is not None else []
    tables = {
        str(row["table_name"]): TableLayout(
            kind=str(row["kind"]),
            column=None if row["distribution_column"] is None else str(row["distribution_column"]),
            colocation_id=int(row["colocation_id"]),
            shards=int(row["shard_count"]),
        )
        for row in rows
    }
    return Layout(citus=None if version is None else str(version), tables=tables)


async def refresh(dialect: Dialect) -> Layout:
    """Read the layout and set ``dialect.distributed`` from it.

    Args:
        dialect: The database.

    Returns:
        The layout.
    """
    layout = await read_layout(dialect)
    dialect.distributed = layout.distributed
    return layout
