"""The named-query loader: ``sql/<dialect>/*.sql`` files into typed :class:`Queries`.

Grammar: a line ``-- name: <query_name><suffix>`` starts a query; the comment lines right after it
are its doc; the statement (or, for SQLite, several ``;``-separated statements) follows. Suffixes:
none = rows, ``^`` = one row or None, ``$`` = one value, ``!`` = execute. The suffix decides the
query's class (:class:`RowsQuery`, :class:`OneQuery`, :class:`ValueQuery`,
:class:`ExecuteQuery`), and a connection's methods accept only their class, so mypy sees a query
run the wrong way. Only an execute query may hold several statements (SQLite, which has no
data-modifying CTEs).
Parameters are ``:name``; for PostgreSQL they are rewritten to ``$n`` once, here, at load time
(``::type`` casts, quoted text, dollar-quoted bodies, identifiers and comments are left alone).
Not supported (no shipped query needs them): ``E'...'`` strings with backslash escapes and
array slices written ``a[x:y]`` without spaces (write ``a[x : y]``).

Tables in a schema of their own (PostgreSQL's ``schema=NAME``): the SQL names tables bare, and
the loader qualifies every table name (a name some ``CREATE TABLE`` in the dialect's files
creates) as ``"NAME".table``, in code and in string literals that are exactly a table name
(``to_regclass('adk_sessions')``). Index and constraint names are left alone (they live in
their table's schema). Qualifying at load time costs nothing per query and needs no
``search_path``, which connection poolers in transaction mode cannot keep.
"""

from __future__ import annotations

import importlib.resources
import re
import sys
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar, cast

import attrs

from .errors import SchemaError

if sys.version_info >= (3, 11):
    from importlib.resources.abc import Traversable
else:  # pragma: no cover - Python 3.10
    from importlib.abc import Traversable

__all__ = (
    "ExecuteQuery",
    "Migration",
    "OneQuery",
    "Queries",
    "Query",
    "RowsQuery",
    "ValueQuery",
    "load_migrations",
    "load_queries",
    "quote_identifier",
    "sql_root",
)

# PostgreSQL dollar quoting: $$ ... $$ or $tag$ ... $tag$ (never a parameter placeholder).
_DOLLAR_TAG = re.compile(r"\$(?:[A-Za-z_][A-Za-z0-9_]*)?\$")
_NAME_LINE = re.compile(r"^--\s*name:\s*([a-z_][a-z0-9_]*)(\S*)\s*$")


@attrs.frozen(kw_only=True)
class Query:
    """One named query, ready for its driver; its class says what it returns.

    Attributes:
        name: The query name.
        doc: The comment lines under the name.
        statements: The driver-ready statement texts (more than one only for an execute query
            on SQLite).
        params: The parameter names in order of first appearance (``$1`` is ``params[0]``).
    """

    suffix: ClassVar[str]
    # The connection method that runs it: rows, one, value or execute.
    method: ClassVar[str]

    name: str
    doc: str
    statements: tuple[str, ...]
    params: tuple[str, ...]


@attrs.frozen(kw_only=True)
class RowsQuery(Query):
    """No suffix: every row."""

    suffix = ""
    method = "rows"


@attrs.frozen(kw_only=True)
class OneQuery(Query):
    """``^``: the first row, or None."""

    suffix = "^"
    method = "one"


@attrs.frozen(kw_only=True)
class ValueQuery(Query):
    """``$``: the first column of the first row (None without a row)."""

    suffix = "$"
    method = "value"


@attrs.frozen(kw_only=True)
class ExecuteQuery(Query):
    """``!``: nothing comes back; every statement runs, in order."""

    suffix = "!"
    method = "execute"


_KINDS: dict[str, type[Query]] = {
    kind.suffix: kind for kind in (RowsQuery, OneQuery, ValueQuery, ExecuteQuery)
}


