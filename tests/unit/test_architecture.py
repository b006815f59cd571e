"""The layout holds: no import cycle between packages, Ray only at the edge, each package
importing only what docs/architecture.md allows, and the environment read in config.py only.

Imports are read from the source with ``ast`` (``if TYPE_CHECKING:`` blocks aside), so the
checks see every import, including ones inside functions.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "src" / "computeinfra"
PACKAGES = {p.name for p in SRC.iterdir() if (p / "__init__.py").is_file()}
# Top-level modules everyone may use: the wire format, settings, errors, paths, statistics.
BASE = {"protocol", "config", "errors", "paths", "metrics", "schemas"}
# What each package may import besides BASE (docs/architecture.md draws the same).
ALLOWED: dict[str, set[str]] = {
    "kafka": set(),
    "tasks": set(),
    "analyzer": {"kafka"},
    "block": {"kafka", "tasks", "analyzer"},
    "cluster": {"kafka", "tasks", "analyzer", "block"},
    "client": {"kafka"},
    "web": {"kafka", "tasks", "client"},
    "runtime": {"kafka", "tasks", "analyzer", "block", "cluster", "web"},
    "testing": {"kafka", "cluster"},
    "cli": {"kafka", "tasks", "client", "cluster", "runtime"},
}
RAY_ALLOWED = {"cluster", "runtime"}


def _type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.AST, module: str) -> Iterator[str]:
    """Every module ``tree`` imports, resolved to absolute names."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and _type_checking(node):
            for child in node.orelse:  # the else: branch runs; read it as the module body
                yield from _imports(ast.Module(body=[child], type_ignores=[]), module)
            continue
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")[: -node.level]
                yield ".".join([*base, node.module] if node.module else base)
            elif node.module:
                yield node.module
        yield from _imports(node, module)


def _modules() -> Iterator[tuple[str, str, set[str]]]:
    """(package or top-level module, dotted module name, the modules it imports)."""
    for path in sorted(SRC.rglob("*.py")):
        parts = path.relative_to(SRC.parent).with_suffix("").parts
        dotted = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        if parts[-1] == "__init__":
            dotted += ".__init__"
        owner = parts[1] if len(parts) > 2 else parts[-1]
        yield owner, dotted, set(_imports(ast.parse(path.read_text()), dotted))


def _owner(imported: str) -> str | None:
    parts = imported.split(".")
    return parts[1] if parts[0] == "computeinfra" and len(parts) > 1 else None


def _graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for owner, _dotted, imported in _modules():
        targets = {_owner(name) for name in imported} - {None, owner}
        graph.setdefault(owner, set()).update(t for t in targets if t is not None)
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle between packages, or None (depth-first search)."""
    state: dict[str, int] = {}
    trail: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        trail.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*trail[trail.index(nxt) :], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        state[node] = 2
        trail.pop()
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_the_cycle_finder_finds_cycles() -> None:
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_cycle_between_packages() -> None:
    assert _cycle(_graph()) is None


def test_each_package_imports_only_what_it_may() -> None:
    wrong = [
        f"{dotted} imports {name}"
        for owner, dotted, imported in _modules()
        if owner in ALLOWED
        for name in imported
        if (target := _owner(name)) is not None
        and target != owner
        and target not in BASE | {"__init__"}
        and target not in ALLOWED[owner]
    ]
    assert wrong == []
    assert set(ALLOWED) == PACKAGES, "a new package needs its line in ALLOWED"


def test_ray_only_in_the_cluster_and_runtime_packages() -> None:
    wrong = [
        f"{dotted} imports {name}"
        for owner, dotted, imported in _modules()
        for name in imported
        if name.split(".")[0] == "ray" and owner not in RAY_ALLOWED
    ]
    assert wrong == []


ENVIRONMENT = {"environ", "getenv", "environb"}


def _environment_reads(tree: ast.AST) -> Iterator[int]:
    for node in ast.walk(tree):
        os_attribute = (
            isinstance(node, ast.Attribute)
            and node.attr in ENVIRONMENT
            and isinstance(node.value, ast.Name)
            and node.value.id == "os"
        )
        from_os = (
            isinstance(node, ast.ImportFrom)
            and node.module == "os"
            and any(a.name in ENVIRONMENT for a in node.names)
        )
        if os_attribute or from_os:
            yield getattr(node, "lineno", 0)


def test_the_environment_is_read_in_config_only() -> None:
    reads = [
        f"{path.relative_to(SRC)}:{line}"
        for path in sorted(SRC.rglob("*.py"))
        if path != SRC / "config.py"
        for line in _environment_reads(ast.parse(path.read_text()))
    ]
    assert reads == []


def test_every_setting_is_in_the_configuration_table() -> None:
    table = (ROOT / "docs" / "configuration.md").read_text()
    config = (SRC / "config.py").read_text()
    names = {
        node.value
        for node in ast.walk(ast.parse(config))
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and node.value.startswith(("COMPUTEINFRA_", "RAY_ADDRESS"))
    }
    assert len(names) > 30
    assert sorted(n for n in names if f"`{n}`" not in table) == []


@pytest.mark.slow
def test_the_block_and_analyzer_tests_pass_with_ray_unimportable() -> None:
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "tests.without_ray", "tests/unit/block"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert " passed" in run.stdout
