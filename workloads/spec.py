"""Parsing of dataset spec strings (the `--dataset` value) and of their options.

    NAME[:key=value,key=value]        a built-in set or generator, e.g.
                                      random:input=lognormal(512,128,32,2048),output=uniform(64,256)
    PATH[?key=value&key=value]        a local file, e.g. data.parquet?prompt=question&max_tokens=256
    hf:NAME[?key=value&...]           a Hugging Face hub dataset (needs the hub)

Option lists split on top-level `,` and `&` (commas inside parentheses belong to the value).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from workloads.errors import WorkloadError
from workloads.lengths import LengthDist, parse_length


@dataclass(frozen=True, slots=True)
class Spec:
    kind: str  # "builtin" | "file" | "hf"
    target: str  # the built-in name, the file path, or the hub dataset name
    options: dict[str, str] = field(default_factory=dict)
    text: str = ""


def split_top(text: str, seps: str = ",&") -> list[str]:
    """Split on separators outside parentheses; empty items are dropped."""
    items: list[str] = []
    depth, start = 0, 0
    for i, ch in enumerate(text):
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth = max(0, depth - 1)
        elif ch in seps and depth == 0:
            items.append(text[start:i])
            start = i + 1
    items.append(text[start:])
    return [s.strip() for s in items if s.strip()]


def parse_options(text: str, where: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in split_top(text):
        key, eq, value = item.partition("=")
        key = key.strip().replace("-", "_")
        if not eq or not key:
            raise WorkloadError(f"{where}: option '{item}' is not key=value")
        if key in out:
            raise WorkloadError(f"{where}: option '{key}' given twice")
        out[key] = value.strip()
    return out


def parse_spec(text: str, builtins: tuple[str, ...]) -> Spec:
    raw = (text or "").strip()
    if not raw:
        raise WorkloadError(
            f"empty dataset: expected a built-in name ({', '.join(builtins)}), a file path or hf:NAME"
        )
    if raw.startswith("hf:"):
        name, _, query = raw[3:].partition("?")
        if not name.strip():
            raise WorkloadError(f"{raw}: expected hf:OWNER/NAME[?prompt=COLUMN&split=train]")
        return Spec("hf", name.strip(), parse_options(query, f"hf:{name}"), raw)
    head, _, rest = raw.partition(":")
    if head in builtins:
        return Spec("builtin", head, parse_options(rest, head), raw)
    path, _, query = raw.partition("?")
    return Spec("file", path, parse_options(query, path), raw)


class Options:
    """Typed, validated access to a spec's options; `done()` rejects the ones nobody asked for."""

    def __init__(self, options: dict[str, str], where: str) -> None:
        self._opts = dict(options)
        self._asked: list[str] = []
        self.where = where

    def _take(self, key: str) -> str | None:
        self._asked.append(key)
        return self._opts.pop(key, None)

    def has(self, key: str) -> bool:
        return key in self._opts

    def text(self, key: str, default: str | None = None) -> str | None:
        value = self._take(key)
        return default if value is None or value == "" else value

    def integer(self, key: str, default: int, lo: int = 1, hi: int | None = None) -> int:
        value = self._take(key)
        if value is None:
            return default
        try:
            n = int(value)
        except ValueError:
            raise WorkloadError(f"{self.where}: {key}={value} is not a whole number") from None
        if n < lo or (hi is not None and n > hi):
            limit = f"between {lo} and {hi}" if hi is not None else f"at least {lo}"
            raise WorkloadError(f"{self.where}: {key}={value} must be {limit}")
        return n

    def number(self, key: str, default: float, lo: float = 0.0) -> float:
        value = self._take(key)
        if value is None:
            return default
        try:
            x = float(value)
        except ValueError:
            raise WorkloadError(f"{self.where}: {key}={value} is not a number") from None
        if not x >= lo:
            raise WorkloadError(f"{self.where}: {key}={value} must be at least {lo:g}")
        return x

    def length(self, key: str, default: str) -> LengthDist:
        value = self._take(key)
        return parse_length(default if value is None else value, f"{self.where}: {key}")

    def choice(self, key: str, default: str, choices: tuple[str, ...]) -> str:
        value = self._take(key)
        if value is None:
            return default
        if value not in choices:
            raise WorkloadError(f"{self.where}: {key}={value} is not one of {', '.join(choices)}")
        return value

    def done(self) -> None:
        if self._opts:
            unknown = ", ".join(sorted(self._opts))
            allowed = ", ".join(dict.fromkeys(self._asked)) or "none"
            raise WorkloadError(f"{self.where}: unknown option {unknown} (expected {allowed})")
