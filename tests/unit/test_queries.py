"""Unit tests of the named-query loader (``adk_sessions._queries``); no database needed."""

from __future__ import annotations

import shutil
from pathlib import Path

import attrs
import pytest

from adk_sessions import _dialects as dialects
from adk_sessions._queries import (
    ExecuteQuery,
    OneQuery,
    Queries,
    RowsQuery,
    ValueQuery,
    compile_sql,
    load_migrations,
    load_queries,
    parse_queries,
    sql_root,
)
from adk_sessions.errors import SchemaError

# --- compile_sql: parameters --------------------------------------------------------------------


def test_params_rewritten_to_positional_in_order_of_first_appearance() -> None:
    """``:name`` becomes ``$n`` numbered by first appearance; params lists the names in order."""
    statements, params = compile_sql("SELECT * FROM t WHERE b = :b AND a = :a", positional=True)
    assert statements == ("SELECT * FROM t WHERE b = $1 AND a = $2",)
    assert params == ("b", "a")


def test_repeated_param_reuses_its_number() -> None:
    """A name used twice gets the same ``$n`` both times and appears once in params."""
    statements, params = compile_sql("SELECT :a, :b, :a WHERE x = :b OR y = :c", positional=True)
    assert statements == ("SELECT $1, $2, $1 WHERE x = $2 OR y = $3",)
    assert params == ("a", "b", "c")


def test_named_style_keeps_names() -> None:
    """With positional=False the text keeps ``:name`` (sqlite3 named style) and params are found."""
    statements, params = compile_sql("SELECT :a, :b, :a", positional=False)
    assert statements == ("SELECT :a, :b, :a",)
    assert params == ("a", "b")


def test_param_followed_by_cast() -> None:
    """``:x::jsonb`` becomes ``$1::jsonb``: the cast is not taken for a parameter."""
    statements, params = compile_sql("SELECT :x::jsonb, :y::float8", positional=True)
    assert statements == ("SELECT $1::jsonb, $2::float8",)
    assert params == ("x", "y")


def test_plain_cast_untouched() -> None:
    """``a::text`` is a cast, not a parameter ``:text``."""
    statements, params = compile_sql("SELECT a::text, b::jsonb FROM t", positional=True)
    assert statements == ("SELECT a::text, b::jsonb FROM t",)
    assert params == ()


def test_param_names_with_underscores_and_digits() -> None:
    """A parameter name runs over letters, digits and underscores, and stops at other text."""
    statements, params = compile_sql("VALUES (:app_name,:user_2)", positional=True)
    assert statements == ("VALUES ($1,$2)",)
    assert params == ("app_name", "user_2")


def test_colon_before_digit_is_not_a_param() -> None:
    """``:1`` (an array slice bound, a time literal) is not a parameter."""
    statements, params = compile_sql("SELECT arr[1:2] FROM t", positional=True)
    assert statements == ("SELECT arr[1:2] FROM t",)
    assert params == ()


# --- compile_sql: quoted text and comments ------------------------------------------------------


def test_single_quoted_text_left_alone() -> None:
    """A ``:x`` inside a string literal is text, not a parameter."""
    statements, params = compile_sql("SELECT ':x', :y", positional=True)
    assert statements == ("SELECT ':x', $1",)
    assert params == ("y",)


def test_double_quoted_identifier_left_alone() -> None:
    """A ``:x`` inside a quoted identifier is part of the name, not a parameter."""
    statements, params = compile_sql('SELECT "col:x" FROM t WHERE a = :a', positional=True)
    assert statements == ('SELECT "col:x" FROM t WHERE a = $1',)
    assert params == ("a",)


def test_doubled_quote_escape_stays_inside_literal() -> None:
    """``'it''s :x'`` is one literal: the doubled quote does not end it."""
    statements, params = compile_sql("SELECT 'it''s :x', :y", positional=True)
    assert statements == ("SELECT 'it''s :x', $1",)
    assert params == ("y",)


