"""Small modules that say what they hold: no module over 400 lines, no function over 80 — except the
argument tables (a function that only registers command-line options reads as a table, not logic).

Checked over every package of ours, the locustfile, the benches and the scripts, so a module that
outgrows its room is split when it happens, not in a later clean-up.
"""

from __future__ import annotations

import ast
from pathlib import Path

from tests.conftest import ROOT

PLACES = (
    "core",
    "workloads",
    "shapes",
    "loadgen",
    "users",
    "analysis",
    "arena",
    "simserver",
    "bench",
    "scripts",
)
MODULE_LINES, FUNCTION_LINES = 400, 80
# An argument table: a function made of option declarations (`add_argument`, `add_option` calls).
DECLARES = {"add_argument", "add_option"}


def sources() -> list[Path]:
    return [ROOT / "locustfile.py", *(p for place in PLACES for p in sorted((ROOT / place).rglob("*.py")))]


def is_argument_table(node: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    calls = [n for n in ast.walk(node) if isinstance(n, ast.Call)]
    names = [c.func.attr if isinstance(c.func, ast.Attribute) else getattr(c.func, "id", "") for c in calls]
    declares = sum(n in DECLARES for n in names)
    return declares >= 3 and declares * 2 >= len(calls)


def test_modules_and_functions_stay_small() -> None:
    too_long = []
    for path in sources():
        text = path.read_text()
        if (n := text.count("\n")) > MODULE_LINES:
            too_long.append(f"{path.relative_to(ROOT)}: {n} lines")
        functions = [
            n for n in ast.walk(ast.parse(text)) if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)
        ]
        for node in functions:
            if not is_argument_table(node) and (n := node.end_lineno - node.lineno + 1) > FUNCTION_LINES:
                too_long.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name}: {n} lines")
    assert not too_long, "\n".join(too_long)
