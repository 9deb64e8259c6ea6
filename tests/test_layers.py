"""The module layers of docs/architecture.md, checked on every import of every module.

Each module of retab_cli belongs to one layer; it may import its own layer and the
layers below, never one above. Imports inside functions and under TYPE_CHECKING count
too: a layer is about what a module knows, not only what it loads at start-up. The
emulator is an island: it imports only the foundation, and only the app imports it.
A module missing from the table fails the test, so a new module gets a place.
"""

from __future__ import annotations

import ast
import fnmatch
import functools
from collections.abc import Iterable, Mapping
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "retab_cli"

# Lowest first. A pattern ending in `.*` takes the package's submodules too, except
# those another layer names exactly.
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("foundation", ("retab_cli", "retab_cli.errors", "retab_cli.statuses", "retab_cli.parsing",
                    "retab_cli.urls", "retab_cli.models", "retab_cli.text")),
    ("transport", ("retab_cli.settings", "retab_cli.client", "retab_cli.budget",
                   "retab_cli.connect", "retab_cli.exchange_log")),
    ("engines", ("retab_cli.watch", "retab_cli.sweep", "retab_cli.paging", "retab_cli.bulk",
                 "retab_cli.chunks", "retab_cli.documents", "retab_cli.uploads", "retab_cli.creating",
                 "retab_cli.recent", "retab_cli.running", "retab_cli.batch",
                 "retab_cli.batch.*")),
    ("render", ("retab_cli.render", "retab_cli.render.*")),
    ("ui", ("retab_cli.session", "retab_cli.watch_ui", "retab_cli.batch.ui",
            "retab_cli.batch.report_output")),
    ("commands", ("retab_cli.commands", "retab_cli.commands.*", "retab_cli.fastparse")),
    ("app", ("retab_cli.app", "retab_cli.__main__")),
]
ISLAND = ("emulator", ("retab_cli.emulator", "retab_cli.emulator.*"))
ISLAND_MAY_IMPORT = "foundation"
ISLAND_IMPORTED_BY = ("retab_cli.app",)

# Third-party packages kept to one part of the tree (ruff's banned-api says the same
# for httpx, rich and typer where its per-directory settings can).
CONFINED = {
    "httpx": ("retab_cli.client", "retab_cli.uploads", "retab_cli.emulator.*"),
    "rich": ("retab_cli.render.*",),
    "typer": ("retab_cli.commands.*", "retab_cli.fastparse", "retab_cli.app",
              "retab_cli.emulator.cli"),
    "pydantic": ("retab_cli.models", "retab_cli.emulator.*"),
    "fastapi": ("retab_cli.emulator.*",),
    "starlette": ("retab_cli.emulator.*",),
    "uvicorn": ("retab_cli.emulator.*",),
}


def _matches(module: str, patterns: Iterable[str]) -> bool:
    return any(module == p or fnmatch.fnmatchcase(module, p) for p in patterns)


def layer_of(module: str) -> str | None:
    """The module's layer: a module named exactly wins over a package's `.*` pattern
    (batch.ui drives the renderer, the rest of batch/ is engine)."""
    if _matches(module, ISLAND[1]):
        return ISLAND[0]
    for name, patterns in LAYERS:
        if module in patterns:
            return name
    for name, patterns in LAYERS:
        if _matches(module, patterns):
            return name
    return None


def _rank(layer: str) -> int:
    return [name for name, _ in LAYERS].index(layer)


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(module: str, source: str, known: set[str]) -> set[str]:
    """Every module `source` imports, anywhere in it; `from pkg import sub` names the
    submodule when `pkg.sub` is a known module."""
    package = module if f"{module}.__init__" in known else module.rpartition(".")[0]
    found: set[str] = set()
    for level, base, names in _raw_imports(source):
        if level:
            anchor = package.split(".")[: len(package.split(".")) - level + 1]
            base = ".".join([*anchor, base] if base else anchor)
        found.add(base)
        found.update(f"{base}.{name}" for name in names if f"{base}.{name}" in known)
    return found