def test_line_comment_param_ignored() -> None:
    """A ``:name`` in a ``--`` comment is not a parameter, and the comment text is kept."""
    sql = "SELECT :a -- compare with :b\nFROM t"
    statements, params = compile_sql(sql, positional=True)
    assert statements == ("SELECT $1 -- compare with :b\nFROM t",)
    assert params == ("a",)


def test_block_comment_param_ignored() -> None:
    """A ``:name`` in a ``/* */`` comment is not a parameter, and the comment text is kept."""
    sql = "SELECT /* not :b, it's */ :a FROM t"
    statements, params = compile_sql(sql, positional=True)
    assert statements == ("SELECT /* not :b, it's */ $1 FROM t",)
    assert params == ("a",)


def test_apostrophe_in_line_comment_does_not_open_a_literal() -> None:
    """An apostrophe in a ``--`` comment does not swallow the rest of the statement."""
    statements, params = compile_sql("SELECT :a -- the user's id\n, :b", positional=True)
    assert statements == ("SELECT $1 -- the user's id\n, $2",)
    assert params == ("a", "b")


def test_unterminated_single_quote_is_schema_error() -> None:
    """An unterminated string literal raises SchemaError."""
    with pytest.raises(SchemaError, match="unterminated quote"):
        compile_sql("SELECT 'abc", positional=True)


def test_unterminated_double_quote_is_schema_error() -> None:
    """An unterminated quoted identifier raises SchemaError."""
    with pytest.raises(SchemaError, match="unterminated quote"):
        compile_sql('SELECT "abc FROM t', positional=False)


def test_unterminated_block_comment_is_schema_error() -> None:
    """An unterminated ``/*`` comment raises SchemaError."""
    with pytest.raises(SchemaError, match="unterminated comment"):
        compile_sql("SELECT 1 /* never closed", positional=False)


# --- compile_sql: statement splitting -----------------------------------------------------------


def test_splits_on_semicolons_outside_quotes_and_comments() -> None:
    """Statements split on ``;`` but not on one inside a literal, identifier or comment."""
    sql = (
        "INSERT INTO t VALUES ('a;b', :x);\n"
        "-- a comment; still a comment\n"
        'UPDATE t SET "we;ird" = /* ; */ :y;\n'
        "DELETE FROM t WHERE a = :x"
    )
    statements, params = compile_sql(sql, positional=False)
    assert statements == (
        "INSERT INTO t VALUES ('a;b', :x)",
        '-- a comment; still a comment\nUPDATE t SET "we;ird" = /* ; */ :y',
        "DELETE FROM t WHERE a = :x",
    )
    assert params == ("x", "y")


def test_empty_and_comment_only_pieces_are_not_statements() -> None:
    """Empty pieces (``;;``) and a comment-only tail are not statements."""
    statements, _ = compile_sql("SELECT 1;;\n  ;SELECT 2;\n-- trailing comment\n", positional=False)
    assert statements == ("SELECT 1", "SELECT 2")


def test_positional_numbering_spans_statements() -> None:
    """Across statements a name keeps one number (the whole text shares one parameter list)."""
    statements, params = compile_sql("SELECT :a; SELECT :b, :a", positional=True)
    assert statements == ("SELECT $1", "SELECT $2, $1")
    assert params == ("a", "b")


# --- parse_queries ------------------------------------------------------------------------------

_FILE = """\
-- A file header comment that belongs to no query: ignored.

-- name: get_thing^
-- Read one thing.
-- Second doc line.
SELECT * FROM things WHERE id = :id

-- name: all_things
SELECT * FROM things

-- name: count_things$
-- How many.
SELECT count(*) FROM things

-- name: delete_thing!
DELETE FROM things WHERE id = :id
"""


def test_parse_finds_every_query_with_its_kind() -> None:
    """Each ``-- name:`` line starts a query; its suffix selects its class (none ^ $ !)."""
    queries = parse_queries(_FILE, positional=True)
    assert {name: type(q) for name, q in queries.items()} == {
        "get_thing": OneQuery,
        "all_things": RowsQuery,
        "count_things": ValueQuery,
        "delete_thing": ExecuteQuery,
    }
    assert all(q.name == name for name, q in queries.items())


