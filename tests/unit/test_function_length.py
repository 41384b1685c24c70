"""No function in services/ or shared/ is longer than 60 lines, except declarative tables.

A function's length runs from its `def` line to its last line (docstring, comments and blank
lines included, decorators not); a nested function counts inside its parent and on its own.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator

from tests.support import ROOT

MAX_LINES = 60
PACKAGES = ("services", "shared")

#: Functions that are a table rather than logic, and may be longer: "path::qualified name" -> why.
#: Only declarative ones belong here (one statement per entry, no branching); split anything else.
DECLARATIVE: dict[str, str] = {
    # One add_parser/add_argument per command and option: the CLI's table of commands.
    "services/cli.py::build_parser": "argparse parser",
}


def functions() -> Iterator[tuple[str, int]]:
    """("path::qualified name", length in lines) for every function in services/ and shared/."""
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            rel = path.relative_to(ROOT).as_posix()
            yield from _walk(ast.parse(path.read_text(), rel), f"{rel}::")


def _walk(node: ast.AST, prefix: str) -> Iterator[tuple[str, int]]:
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
            name = prefix + child.name
            yield name, (child.end_lineno or child.lineno) - child.lineno + 1
            yield from _walk(child, name + ".")
        elif isinstance(child, ast.ClassDef):
            yield from _walk(child, prefix + child.name + ".")
        else:
            yield from _walk(child, prefix)


def test_no_function_is_longer_than_60_lines() -> None:
    found = dict(functions())
    assert len(found) > 100  # the walk sees the code
    too_long = {name: n for name, n in found.items() if n > MAX_LINES and name not in DECLARATIVE}
    assert not too_long, "over 60 lines (split them into their steps): " + ", ".join(
        f"{name} ({n})" for name, n in sorted(too_long.items(), key=lambda kv: -kv[1])
    )


def test_the_allowlist_names_functions_that_exist() -> None:
    found = dict(functions())
    assert not set(DECLARATIVE) - set(found), "stale entries: " + ", ".join(sorted(set(DECLARATIVE) - set(found)))
