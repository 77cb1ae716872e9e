"""Reading the matrix file so that every mistake names its place: YAML with line numbers, typed getters.

An error message that says `arena.yaml:14: targets[1].lanch: unknown key` is found at a glance;
one that says only `unknown key 'lanch'` sends the user searching.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import yaml

DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*(ms|s|m|h)?\s*$")
UNIT_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


class MatrixError(ValueError):
    """A mistake in the matrix: one line naming the place (`file:line: key: what is expected`)."""


class LineDict(dict):
    """A mapping that knows the (1-based) line of itself and of each key."""

    def __init__(self, data: Any = (), line: int | None = None, lines: dict | None = None) -> None:
        super().__init__(data)
        self.line = line
        self.lines = lines or {}

    def line_of(self, key: Any) -> int | None:
        return self.lines.get(key, self.line)


class LineList(list):
    """A list that knows the (1-based) line of itself and of each item."""

    def __init__(self, data: Any = (), line: int | None = None, lines: list | None = None) -> None:
        super().__init__(data)
        self.line = line
        self.lines = lines or []

    def line_of(self, index: Any) -> int | None:
        if isinstance(index, int) and 0 <= index < len(self.lines):
            return self.lines[index]
        return self.line


class _Loader(yaml.SafeLoader):
    pass


def _mapping(loader: _Loader, node: yaml.MappingNode) -> LineDict:
    loader.flatten_mapping(node)
    out = LineDict(line=node.start_mark.line + 1)
    for knode, vnode in node.value:
        key = loader.construct_object(knode, deep=True)
        if not isinstance(key, str | int | float | bool):
            raise yaml.constructor.ConstructorError(
                None, None, "a key must be a plain value", knode.start_mark
            )
        if key in out:
            raise yaml.constructor.ConstructorError(None, None, f"duplicate key '{key}'", knode.start_mark)
        out[key] = loader.construct_object(vnode, deep=True)
        out.lines[key] = knode.start_mark.line + 1
    return out


def _sequence(loader: _Loader, node: yaml.SequenceNode) -> LineList:
    items = [loader.construct_object(n, deep=True) for n in node.value]
    return LineList(items, node.start_mark.line + 1, [n.start_mark.line + 1 for n in node.value])


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping)
_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _sequence)


def load_yaml(path: Path, error: type[Exception]) -> LineDict:
    """The file's top-level mapping; any problem is `error` with one line naming the file (and line)."""
    try:
        text = path.read_text()
    except OSError as e:
        raise error(f"{path}: cannot read ({e.strerror or e})") from None
    try:
        data = yaml.load(text, Loader=_Loader)  # a SafeLoader subclass
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise error(f"{where}: not valid YAML ({problem})") from None
    if not isinstance(data, LineDict):
        raise error(f"{path}: expected a mapping (name:, targets:, datasets:, shapes:, ...) at the top level")
    return data


def parse_duration(value: Any, where: str) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
        return float(value)
    m = DURATION_RE.match(str(value)) if isinstance(value, str) else None
    if not m or float(m.group(1)) <= 0:
        raise MatrixError(f"{where}: '{value}' is not a duration (expected e.g. 45s, 500ms, 2m)")
    return float(m.group(1)) * UNIT_S[m.group(2)]


class Ctx:
    """Names places in the file: `arena.yaml:12: targets[1].launch`."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def at(self, node: Any, key: str | int | None, name: str) -> str:
        line = node.line_of(key) if hasattr(node, "line_of") else getattr(node, "line", None)
        return f"{self.path}:{line}: {name}" if line else f"{self.path}: {name}"

    def keys(self, node: Any, allowed: tuple[str, ...], name: str) -> None:
        if not isinstance(node, dict):
            raise MatrixError(f"{self.at(node, None, name)}: expected a mapping")
        for k in node:
            if k not in allowed:
                raise MatrixError(
                    f"{self.at(node, k, f'{name}.{k}' if name else str(k))}: unknown key (known: {', '.join(allowed)})"
                )


def get_str(ctx: Ctx, node: dict, key: str, name: str, default: str | None = None) -> str | None:
    v = node.get(key, default)
    if v is not None and not isinstance(v, str):
        raise MatrixError(f"{ctx.at(node, key, name)}: expected a string, got {v!r}")
    return v


def get_int(ctx: Ctx, node: dict, key: str, name: str, default: int, low: int) -> int:
    v = node.get(key, default)
    if isinstance(v, bool) or not isinstance(v, int) or v < low:
        raise MatrixError(f"{ctx.at(node, key, name)}: expected a whole number ≥ {low}, got {v!r}")
    return v


def get_launched(ctx: Ctx, node: dict, name: str) -> tuple[dict, str, float]:
    """A launched process's `env` (NAME: value), `health` path and `startup_timeout` (seconds): a
    target's and its replicas' alike."""
    env = node.get("env") or {}
    if not isinstance(env, dict) or not all(isinstance(v, str | int | float) for v in env.values()):
        raise MatrixError(f"{ctx.at(node, 'env', name + '.env')}: expected a mapping of NAME: value")
    health = get_str(ctx, node, "health", name + ".health", "/health") or "/health"
    timeout = parse_duration(
        node.get("startup_timeout", "120s"), ctx.at(node, "startup_timeout", name + ".startup_timeout")
    )
    return env, health, timeout


def get_list(ctx: Ctx, node: dict, key: str, name: str, required: bool) -> list:
    v = node.get(key)
    if v is None:
        if required:
            raise MatrixError(f"{ctx.at(node, None, name)}: missing (expected a list)")
        return []
    if not isinstance(v, list) or (required and not v):
        raise MatrixError(f"{ctx.at(node, key, name)}: expected a non-empty list")
    return v


def flags(ctx: Ctx, node: dict, table: dict[str, str], name: str) -> list[str]:
    """Mapping entries → command-line flags; `args` (string or list) is appended verbatim."""
    out: list[str] = []
    for key, value in node.items():
        if key not in table:
            continue
        where = ctx.at(node, key, f"{name}.{key}")
        if isinstance(value, bool):
            if key != "ignore_eos":
                raise MatrixError(f"{where}: expected a value, got {value!r}")
            out += [table[key]] if value else []
        elif isinstance(value, str | int | float):
            out += [table[key], str(value)]
        else:
            raise MatrixError(f"{where}: expected a single value, got {value!r}")
    args = node.get("args")
    if isinstance(args, str):
        out += shlex.split(args)
    elif isinstance(args, list) and all(isinstance(a, str | int | float) for a in args):
        out += [str(a) for a in args]
    elif args is not None:
        raise MatrixError(f"{ctx.at(node, 'args', name + '.args')}: expected a string or a list of strings")
    return out
