"""YAML with line numbers: mappings and lists remember where they and their items are in the file.

An error message that says `arena.yaml:14: targets[1].lanch: unknown key` is found at a glance;
one that says only `unknown key 'lanch'` sends the user searching.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml


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
