"""Importing modelmeta does nothing: no broker, no logging set-up, no cycle in the import graph."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.support import ROOT, run_probe

PACKAGES = ("services", "shared")

# Run in a fresh interpreter: what one import sets up must not hide behind another's.
PROBE = """
import importlib, json, logging, sys
import dramatiq, dramatiq.broker, dramatiq.message, structlog

importlib.import_module(sys.argv[1])
problems = []
if dramatiq.broker.global_broker is not None:
    problems.append(f"a dramatiq broker was built: {dramatiq.broker.global_broker!r}")
if type(dramatiq.message.global_encoder) is not dramatiq.JSONEncoder:
    problems.append(f"dramatiq's encoder was set: {dramatiq.message.global_encoder!r}")
if logging.getLogger().handlers:
    problems.append(f"the root logger has handlers: {logging.getLogger().handlers!r}")
if structlog.is_configured():
    problems.append("structlog was configured")
worker = sorted(m for m in sys.modules if m.startswith("services.worker"))
if worker:
    problems.append(f"the worker's modules were imported: {worker}")
print(json.dumps(problems))
"""


@pytest.mark.parametrize("module", ["services.api.main", "services.scheduler.main", "services.cli"])
def test_importing_a_process_module_builds_nothing(module: str) -> None:
    assert run_probe(PROBE, module) == []


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _top_level_statements(body: list[ast.stmt]) -> list[ast.stmt]:
    """The statements run when the module is imported: not function bodies nor TYPE_CHECKING blocks."""
    out: list[ast.stmt] = []
    for node in body:
        out.append(node)
        if isinstance(node, ast.If):
            if not (isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING"):
                out += _top_level_statements(node.body) + _top_level_statements(node.orelse)
        elif isinstance(node, ast.Try):
            for block in (node.body, node.orelse, node.finalbody, *(h.body for h in node.handlers)):
                out += _top_level_statements(block)
        elif isinstance(node, (ast.With, ast.ClassDef)):
            out += _top_level_statements(node.body)
    return out


def _imports(module: str, is_package: bool, tree: ast.Module, known: set[str]) -> set[str]:
    """The modules of `known` that `module` imports at module level."""
    found: set[str] = set()
    for node in _top_level_statements(tree.body):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            package = module if is_package else module.rpartition(".")[0]
            for _ in range(node.level - 1):
                package = package.rpartition(".")[0]
            base = ".".join(p for p in (package if node.level else "", node.module or "") if p)
            for alias in node.names:
                found.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base)
    return found & known


def import_graph(root: Path = ROOT) -> dict[str, set[str]]:
    """Module -> the modules of services/ and shared/ it imports at module level."""
    files = {_module_name(p): p for pkg in PACKAGES for p in (root / pkg).rglob("*.py")}
    known = set(files)
    return {
        name: _imports(name, path.name == "__init__.py", ast.parse(path.read_text()), known) - {name}
        for name, path in files.items()
    }


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of the graph as a path that ends where it starts, or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_the_import_graph_has_no_cycle() -> None:
    graph = import_graph()
    # The graph is the real one: the worker's modules and their imports are in it.
    assert "services.worker.middleware" in graph["services.worker.broker"]
    assert "shared.db.runs" in graph["shared.refresh"]
    cycle = find_cycle(graph)
    assert cycle is None, " -> ".join(cycle or [])


def test_find_cycle_finds_one() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) is None
