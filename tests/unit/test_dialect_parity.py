"""Dialect parity of the shipped SQL, and the rule that Python holds no SQL (CONTRIBUTING.md)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import attrs
import pytest

import adk_sessions
from adk_sessions import _dialects as dialects
from adk_sessions._queries import Queries, Query, load_migrations, load_queries, parse_queries
from adk_sessions._queries import sql_root as _sql_root

DIALECTS = dialects.NAMES
PACKAGE = Path(adk_sessions.__file__).resolve().parent

# Modules that legitimately hold SQL of their own, with the reason.
SQL_ALLOWED_MODULES = {
    # Reads google-adk's own DatabaseSessionService tables (sessions/events/app_states/...), a
    # foreign schema with no counterpart in sql/<dialect>/, to import them into adk_* tables.
    "_import_adk.py",
}
# Statement keywords that must never appear in a Python string literal.
_SQL_KEYWORD = re.compile(r"\b(SELECT|INSERT|UPDATE|DELETE|CREATE) ")
# Transaction and pragma lines: allowed in the dialect modules only.
_CONTROL = re.compile(r"^\s*(BEGIN|COMMIT|ROLLBACK|PRAGMA)\b")
_DIALECT_MODULES = {"_dialects/sqlite.py", "_dialects/postgres.py"}


def _sql_files(dialect: str, folder: str = "") -> dict[str, str]:
    root = _sql_root() / dialect
    if folder:
        root = root / folder
    return {
        entry.name: entry.read_text("utf-8")
        for entry in root.iterdir()
        if entry.is_file() and entry.name.endswith(".sql")
    }


def _queries_by_file(dialect: str) -> dict[str, dict[str, Query]]:
    return {
        name: parse_queries(text, positional=dialect == "postgres", source=name)
        for name, text in _sql_files(dialect).items()
    }


def test_same_sql_file_names() -> None:
    """Both dialects ship the same set of query files."""
    names = {dialect: set(_sql_files(dialect)) for dialect in DIALECTS}
    assert names["postgres"] == names["sqlite"]
    assert names["postgres"]


def test_same_query_names_per_file() -> None:
    """Each query file defines the same query names in both dialects."""
    pg, lite = _queries_by_file("postgres"), _queries_by_file("sqlite")
    for file_name in pg.keys() & lite.keys():
        assert set(pg[file_name]) == set(lite[file_name]), file_name


def test_same_kind_per_query() -> None:
    """A query has the same suffix (query class) in both dialects."""
    pg, lite = load_queries("postgres", positional=True), load_queries("sqlite", positional=False)
    for field in attrs.fields(Queries):
        assert type(getattr(pg, field.name)) is type(getattr(lite, field.name)), field.name


def test_same_parameter_set_per_query() -> None:
    """A query takes the same set of parameters in both dialects."""
    pg, lite = load_queries("postgres", positional=True), load_queries("sqlite", positional=False)
    for field in attrs.fields(Queries):
        assert set(getattr(pg, field.name).params) == set(getattr(lite, field.name).params), (
            field.name
        )


def test_same_migration_file_names() -> None:
    """Both dialects ship the same migration scripts, by file name and version."""
    names = {dialect: sorted(_sql_files(dialect, "migrations")) for dialect in DIALECTS}
    assert names["postgres"] == names["sqlite"]
    versions = {d: [(m.version, m.name) for m in load_migrations(d)] for d in DIALECTS}
    assert versions["postgres"] == versions["sqlite"]


@pytest.mark.parametrize(("dialect", "positional"), [("postgres", True), ("sqlite", False)])
def test_every_queries_field_loaded(dialect: str, positional: bool) -> None:
    """Every field of Queries is loaded for the dialect, and no file holds an unknown query."""
    queries = load_queries(dialect, positional=positional)
    fields = {field.name for field in attrs.fields(Queries)}
    defined = {name for qs in _queries_by_file(dialect).values() for name in qs}
    assert defined == fields
    for name in fields:
        assert isinstance(getattr(queries, name), Query)


def _docstring_ids(tree: ast.AST) -> set[int]:
    """ids of the string constants that are docstrings (or other bare string statements)."""
    found: set[int] = set()
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Expr)
            and isinstance(node.value, ast.Constant)
            and isinstance(node.value.value, str)
        ):
            found.add(id(node.value))
    return found


def _string_literals(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text("utf-8"), filename=str(path))
    docs = _docstring_ids(tree)
    return [
        (node.lineno, node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docs
    ]


def _modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def _name(path: Path) -> str:
    """The module's path inside the package (``_dialects/sqlite.py``)."""
    return path.relative_to(PACKAGE).as_posix()


def test_no_sql_in_python() -> None:
    """No string literal of the package holds a SELECT/INSERT/UPDATE/DELETE/CREATE statement."""
    offending = [
        f"{_name(path)}:{line}: {text!r}"
        for path in _modules()
        if _name(path) not in SQL_ALLOWED_MODULES
        for line, text in _string_literals(path)
        if _SQL_KEYWORD.search(text)
    ]
    assert offending == []


def test_transaction_and_pragma_lines_only_in_dialect_modules() -> None:
    """BEGIN/COMMIT/ROLLBACK/PRAGMA strings appear in the dialect modules only."""
    offending = [
        f"{_name(path)}:{line}: {text!r}"
        for path in _modules()
        if _name(path) not in _DIALECT_MODULES | SQL_ALLOWED_MODULES
        for line, text in _string_literals(path)
        if _CONTROL.search(text)
    ]
    assert offending == []


def test_sql_scan_sees_the_dialect_modules() -> None:
    """The scan reads the real package: the dialect modules' BEGIN/COMMIT strings are found."""
    texts = {
        text
        for path in _modules()
        if _name(path) in _DIALECT_MODULES
        for _, text in _string_literals(path)
    }
    assert {"BEGIN", "BEGIN IMMEDIATE", "COMMIT", "ROLLBACK"} <= texts


def test_sql_allowlist_is_needed() -> None:
    """Each module allowed to hold SQL exists and does hold SQL (a stale allowance fails)."""
    for name in SQL_ALLOWED_MODULES:
        path = PACKAGE / name
        assert path.exists(), name
        assert any(_SQL_KEYWORD.search(text) for _, text in _string_literals(path)), name
