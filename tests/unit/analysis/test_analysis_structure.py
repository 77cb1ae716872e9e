"""The package's shape, checked from the source: import directions, no cycles, sizes.

- computing never imports rendering: `analysis.render` is not reached (directly or not) from
  analysis.summary, metrics, steps, load, itl, server, engines or compare;
- analysis/ never imports the load path or the arena (loadgen, users, shapes, arena);
- no import cycle anywhere in analysis/ (imports inside functions count too);
- the arena uses the analysis only through `analysis.api`;
- no module over 400 lines, no function over 80 lines, in analysis/ and arena/.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
COMPUTING = (
    "summary", "metrics", "steps", "windows", "load", "itl", "server", "engines", "compare", "groups", "models",
    "modelresults", "lora", "replicas",
)  # fmt: skip


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> set[str]:
    """Every module `path` imports, anywhere in the file (`from a import b` counts `a.b` when that is a module)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module)
            out |= {f"{node.module}.{a.name}" for a in node.names}
    return out


def graph(package: str) -> dict[str, set[str]]:
    """Module → the modules of `package` it imports (only names that are modules)."""
    files = {module_name(p): p for p in (ROOT / package).rglob("*.py")}
    return {m: {i for i in imports(p) if i in files} for m, p in files.items()}


def reachable(g: dict[str, set[str]], start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        for nxt in g.get(todo.pop(), ()):
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


def test_computing_never_imports_rendering() -> None:
    g = graph("analysis")
    for name in COMPUTING:
        reached = reachable(g, f"analysis.{name}")
        assert not {m for m in reached if m.startswith("analysis.render")}, name


def test_analysis_never_imports_the_load_path_or_the_arena() -> None:
    for path in (ROOT / "analysis").rglob("*.py"):
        bad = {m for m in imports(path) if m.split(".")[0] in ("loadgen", "users", "shapes", "arena")}
        assert not bad, f"{path}: {bad}"


def test_no_import_cycle_in_analysis() -> None:
    g = graph("analysis")
    for m in g:
        assert m not in reachable(g, m), f"{m} imports itself through {sorted(reachable(g, m) & set(g))}"


def test_arena_uses_only_the_analysis_api() -> None:
    for path in (ROOT / "arena").rglob("*.py"):
        used = {m for m in imports(path) if m.split(".")[0] == "analysis"}
        assert used <= {"analysis", "analysis.api"} | {f"analysis.api.{x}" for x in ("fmt",)}, (
            f"{path}: {used}"
        )
        assert "analysis" not in used or "from analysis import api" in path.read_text(), path
