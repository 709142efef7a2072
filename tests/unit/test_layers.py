"""The layers of the package: each module of ``adk_sessions`` imports only modules of a lower layer.

The modules are read with ``ast``, never imported, so an import counts wherever it stands: at
module level, inside a function, under ``TYPE_CHECKING``. A module missing from the map fails
too, so that a new module gets its layer on purpose (CONTRIBUTING.md, "Layers").
"""

from __future__ import annotations

import ast
import importlib.util
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = "adk_sessions"

# The layer map of CONTRIBUTING.md, section "Layers": keep the two identical. Names are relative
# to the package; "adk_sessions" is the package's __init__ (connect, the models, __version__),
# "_dialects" the dialect registry (the _dialects package's __init__).
LAYERS: dict[int, tuple[str, ...]] = {
    0: ("errors", "_json", "_progress", "_tracing", "_adk_compat"),
    1: ("_validate", "_queries", "_state", "_models"),
    2: ("_dialects.base",),
    3: (
        "_dialects",
        "_dialects.postgres",
        "_dialects.sqlite",
        "_dialects.layout",
        "_tokens",
        "_codec",
        "_migrations",
        "_transactions",
        "_pgcluster",
    ),
    4: ("_service",),
    5: ("_connect",),
    6: (ROOT, "rest"),
    7: ("adk", "asgi"),
    8: ("_import_adk", "_serve"),
    9: ("_cli",),
}
LAYER = {name: layer for layer, names in LAYERS.items() for name in names}


def _package_dir() -> Path:
    """The package's directory, found without importing it (the installed copy under tox)."""
    spec = importlib.util.find_spec(ROOT)
    assert spec is not None and spec.submodule_search_locations is not None
    (location,) = spec.submodule_search_locations
    return Path(location)


def _name(dotted: str) -> str:
    """``adk_sessions.x.y`` by its map name ``x.y``; the package itself is ``adk_sessions``."""
    return dotted if dotted == ROOT else dotted.removeprefix(ROOT + ".")


def _modules() -> dict[str, Path]:
    """Every module of the package by its map name, packages by their ``__init__.py``."""
    package = _package_dir()
    found: dict[str, Path] = {}
    for path in sorted(package.rglob("*.py")):
        parts = path.relative_to(package).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[_name(".".join((ROOT, *parts)))] = path
    return found


MODULES = _modules()


def _in_package(dotted: str) -> bool:
    return dotted == ROOT or dotted.startswith(ROOT + ".")


def imports(name: str) -> Iterator[tuple[int, str]]:
    """(line, map name) of every package module that module ``name`` imports.

    ``from X import y`` imports module ``X.y`` when there is one (``from . import rest``,
    ``from ._dialects import layout``), else module ``X`` (``from . import __version__`` is the
    package, ``from ._dialects.base import Row`` is ``_dialects.base``).
    """
    path = MODULES[name]
    dotted = ROOT if name == ROOT else f"{ROOT}.{name}"
    package = dotted if path.name == "__init__.py" else dotted.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if _in_package(alias.name):
                    yield node.lineno, _name(alias.name)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                parts = parts[: len(parts) - (node.level - 1)]
                base = ".".join([*parts, node.module] if node.module else parts)
            else:
                base = node.module or ""
            if not _in_package(base):
                continue
            for alias in node.names:
                submodule = _name(f"{base}.{alias.name}")
                yield node.lineno, submodule if submodule in MODULES else _name(base)


def test_every_module_has_a_layer() -> None:
    """A module the map does not name fails here: decide its layer (CONTRIBUTING.md, "Layers")."""
    missing = sorted(set(MODULES) - set(LAYER))
    assert not missing, (
        f"modules of {ROOT} without a layer: {missing}; give each one a layer in "
        'CONTRIBUTING.md ("Layers") and in LAYERS of this test'
    )


def test_every_layer_entry_is_a_module() -> None:
    """The map names no module that is gone (a rename updates CONTRIBUTING.md and LAYERS)."""
    gone = sorted(set(LAYER) - set(MODULES))
    assert not gone, f'LAYERS names no module of {ROOT}: {gone} (CONTRIBUTING.md, "Layers")'


def test_no_module_in_two_layers() -> None:
    names = [name for names in LAYERS.values() for name in names]
    assert len(names) == len(set(names))


@pytest.mark.parametrize("name", sorted(MODULES))
def test_imports_only_lower_layers(name: str) -> None:
    """Every import of the module, wherever it stands, is of a module of a lower layer."""
    assert name in LAYER, (
        f"{ROOT}/{MODULES[name].relative_to(_package_dir())} has no layer: give it one in "
        'CONTRIBUTING.md ("Layers") and in LAYERS of this test'
    )
    wrong = [
        f"line {line}: imports {target} (layer {LAYER.get(target, 'none')})"
        for line, target in imports(name)
        if LAYER.get(target, LAYER[name]) >= LAYER[name]
    ]
    assert not wrong, (
        f"{name} (layer {LAYER[name]}) may import only lower layers "
        f'(CONTRIBUTING.md, "Layers"): {wrong}'
    )


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("_cli", {ROOT, "_serve", "_dialects.sqlite"}),  # __version__; in a function
        ("_dialects", {"_dialects.base", "errors"}),  # under TYPE_CHECKING; from ..errors
        ("_dialects.postgres", {"_dialects.base", "_json", "errors"}),  # .base and ..x
        ("_service", {"_dialects.layout", "_dialects.base", "_migrations"}),
        ("asgi", {ROOT, "rest"}),  # from . import __version__, rest
        ("adk", {ROOT, "_adk_compat"}),  # import adk_sessions; from . import _adk_compat
        ("_serve", {ROOT, "asgi"}),  # from . import connect (in a function)
    ],
)
def test_imports_are_seen(name: str, expected: set[str]) -> None:
    """The scan resolves every form of import the package uses to the right module."""
    assert expected <= {target for _, target in imports(name)}
