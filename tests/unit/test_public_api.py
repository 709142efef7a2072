"""The public surface: ``__all__`` both ways, the error hierarchy, the version, the wheel layout."""

from __future__ import annotations
import __future__

import ast
import importlib
import importlib.metadata
import inspect
from pathlib import Path
from types import ModuleType

import pytest

import adk_sessions
import adk_sessions.errors
from adk_sessions import _dialects as dialects
from adk_sessions._queries import sql_root
from adk_sessions.errors import (
    AdkSessionsError,
    InvalidArgumentError,
    SchemaError,
    SessionExistsError,
    SessionNotFoundError,
    StaleSessionError,
    StorageError,
    StorageUnavailableError,
)

# The facades: everything public in them is API, imported names included.
FACADES = ["adk_sessions", "adk_sessions.errors"]
# Every public module, and what the ones behind an extra import from it ([http], [adk]): without
# those packages (tox -e no-extras) their tests skip.
MODULES = [*FACADES, "adk_sessions.rest", "adk_sessions.asgi", "adk_sessions.adk"]
EXTRAS = {"adk_sessions.asgi": ("starlette", "jwt"), "adk_sessions.adk": ("google.adk",)}


def _module(name: str) -> ModuleType:
    """The module, once the packages of its extra are importable (else the test skips)."""
    for package in EXTRAS.get(name, ()):
        pytest.importorskip(package)
    return importlib.import_module(name)


def _public_names(module: ModuleType) -> set[str]:
    """Public attributes that are not submodules (nor ``from __future__`` compiler flags)."""
    return {
        name
        for name, value in vars(module).items()
        if not name.startswith("_")
        and not inspect.ismodule(value)
        and not isinstance(value, __future__._Feature)
    }


def _imported_names(module: ModuleType) -> set[str]:
    """Names the module's own import statements bind at module level (typing helpers, the
    classes it builds on), except explicit re-exports (``from x import y as y``)."""
    assert module.__file__ is not None
    tree = ast.parse(Path(module.__file__).read_text(encoding="utf-8"))
    bound: set[str] = set()
    pending: list[ast.AST] = list(tree.body)
    while pending:
        node = pending.pop()
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            for alias in node.names:
                if alias.asname != alias.name:
                    bound.add(alias.asname or alias.name.split(".")[0])
        elif not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            pending.extend(ast.iter_child_nodes(node))  # if TYPE_CHECKING:, try:, ...
    return bound


@pytest.mark.parametrize("name", MODULES)
def test_all_names_exist(name: str) -> None:
    """Every name in ``__all__`` is an attribute of the module, listed once."""
    module = _module(name)
    assert isinstance(module.__all__, tuple)
    assert len(set(module.__all__)) == len(module.__all__)
    missing = [name for name in module.__all__ if not hasattr(module, name)]
    assert missing == []


@pytest.mark.parametrize("name", MODULES)
def test_public_attributes_are_in_all(name: str) -> None:
    """Every public non-module attribute is listed in ``__all__`` (nothing leaks by accident);
    outside the facades, every one the module defines (what it imports for its own use is
    not its surface)."""
    module = _module(name)
    public = _public_names(module)
    if name not in FACADES:
        public -= _imported_names(module)
    assert sorted(public - set(module.__all__)) == []


def test_pinned_names_exported() -> None:
    """The names the README documents as the package's API are exported from it."""
    pinned = {"connect", "Session", "Event", "EventActions", "ListSessionsResponse", "__version__"}
    assert pinned <= set(adk_sessions.__all__)
    assert set(adk_sessions.errors.__all__) == {
        "AdkSessionsError",
        "SessionNotFoundError",
        "SessionExistsError",
        "StaleSessionError",
        "InvalidArgumentError",
        "SchemaError",
        "StorageError",
        "StorageUnavailableError",
    }


# The errors that name who must act; StorageUnavailableError is a kind of StorageError.
LEAVES = (
    SessionNotFoundError,
    SessionExistsError,
    StaleSessionError,
    InvalidArgumentError,
    SchemaError,
    StorageError,
)


@pytest.mark.parametrize("error", [*LEAVES, StorageUnavailableError])
def test_every_error_derives_from_the_root(error: type[Exception]) -> None:
    """Every library error is an AdkSessionsError, itself a plain Exception."""
    assert issubclass(error, AdkSessionsError)
    assert issubclass(AdkSessionsError, Exception)
    assert error.__module__ == "adk_sessions.errors"


def test_stdlib_mixins() -> None:
    """Not-found is a LookupError; stale and invalid-argument are ValueErrors (stdlib idioms
    such as ``except LookupError`` keep working)."""
    assert issubclass(SessionNotFoundError, LookupError)
    assert issubclass(StaleSessionError, ValueError)
    assert issubclass(InvalidArgumentError, ValueError)


@pytest.mark.parametrize("error", LEAVES)
def test_errors_are_distinct_leaves(error: type[Exception]) -> None:
    """No library error is a subclass of another one (each names who must act)."""
    others = set(LEAVES) - {error}
    assert not any(issubclass(error, other) for other in others)


def test_unavailable_is_a_storage_error() -> None:
    """StorageUnavailableError (a retry may succeed) is caught by ``except StorageError``."""
    assert issubclass(StorageUnavailableError, StorageError)
    assert not issubclass(StorageUnavailableError, (ValueError, LookupError))


def test_errors_without_a_mixin_are_not_value_or_lookup_errors() -> None:
    """Exists, schema and storage errors are not caught by ``except (ValueError, LookupError)``."""
    for error in (SessionExistsError, SchemaError, StorageError, AdkSessionsError):
        assert not issubclass(error, (ValueError, LookupError)), error
    assert not issubclass(SessionNotFoundError, ValueError)


def test_version_from_metadata() -> None:
    """``__version__`` is the installed distribution's version, not a string in the source."""
    assert adk_sessions.__version__ == importlib.metadata.version("adk-sessions")
    assert adk_sessions.__version__ != "0+unknown"


def test_sql_root_holds_both_dialects() -> None:
    """The sql folder the loader uses holds both dialects with their query and migration files."""
    root = sql_root()
    assert root.is_dir()
    for dialect in dialects.NAMES:
        folder = root / dialect
        assert folder.is_dir(), dialect
        assert any(e.name.endswith(".sql") for e in folder.iterdir()), dialect
        migrations = folder / "migrations"
        assert migrations.is_dir(), dialect
        assert (migrations / "0001_initial.sql").is_file(), dialect
