"""The layout's rules (docs/architecture.md): each package imports only the packages below
it, and runtime functions are short enough to read at once."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "simlib"
BASE = {"config", "types", "files", "weights"}
"""Modules every layer may use: settings, small data types, atomic files, the weights table."""
BELOW: dict[str, set[str]] = {
    "audio": set(),
    "base": set(),
    "catalog": {"audio"},
    "identify": {"audio", "catalog"},
    "similar": {"audio", "catalog"},
    "library": {"audio", "catalog", "identify", "similar"},
    "train": {"audio", "catalog", "identify", "similar"},
    "api": {"audio", "catalog", "identify", "similar", "library", "train"},
    "cli": {"api"},
    "example_library": {"audio"},
    "package": {"api", "identify", "similar"},  # the task packages only to keep the API names
    "__main__": {"cli"},
}
"""What each layer may import besides itself and BASE (`package` is simlib/__init__.py)."""
LONGEST_FUNCTION = 80


def layer(module: str) -> str:
    """The layer of `simlib.x.y`: its first part below simlib, BASE modules as "base"."""
    parts = module.split(".")
    if parts == ["simlib"]:
        return "package"
    return "base" if parts[1] in BASE else parts[1]


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def is_module(name: str) -> bool:
    path = PACKAGE.parent / name.replace(".", "/")
    return path.is_dir() or path.with_suffix(".py").is_file()


def imports(source: str) -> set[str]:
    """Every simlib module `source` imports, wherever in the file (functions included)."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == "simlib"}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module.split(".")[0] != "simlib":
                continue
            for alias in node.names:  # `from simlib import audio` names a module
                name = f"{node.module}.{alias.name}"
                found.add(name if is_module(name) else node.module)
    return found


def violations(module: str, source: str) -> list[str]:
    """The imports of `source`, as module `module`, that its layer may not make."""
    own = layer(module)
    allowed = BELOW[own] | {own, "base"}
    return sorted(m for m in imports(source) if m != "simlib" and layer(m) not in allowed)


SOURCES = sorted(PACKAGE.rglob("*.py"))


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_a_package_imports_only_packages_below_it(path: Path) -> None:
    module = module_name(path)
    wrong = violations(module, path.read_text(encoding="utf-8"))
    assert not wrong, f"{layer(module)} may not import {wrong}"


def test_the_rules_catch_imports_across_and_upwards() -> None:
    assert violations("simlib.identify.query", "from simlib.similar import query") == [
        "simlib.similar.query"
    ]
    assert violations("simlib.catalog.store", "def f():\n    import simlib.library.sync") == [
        "simlib.library.sync"
    ]
    assert violations("simlib.cli", "from simlib.catalog import Catalog") == ["simlib.catalog"]
    assert violations("simlib.identify.query", "from simlib.catalog import Found") == []


@pytest.mark.parametrize(
    "path",
    [p for p in SOURCES if "train" not in p.relative_to(PACKAGE).parts],
    ids=lambda p: str(p.relative_to(PACKAGE)),
)
def test_runtime_functions_are_short(path: Path) -> None:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    long = [
        f"{node.name} ({node.end_lineno - node.lineno + 1} lines)"
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and node.end_lineno - node.lineno + 1 > LONGEST_FUNCTION
    ]
    assert not long, f"longer than {LONGEST_FUNCTION} lines: {long}"


def test_api_functions_keep_their_names_after_the_task_packages_load():
    """`simlib.similar` and `simlib.identify` stay the API functions once the packages of the
    same names have loaded their modules (the import system sets a package on its parent)."""
    code = (
        "import simlib, simlib.similar.query, simlib.identify.query, simlib.library.sync\n"
        "print(callable(simlib.similar), callable(simlib.identify))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["True", "True"]