@attrs.frozen(kw_only=True)
class Queries:
    """Every query the service runs, typed by kind; a dialect lacking one, or defining one with
    another suffix, fails at load time."""

    create_migrations_table: ExecuteQuery
    lock_migrations: ExecuteQuery
    create_schema: ExecuteQuery
    migrations_table_exists: ValueQuery
    applied_versions: RowsQuery
    record_migration: ExecuteQuery
    count_rows: OneQuery
    set_distribute: ExecuteQuery
    citus_version: ValueQuery
    distribution: RowsQuery
    ping: ValueQuery
    insert_session: OneQuery
    create_session: OneQuery
    merge_app_state: ExecuteQuery
    merge_user_state: ExecuteQuery
    get_session: OneQuery
    get_scope_states: OneQuery
    get_session_with_user: OneQuery
    get_app_scope: ValueQuery
    get_user_scope: ValueQuery
    list_sessions: RowsQuery
    list_user_sessions: RowsQuery
    delete_session: ExecuteQuery
    lock_session: OneQuery
    append_event: ExecuteQuery
    insert_event: ExecuteQuery
    advance_session: ExecuteQuery
    get_event_at: OneQuery
    get_events: RowsQuery
    list_apps_with_sessions: RowsQuery
    list_apps_distributed: RowsQuery
    count_expired_sessions: ValueQuery
    find_expired_bound: OneQuery
    delete_expired_sessions: RowsQuery


@attrs.frozen(kw_only=True)
class Migration:
    """A schema migration script.

    Attributes:
        version: The number in the file name (``0001_initial.sql`` is 1).
        name: The file name.
        statements: The script split into statements, to run one by one in one transaction.
    """

    version: int
    name: str
    statements: tuple[str, ...]


def _tokens(sql: str) -> Iterator[tuple[str, str]]:
    """Yield ``(kind, text)`` pieces: quoted, comment, param, semicolon or other text."""
    i, n = 0, len(sql)
    start = 0
    while i < n:
        ch = sql[i]
        if ch in "'\"":
            end = i + 1
            while end < n:
                if sql[end] == ch:
                    if end + 1 < n and sql[end + 1] == ch:  # doubled quote escapes itself
                        end += 2
                        continue
                    break
                end += 1
            if end >= n:
                raise SchemaError(f"unterminated quote in SQL: {sql[i : i + 40]!r}")
            yield "text", sql[start:i]
            yield "quoted", sql[i : end + 1]
            i = start = end + 1
        elif ch == "$" and (dollar := _DOLLAR_TAG.match(sql, i)):
            tag = dollar.group()
            end = sql.find(tag, i + len(tag))
            if end < 0:
                raise SchemaError(f"unterminated dollar quote in SQL: {sql[i : i + 40]!r}")
            yield "text", sql[start:i]
            yield "quoted", sql[i : end + len(tag)]
            i = start = end + len(tag)
        elif sql.startswith("--", i):
            end = sql.find("\n", i)
            end = n if end < 0 else end
            yield "text", sql[start:i]
            yield "comment", sql[i:end]
            i = start = end
        elif sql.startswith("/*", i):
            end = sql.find("*/", i + 2)
            if end < 0:
                raise SchemaError(f"unterminated comment in SQL: {sql[i : i + 40]!r}")
            yield "text", sql[start:i]
            yield "comment", sql[i : end + 2]
            i = start = end + 2
        elif sql.startswith("::", i):
            i += 2
        elif ch == ":" and i + 1 < n and (sql[i + 1].isalpha() or sql[i + 1] == "_"):
            end = i + 1
            while end < n and (sql[end].isalnum() or sql[end] == "_"):
                end += 1
            yield "text", sql[start:i]
            yield "param", sql[i + 1 : end]
            i = start = end
        elif ch == ";":
            yield "text", sql[start:i]
            yield "semicolon", ";"
            i = start = i + 1
        else:
            i += 1
    yield "text", sql[start:]


_CREATE_TABLE = re.compile(r"\bCREATE\s+TABLE\s+(?:IF\s+NOT\s+EXISTS\s+)?([a-z_][a-z0-9_]*)", re.I)