@functools.cache
def _raw_imports(source: str) -> tuple[tuple[int, str, tuple[str, ...]], ...]:
    """(relative level, module, names) of each import statement; `import a, b` as two."""
    found: list[tuple[int, str, tuple[str, ...]]] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.extend((0, alias.name, ()) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            found.append((node.level, node.module or "", tuple(a.name for a in node.names)))
    return tuple(found)


def violations(sources: Mapping[str, str]) -> list[str]:
    """One line per import that breaks the table, for modules given as name -> source."""
    known = set(sources) | {f"{m}.__init__" for m in sources}
    problems = []
    for module, source in sorted(sources.items()):
        layer = layer_of(module)
        if layer is None:
            problems.append(f"{module}: not in the layer table (tests/test_layers.py)")
            continue
        for target in sorted(imports_of(module, source, known)):
            problem = _check(module, layer, target)
            if problem:
                problems.append(f"{module} imports {target}: {problem}")
    return problems


def _check(module: str, layer: str, target: str) -> str | None:
    top = target.split(".")[0]
    if top in CONFINED and not _matches(module, CONFINED[top]):
        return f"{top} is confined to {', '.join(CONFINED[top])}"
    if top != "retab_cli":
        return None
    other = layer_of(target)
    if other is None:
        return "not in the layer table"
    if other == ISLAND[0] or layer == ISLAND[0]:
        return _check_island(module, layer, other)
    if _rank(other) > _rank(layer):
        return f"{layer} may not import {other} (a higher layer)"
    return None


def _check_island(module: str, layer: str, other: str) -> str | None:
    if layer == other:
        return None
    if layer == ISLAND[0]:
        return None if other == ISLAND_MAY_IMPORT else f"the emulator may import only the {ISLAND_MAY_IMPORT}"
    return None if module in ISLAND_IMPORTED_BY else "only the app may import the emulator"


@functools.cache
def _read_package() -> tuple[tuple[str, str], ...]:
    return tuple((module_name(path), path.read_text(encoding="utf-8"))
                 for path in sorted(PACKAGE.rglob("*.py")))


def package_sources() -> dict[str, str]:
    return dict(_read_package())


def test_every_module_keeps_to_its_layer() -> None:
    assert violations(package_sources()) == []


def test_the_table_places_the_engines_and_the_boundary() -> None:
    assert layer_of("retab_cli.paging") == "engines"
    assert layer_of("retab_cli.render.detail") == "render"
    assert layer_of("retab_cli.session") == "ui"
    assert layer_of("retab_cli.commands.get") == "commands"
    assert layer_of("retab_cli.emulator.store") == "emulator"
    assert layer_of("retab_cli.batch.pipeline") == "engines"
    assert layer_of("retab_cli.batch.ui") == "ui"


# ---- the checker catches what it should (planted violations) ---------------------------


@pytest.mark.parametrize(("module", "source", "expected"), [
    ("retab_cli.paging", "from retab_cli.render import Renderer\n",
     "retab_cli.paging imports retab_cli.render: engines may not import render (a higher layer)"),
    ("retab_cli.bulk", "def f():\n    from retab_cli.session import Env\n",
     "retab_cli.bulk imports retab_cli.session: engines may not import ui (a higher layer)"),
    ("retab_cli.render.lists",
     "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from retab_cli.commands import get\n",
     "retab_cli.render.lists imports retab_cli.commands: render may not import commands "
     "(a higher layer)"),
    ("retab_cli.chunks", "import typer\n",
     "retab_cli.chunks imports typer: typer is confined to retab_cli.commands.*, "
     "retab_cli.fastparse, retab_cli.app, retab_cli.emulator.cli"),
    ("retab_cli.commands.get", "import httpx\n",
     "retab_cli.commands.get imports httpx: httpx is confined to retab_cli.client, "
     "retab_cli.uploads, retab_cli.emulator.*"),
    ("retab_cli.session", "from retab_cli.emulator import store\n",
     "retab_cli.session imports retab_cli.emulator: only the app may import the emulator"),
    ("retab_cli.emulator.store", "from retab_cli import client\n",
     "retab_cli.emulator.store imports retab_cli.client: the emulator may import only the "
     "foundation"),
    ("retab_cli.gadget", "import os\n",
     "retab_cli.gadget: not in the layer table (tests/test_layers.py)"),
])
def test_a_planted_violation_is_caught(module: str, source: str, expected: str) -> None:
    sources = {**package_sources(), module: source}
    assert expected in violations(sources)


def test_imports_downwards_and_relative_ones_pass() -> None:
    sources = {**package_sources(),
               "retab_cli.render.lists": "from . import cells\nfrom retab_cli import errors\n",
               "retab_cli.commands.get": "from retab_cli.watch import check_once\n"}
    assert violations(sources) == []
    assert imports_of("retab_cli.render.lists", sources["retab_cli.render.lists"],
                      set(sources)) >= {"retab_cli.render", "retab_cli.render.cells",
                                        "retab_cli.errors"}