@pytest.mark.parametrize("suffix", ["*!", "?", "!!", "^$"])
def test_unknown_suffix_is_refused(suffix: str) -> None:
    """A name line with an unknown suffix (executemany's ``*!`` included) fails at load time
    instead of being read as a comment."""
    with pytest.raises(SchemaError, match="unknown suffix"):
        parse_queries(f"-- name: x{suffix}\nSELECT 1\n", positional=False)


@pytest.mark.parametrize("suffix", ["", "^", "$"])
def test_reading_query_with_several_statements_is_refused(suffix: str) -> None:
    """Only an execute query may hold several statements, even on SQLite (a reading driver
    would run the first one only)."""
    with pytest.raises(SchemaError, match="single statement"):
        parse_queries(f"-- name: x{suffix}\nSELECT 1;\nSELECT 2\n", positional=False)


def test_parse_captures_doc_lines() -> None:
    """The comment lines right under the name line become the doc, without ``--``."""
    queries = parse_queries(_FILE, positional=True)
    assert queries["get_thing"].doc == "Read one thing. Second doc line."
    assert queries["count_things"].doc == "How many."
    assert queries["all_things"].doc == ""


def test_parse_doc_lines_are_not_part_of_the_statement() -> None:
    """The statement text starts after the doc lines; the header comment belongs to no query."""
    queries = parse_queries(_FILE, positional=True)
    assert queries["get_thing"].statements == ("SELECT * FROM things WHERE id = $1",)
    assert queries["delete_thing"].statements == ("DELETE FROM things WHERE id = $1",)
    assert queries["delete_thing"].params == ("id",)
    assert queries["all_things"].params == ()


def test_parse_named_style_for_sqlite() -> None:
    """With positional=False the statements keep ``:name``."""
    queries = parse_queries(_FILE, positional=False)
    assert queries["delete_thing"].statements == ("DELETE FROM things WHERE id = :id",)
    assert queries["delete_thing"].params == ("id",)


def test_parse_multi_statement_query_for_sqlite() -> None:
    """With positional=False a query may hold several ``;``-separated statements."""
    text = "-- name: two!\nINSERT INTO a VALUES (:x);\nUPDATE b SET c = ';' WHERE d = :y\n"
    query = parse_queries(text, positional=False)["two"]
    assert query.statements == ("INSERT INTO a VALUES (:x)", "UPDATE b SET c = ';' WHERE d = :y")
    assert query.params == ("x", "y")


def test_parse_multi_statement_query_positional_is_schema_error() -> None:
    """With positional=True (asyncpg) a query of two statements raises SchemaError naming it."""
    text = "-- name: two!\nINSERT INTO a VALUES (:x);\nUPDATE b SET c = :y\n"
    with pytest.raises(SchemaError, match="'two' must be a single statement"):
        parse_queries(text, positional=True, source="x.sql")


def test_parse_trailing_semicolon_is_one_statement_positional() -> None:
    """A single statement ending in ``;`` is still one statement for asyncpg."""
    query = parse_queries("-- name: one$\nSELECT 1;\n", positional=True)["one"]
    assert query.statements == ("SELECT 1",)


def test_parse_duplicate_name_is_schema_error() -> None:
    """A name defined twice in one file raises SchemaError naming the file and the query."""
    text = "-- name: q\nSELECT 1\n\n-- name: q^\nSELECT 2\n"
    with pytest.raises(SchemaError, match=r"dup\.sql: query 'q' is defined twice"):
        parse_queries(text, positional=False, source="dup.sql")


def test_parse_query_without_statement_is_schema_error() -> None:
    """A name followed only by comments raises SchemaError naming the query."""
    text = "-- name: empty!\n-- only a doc line\n\n-- name: fine\nSELECT 1\n"
    with pytest.raises(SchemaError, match="'empty' has no statement"):
        parse_queries(text, positional=True, source="e.sql")


def test_parse_unterminated_quote_is_schema_error() -> None:
    """A query with an unterminated literal raises SchemaError at parse time."""
    with pytest.raises(SchemaError, match="unterminated"):
        parse_queries("-- name: bad\nSELECT 'oops\n", positional=False)