def quote_identifier(name: str) -> str:
    """Quote an SQL identifier, doubling the double quotes inside it."""
    return '"' + name.replace('"', '""') + '"'


@attrs.frozen
class _Qualifier:
    """Rewrites bare table names to ``"schema".table`` in SQL text and table-name literals."""

    schema: str
    tables: frozenset[str]

    def code(self, text: str) -> str:
        if not self.tables:
            return text
        pattern = r"\b(" + "|".join(sorted(self.tables)) + r")\b"
        prefix = quote_identifier(self.schema) + "."
        return re.sub(pattern, lambda m: prefix + m.group(1), text)

    def literal(self, text: str) -> str:
        if text.startswith("'") and text[1:-1] in self.tables:
            qualified = f"{quote_identifier(self.schema)}.{text[1:-1]}"
            return "'" + qualified.replace("'", "''") + "'"
        return text


def compile_sql(
    sql: str, *, positional: bool, qualify: _Qualifier | None = None
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Split SQL into statements and find its ``:name`` parameters.

    Args:
        sql: The SQL text.
        positional: Rewrite ``:name`` to ``$n`` (asyncpg); otherwise keep ``:name`` (sqlite3).
        qualify: Put table names in a schema (see the module's docstring).

    Returns:
        The non-empty statements (comments kept) and the parameter names in order.
    """
    params: list[str] = []
    statements: list[str] = []
    current: list[str] = []
    has_code = False
    for kind, text in _tokens(sql):
        if qualify is not None:
            if kind == "text":
                text = qualify.code(text)
            elif kind == "quoted":
                text = qualify.literal(text)
        if kind == "param":
            if text not in params:
                params.append(text)
            current.append(f"${params.index(text) + 1}" if positional else f":{text}")
            has_code = True
        elif kind == "semicolon":
            if has_code:
                statements.append("".join(current).strip())
            current, has_code = [], False
        else:
            current.append(text)
            has_code = has_code or (kind != "comment" and bool(text.strip()))
    if has_code:
        statements.append("".join(current).strip())
    return tuple(statements), tuple(params)


def parse_queries(
    text: str, *, positional: bool, source: str = "<sql>", qualify: _Qualifier | None = None
) -> dict[str, Query]:
    """Parse one ``.sql`` file of named queries.

    Args:
        text: The file's content.
        positional: Rewrite parameters to ``$n`` (PostgreSQL).
        source: The file name, for error messages.
        qualify: Put table names in a schema.

    Returns:
        Queries by name.

    Raises:
        SchemaError: On a duplicate name, an unknown suffix, an empty query, or several
            statements where one is required.
    """
    queries: dict[str, Query] = {}
    blocks: list[tuple[str, str, list[str]]] = []
    for line in text.splitlines():
        match = _NAME_LINE.match(line.strip())
        if match:
            blocks.append((match.group(1), match.group(2) or "", []))
        elif blocks:
            blocks[-1][2].append(line)
    for name, suffix, lines in blocks:
        doc_lines: list[str] = []
        while lines and lines[0].lstrip().startswith("--"):
            doc_lines.append(lines.pop(0).lstrip()[2:].strip())
        statements, params = compile_sql("\n".join(lines), positional=positional, qualify=qualify)
        if not statements:
            raise SchemaError(f"{source}: query {name!r} has no statement")
        kind = _KINDS.get(suffix)
        if kind is None:
            raise SchemaError(
                f"{source}: query {name!r} has the unknown suffix {suffix!r} "
                "(none: rows, ^: one row, $: a value, !: execute)"
            )
        if len(statements) > 1 and (positional or kind is not ExecuteQuery):
            raise SchemaError(
                f"{source}: query {name!r} must be a single statement (only an execute query "
                "may hold several, and only on SQLite)"
            )
        if name in queries:
            raise SchemaError(f"{source}: query {name!r} is defined twice")
        queries[name] = kind(
            name=name, doc=" ".join(doc_lines), statements=statements, params=params
        )
    return queries


def sql_root() -> Traversable:
    """Return the ``sql`` folder: the installed package's copy first, else the checkout's."""
    installed = importlib.resources.files("adk_sessions") / "sql"
    if installed.is_dir():
        return installed
    checkout = Path(__file__).resolve().parent.parent / "sql"
    if checkout.is_dir():
        return checkout
    raise SchemaError("the sql/ folder is missing from the installation")


def _sql_files(dialect: str) -> list[Traversable]:
    """The dialect's query files and migration scripts, by name."""
    folder = sql_root() / dialect
    files = [e for e in folder.iterdir() if e.name.endswith(".sql") and e.is_file()]
    files += [e for e in (folder / "migrations").iterdir() if e.name.endswith(".sql")]
    return sorted(files, key=lambda e: e.name)


def _qualifier(dialect: str, schema: str | None) -> _Qualifier | None:
    if schema is None:
        return None
    tables = {
        name.lower()
        for entry in _sql_files(dialect)
        for name in _CREATE_TABLE.findall(entry.read_text("utf-8"))
    }
    return _Qualifier(schema=schema, tables=frozenset(tables))


def load_queries(dialect: str, *, positional: bool, schema: str | None = None) -> Queries:
    """Load every named query of a dialect.

    Args:
        dialect: ``"postgres"`` or ``"sqlite"``.
        positional: Rewrite parameters to ``$n``.
        schema: Qualify every table name with this schema (PostgreSQL).

    Returns:
        The typed queries.

    Raises:
        SchemaError: When a query is missing, unknown or malformed.
    """
    found: dict[str, Query] = {}
    qualify = _qualifier(dialect, schema)
    folder = sql_root() / dialect
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".sql") and entry.is_file():
            source = f"sql/{dialect}/{entry.name}"
            for name, query in parse_queries(
                entry.read_text("utf-8"), positional=positional, source=source, qualify=qualify
            ).items():
                if name in found:
                    raise SchemaError(f"{source}: query {name!r} is defined in two files")
                found[name] = query
    expected = {field.name for field in attrs.fields(Queries)}
    missing, unknown = expected - found.keys(), found.keys() - expected
    if missing or unknown:
        raise SchemaError(
            f"sql/{dialect}: missing queries {sorted(missing)}, unknown queries {sorted(unknown)}"
        )
    kinds = typing.get_type_hints(Queries)
    for name, query in found.items():
        if type(query) is not kinds[name]:
            raise SchemaError(
                f"sql/{dialect}: query {name!r} has the suffix {query.suffix!r}, but the service "
                f"runs it as a {kinds[name].__name__} ({kinds[name].suffix!r})"
            )
    return Queries(**cast("dict[str, Any]", found))  # each checked against its field above


def load_migrations(dialect: str, *, schema: str | None = None) -> tuple[Migration, ...]:
    """Load the migration scripts of a dialect, ordered by version.

    Args:
        dialect: ``"postgres"`` or ``"sqlite"``.
        schema: Qualify every table name with this schema (PostgreSQL).

    Returns:
        The migrations; versions are 1, 2, ... without gaps.

    Raises:
        SchemaError: On a malformed file name or a gap in the versions.
    """
    qualify = _qualifier(dialect, schema)
    migrations = []
    for entry in (sql_root() / dialect / "migrations").iterdir():
        if not entry.name.endswith(".sql"):
            continue
        head = entry.name.split("_", 1)[0]
        if not head.isdigit():
            raise SchemaError(f"sql/{dialect}/migrations/{entry.name}: name must be NNNN_*.sql")
        statements, _ = compile_sql(entry.read_text("utf-8"), positional=False, qualify=qualify)
        migrations.append(Migration(version=int(head), name=entry.name, statements=statements))
    migrations.sort(key=lambda m: m.version)
    if [m.version for m in migrations] != list(range(1, len(migrations) + 1)):
        raise SchemaError(f"sql/{dialect}/migrations: versions must run 1, 2, ... without gaps")
    return tuple(migrations)
