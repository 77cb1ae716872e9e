"""Real source code as material for the `code` and `agentic` sets: modules of the running Python's stdlib.

Code prompts that carry real files exercise a server (and a tokenizer) the way editors and agents
do, and the standard library is always there, licence-compatible and plausible. The choice of
modules is a fixed list, so the sets are deterministic for a given Python version; the shipped
files record which version wrote them.
"""

from __future__ import annotations

import ast
import sysconfig
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from workloads.errors import WorkloadError

STDLIB = Path(sysconfig.get_paths()["stdlib"])


@dataclass(frozen=True, slots=True)
class Function:
    name: str  # plain name
    qualname: str  # Class.method or function
    lineno: int  # first line of the def (1-based), decorators excluded
    end_lineno: int
    params: tuple[str, ...]  # parameter names, self/cls dropped
    signature: str  # "def name(a, b=1)"
    has_doc: bool


@dataclass(frozen=True, slots=True)
class SourceFile:
    module: str  # stdlib-relative path, e.g. "json/decoder.py"
    lines: tuple[str, ...]
    functions: tuple[Function, ...]  # candidates for tasks: 4..90 lines, not dunder (except __init__)
    outline: tuple[str, ...]  # repo-map lines: classes with a few methods, top-level functions

    @property
    def text(self) -> str:
        return "\n".join(self.lines) + "\n"

    def window(self, start: int, end: int, numbered: bool = True) -> str:
        """Lines start..end (1-based, inclusive), optionally numbered like an editor gutter."""
        start, end = max(1, start), min(len(self.lines), end)
        if not numbered:
            return "\n".join(self.lines[start - 1 : end])
        return "\n".join(f"{n:>5} | {self.lines[n - 1]}" for n in range(start, end + 1))


def _signature(node: ast.FunctionDef | ast.AsyncFunctionDef) -> str:
    prefix = "async def" if isinstance(node, ast.AsyncFunctionDef) else "def"
    return f"{prefix} {node.name}({ast.unparse(node.args)})"


def _params(node: ast.FunctionDef | ast.AsyncFunctionDef) -> tuple[str, ...]:
    a = node.args
    names = [p.arg for p in (*a.posonlyargs, *a.args, *a.kwonlyargs)]
    return tuple(n for n in names if n not in ("self", "cls"))


@lru_cache(maxsize=64)
def source_file(module: str) -> SourceFile:
    path = STDLIB / module
    try:
        text = path.read_text(encoding="utf-8")
    except OSError:
        raise WorkloadError(
            f"{path}: stdlib source not found (the code/agentic generators read it)"
        ) from None
    tree = ast.parse(text)
    functions: list[Function] = []
    outline: list[str] = []

    def consider(node: ast.AST, owner: str | None) -> None:
        if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            return
        dunder = node.name.startswith("__") and node.name != "__init__"
        size = (node.end_lineno or node.lineno) - node.lineno + 1
        if not dunder and 4 <= size <= 90:
            functions.append(
                Function(
                    node.name,
                    f"{owner}.{node.name}" if owner else node.name,
                    node.lineno,
                    node.end_lineno or node.lineno,
                    _params(node),
                    _signature(node),
                    ast.get_docstring(node) is not None,
                )
            )

    for node in tree.body:
        if isinstance(node, ast.ClassDef):
            outline.append(f"class {node.name}:")
            methods = [m for m in node.body if isinstance(m, ast.FunctionDef | ast.AsyncFunctionDef)]
            public = [m for m in methods if not m.name.startswith("_") or m.name == "__init__"]
            for m in public[:6]:
                outline.append(f"    {_signature(m)}")
            if len(public) > 6:
                outline.append(f"    ... {len(public) - 6} more methods")
            for m in methods:
                consider(m, node.name)
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            if not node.name.startswith("_"):
                outline.append(_signature(node))
            consider(node, None)
    return SourceFile(module, tuple(text.splitlines()), tuple(functions), tuple(outline))