# --- load_queries / load_migrations on the shipped files -----------------------------------------


@pytest.mark.parametrize(("dialect", "positional"), [("postgres", True), ("sqlite", False)])
def test_load_queries_fills_every_field(dialect: str, positional: bool) -> None:
    """Every Queries field is loaded, under its own name, with at least one statement."""
    queries = load_queries(dialect, positional=positional)
    for field in attrs.fields(Queries):
        query = getattr(queries, field.name)
        assert query.name == field.name
        assert query.statements
    marker = "$1" if positional else ":app_name"
    assert marker in queries.get_session.statements[0]


def test_load_queries_postgres_has_no_named_params_left() -> None:
    """After loading for asyncpg no statement keeps a ``:name`` (only ``$n`` and ``::casts``)."""
    queries = load_queries("postgres", positional=True)
    for field in attrs.fields(Queries):
        query = getattr(queries, field.name)
        for statement in query.statements:
            _, leftover = compile_sql(statement, positional=True)
            assert leftover == (), (field.name, leftover)
            for n in range(1, len(query.params) + 1):
                assert f"${n}" in statement, (field.name, n)


@pytest.mark.parametrize("dialect", dialects.NAMES)
def test_load_migrations_versions_run_from_one(dialect: str) -> None:
    """Migrations load ordered 1, 2, ... and each splits into non-empty statements."""
    migrations = load_migrations(dialect)
    assert [m.version for m in migrations] == list(range(1, len(migrations) + 1))
    assert migrations[0].name == "0001_initial.sql"
    for migration in migrations:
        assert migration.statements
        assert all(s.strip() and not s.strip().endswith(";") for s in migration.statements)
    creates = [s for s in migrations[0].statements if "CREATE TABLE adk_events" in s]
    assert len(creates) == 1


def test_dollar_quoted_bodies_are_not_split_or_rewritten() -> None:
    """Dollar-quoted text keeps its ';' and ':name' (PostgreSQL DO/function bodies)."""
    statements, params = compile_sql("DO $$ BEGIN PERFORM :x; END $$; SELECT :y", positional=True)
    assert statements == ("DO $$ BEGIN PERFORM :x; END $$", "SELECT $1")
    assert params == ("y",)
    statements, params = compile_sql("SELECT $f$a:b;$f$, :z::jsonb", positional=True)
    assert statements == ("SELECT $f$a:b;$f$, $1::jsonb",)
    assert params == ("z",)


# --- load_queries: the files against the Queries class ---------------------------------------


def _sql_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the shipped sql/ folder that load_queries reads instead; returns its sqlite/."""
    root = tmp_path / "sql"
    shutil.copytree(Path(str(sql_root())), root)
    monkeypatch.setattr("adk_sessions._queries.sql_root", lambda: root)
    return root / "sqlite"


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text("utf-8")
    assert text.count(old) == 1, old
    path.write_text(text.replace(old, new), "utf-8")


def test_load_refuses_a_suffix_other_than_the_service_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A query whose suffix is not the kind its Queries field declares fails at load."""
    folder = _sql_copy(tmp_path, monkeypatch)
    _edit(folder / "schema.sql", "-- name: ping$", "-- name: ping^")
    with pytest.raises(SchemaError, match=r"'ping' has the suffix '\^'.*ValueQuery"):
        load_queries("sqlite", positional=False)


def test_load_refuses_missing_unknown_and_twice_defined_queries(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every Queries field must be defined exactly once, and nothing else."""
    folder = _sql_copy(tmp_path, monkeypatch)
    _edit(folder / "schema.sql", "-- name: ping$", "-- name: pong$")
    expected = r"missing queries \['ping'\], unknown queries \['pong'\]"
    with pytest.raises(SchemaError, match=expected):
        load_queries("sqlite", positional=False)
    _edit(folder / "schema.sql", "-- name: pong$", "-- name: ping$")
    (folder / "zz_extra.sql").write_text("-- name: ping$\nSELECT 1\n", "utf-8")
    with pytest.raises(SchemaError, match="'ping' is defined in two files"):
        load_queries("sqlite", positional=False)
