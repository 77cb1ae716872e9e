"""What the agent's tools return in the `agentic` set: real code from the session's repository,
plausible pytest / shell output, and unified diffs computed with difflib from the real lines.

Every function takes the session (`Session`) and returns text; randomness comes only from the
session's seeded generator, so a session is a pure function of (seed, index).
"""

from __future__ import annotations

import bisect
import difflib
import json
import random
import re
from dataclasses import dataclass, field
from functools import lru_cache

from workloads.gen.agent_prompt import Repo
from workloads.gen.material import Function, SourceFile, source_file
from workloads.tokens import count_tokens

MAX_READ_LINES = 200


@dataclass(slots=True)
class Session:
    rng: random.Random
    repo: Repo
    module: str
    sf: SourceFile
    f: Function
    kind: str
    symptom: tuple[str, str, str, str] = ("", "", "", "")
    patches: list[str] = field(default_factory=list)
    tests_added: list[str] = field(default_factory=list)
    n_tests: int = 0
    room: int = 1_000_000  # tokens the next tool result and the rest of the session may still use

    @property
    def path(self) -> str:
        return self.repo.path(self.module)

    @property
    def test_path(self) -> str:
        return self.repo.test_path(self.module)

    @property
    def import_name(self) -> str:
        return self.path.removeprefix("src/").removesuffix(".py").replace("/", ".")


def call(name: str, arguments: dict) -> str:
    return f"<tool_call>{json.dumps({'name': name, 'arguments': arguments}, ensure_ascii=False)}</tool_call>"


def result(name: str, body: str) -> str:
    return f'<tool_result name="{name}">\n{body}\n</tool_result>'


_RESULT = re.compile(r'<tool_result name="[^"]*">\n(.*)\n</tool_result>', re.S)


def result_body(text: str) -> str | None:
    """The tool's output inside a `result()` block (what a native tool message carries); None when
    `text` is not one (a human message)."""
    m = _RESULT.fullmatch(text)
    return m.group(1) if m else None


def sample_value(param: str, rng: random.Random) -> str:
    """A plausible literal for a parameter, guessed from its name (used in tests and timeit lines)."""
    p = param.lower()
    if any(k in p for k in ("text", "line", "string", "name", "prefix", "sep", "pattern", "pat", "url", "s")):
        return repr(rng.choice(["hello world", "  indented\n\ttext\n", "a,b,c", "naïve café", "x" * 12]))
    if any(
        k in p for k in ("width", "n", "size", "count", "index", "lo", "hi", "year", "month", "day", "width")
    ):
        return str(rng.choice([0, 1, 3, 12, 80, 2024]))
    if any(k in p for k in ("items", "seq", "data", "iterable", "list", "values", "a", "x")):
        return rng.choice(["[3, 1, 2]", "[]", "[1.5, 2.5, 4.0]", "list(range(10))"])
    if p.startswith(("is_", "use_", "strict", "keep", "drop", "fix")):
        return rng.choice(["True", "False"])
    return "None"


def call_expr(f: Function, rng: random.Random) -> str:
    args = ", ".join(sample_value(p, rng) for p in f.params[:3])
    owner = f.qualname.split(".")[0] + "()." if "." in f.qualname else ""
    return f"{owner}{f.name}({args})"


def test_function(s: Session, suffix: str, rng: random.Random) -> list[str]:
    expr = call_expr(s.f, rng)
    expected = rng.choice(["[1, 2, 3]", "''", "'hello world'", "0", "None", "(1, 2)"])
    lines = [f"def test_{s.f.name.strip('_')}_{suffix}():"]
    if suffix in ("invalid", "none_value", "strict"):
        lines += ["    with pytest.raises((TypeError, ValueError)):", f"        {expr}"]
    else:
        lines += [f"    result = {expr}", f"    assert result == {expected}"]
    return [*lines, ""]


def tests_file(s: Session) -> list[str]:
    """The existing test module of the session's file: imports and a few tests of its functions."""
    rng = random.Random(f"tests:{s.repo.group}:{s.module}")
    public = [f for f in s.sf.functions if not f.name.startswith("_")]
    chosen = sorted(rng.sample(public, min(6, len(public))), key=lambda f: f.lineno) if public else [s.f]
    names = sorted({f.qualname.split(".")[0] for f in chosen})
    lines = ["import pytest", "", f"from {s.import_name} import {', '.join(names)}", "", ""]
    for f in chosen:
        for suffix in rng.sample(["basic", "empty", "roundtrip", "defaults", "unicode"], 2):
            expected = rng.choice(["[1, 2, 3]", "''", "'hello world'", "0", "None", "(1, 2)"])
            lines += [
                f"def test_{f.name.strip('_')}_{suffix}():",
                f"    assert {call_expr(f, rng)} == {expected}",
                "",
                "",
            ]
    return lines[:-1]


def code_lines(s: Session) -> list[int]:
    """Line numbers of the target's real statements (signature and docstring excluded)."""
    lines = [
        n
        for n in range(_body_start(s) + 1, s.f.end_lineno + 1)
        if s.sf.lines[n - 1].strip() and not s.sf.lines[n - 1].strip().startswith("#")
    ]
    return lines or [s.f.lineno]


def param_kind(param: str) -> str:
    """text | number | sequence | other, guessed like sample_value does."""
    v = sample_value(param, random.Random(0))
    return (
        "text"
        if v.startswith("'")
        else "number"
        if v.isdigit()
        else "sequence"
        if v.startswith(("[", "list"))
        else "other"
    )


def numbered(lines: list[str], start: int = 1) -> str:
    return "\n".join(f"{n:>5} | {line}" for n, line in enumerate(lines, start))


def fit_window(sf: SourceFile, start: int, end: int, max_tokens: int, anchor: int) -> tuple[int, int]:
    """Shrink lines start..end until their numbered text fits max_tokens, keeping `anchor` near the top."""
    per_line = _line_tokens(sf.module)
    costs = [per_line[n - 1] + 2 for n in range(start, end + 1)]  # + line number and gutter
    total = sum(costs)
    while total > max_tokens and start < anchor - 2:
        total -= costs.pop(0)
        start += 1
    while total > max_tokens and end > start + 5:
        total -= costs.pop()
        end -= 1
    return start, end


def read_source(s: Session, rng: random.Random) -> tuple[dict, str]:
    start = max(1, s.f.lineno - rng.randint(10, 60))
    end = min(len(s.sf.lines), s.f.end_lineno + rng.randint(30, 120), start + MAX_READ_LINES - 1)
    start, end = fit_window(s.sf, start, end, int(s.room * 0.25), s.f.lineno)
    body = f"{s.path}  (lines {start}-{end} of {len(s.sf.lines)})\n{s.sf.window(start, end)}"
    return {"path": s.path, "start_line": start, "end_line": end}, result("read_file", body)


def read_other(s: Session, rng: random.Random) -> tuple[dict, str]:
    """A second function of the same file: the one that calls the target, else a neighbour."""
    callers = [
        g
        for g in s.sf.functions
        if g != s.f and re.search(rf"\b{re.escape(s.f.name)}\(", s.sf.window(g.lineno, g.end_lineno, False))
    ]
    g = callers[0] if callers else rng.choice([x for x in s.sf.functions if x != s.f] or [s.f])
    end = min(g.end_lineno + 2, g.lineno + MAX_READ_LINES - 1)
    _, end = fit_window(s.sf, g.lineno, end, int(s.room * 0.18), g.lineno)
    body = f"{s.path}  (lines {g.lineno}-{end} of {len(s.sf.lines)})\n{s.sf.window(g.lineno, end)}"
    return {"path": s.path, "start_line": g.lineno, "end_line": end}, result("read_file", body)


def read_tests(s: Session) -> tuple[dict, str]:
    lines = tests_file(s)
    s.n_tests = sum(1 for x in lines if x.startswith("def test_"))
    budget, kept = int(s.room * 0.18), 0
    for i, line in enumerate(lines):
        budget -= count_tokens(line) + 2
        if budget < 0:
            break
        kept = i + 1
    total, lines = len(lines), lines[: max(kept, 6)]
    return {"path": s.test_path, "end_line": len(lines)}, result(
        "read_file", f"{s.test_path}  (lines 1-{len(lines)} of {total})\n{numbered(lines)}"
    )


def search(s: Session, pattern: str) -> tuple[dict, str]:
    hits: list[str] = []
    for module in s.repo.modules:
        hits += [f"{s.repo.path(module)}:{n}:{line}" for n, line in _grep(source_file(module).text, pattern)]
    hits += [f"{s.test_path}:{n}:{line}" for n, line in _grep("\n".join(tests_file(s)), pattern)]
    budget, limit = int(s.room * 0.12), 0
    for hit in hits[:30]:
        budget -= count_tokens(hit)
        if budget < 0:
            break
        limit += 1
    shown = hits[: max(limit, 3)]
    more = (
        f"\n... {len(hits) - len(shown)} more matches (narrow the search with path=)"
        if len(hits) > len(shown)
        else ""
    )
    body = "\n".join(shown) + more if hits else f"No matches for '{pattern}'."
    return {"pattern": pattern, "path": "."}, result("search_code", body)


@lru_cache(maxsize=2048)
def _grep(text: str, word: str) -> list[tuple[int, str]]:
    """(line number, stripped line) of every line containing `word` as a whole word."""
    starts = (
        [0, *(i + 1 for i, ch in enumerate(text) if ch == "\n")] if len(text) < 4096 else _line_starts(text)
    )
    out: list[tuple[int, str]] = []
    last = -1
    for m in re.finditer(rf"\b{re.escape(word)}\b", text):
        n = bisect.bisect_right(starts, m.start())  # 1-based line number
        if n != last:
            end = text.find("\n", starts[n - 1])
            out.append((n, text[starts[n - 1] : end if end >= 0 else len(text)].strip()))
            last = n
    return out


@lru_cache(maxsize=64)
def _line_starts(text: str) -> list[int]:
    return [0, *(m.end() for m in re.finditer("\n", text))]


@lru_cache(maxsize=8192)
def tokens_of(text: str) -> int:
    """count_tokens, memoised: a session is rebuilt with fewer steps when it overflows its window."""
    return count_tokens(text)


@lru_cache(maxsize=64)
def _line_tokens(module: str) -> tuple[int, ...]:
    return tuple(count_tokens(line) for line in source_file(module).lines)


def list_dir(s: Session) -> tuple[dict, str]:
    lines = [f"{s.repo.name}/", "  CHANGELOG.md  (84 lines)", "  README.md  (121 lines)", "  pyproject.toml  (47 lines)",
             f"  src/{s.repo.package}/", f"    __init__.py  ({12 + len(s.repo.modules)} lines)"]  # fmt: skip
    for module in s.repo.modules:
        lines.append(f"    {s.repo.path(module).rsplit('/', 1)[1]}  ({len(source_file(module).lines)} lines)")
    lines.append("  tests/")
    for module in s.repo.modules:
        lines.append(f"    {s.repo.test_path(module).rsplit('/', 1)[1]}")
    return {"path": ".", "depth": 3}, result("list_dir", "\n".join(lines))


def _diff(path: str, old: list[str], new: list[str]) -> str:
    return "\n".join(difflib.unified_diff(old, new, f"a/{path}", f"b/{path}", lineterm="", n=3))


def _body_start(s: Session) -> int:
    """Index (0-based, file lines) of the first statement after the signature and docstring."""
    lines = s.sf.lines
    i = s.f.lineno - 1
    while i < s.f.end_lineno and not lines[i].rstrip().endswith(":"):
        i += 1
    i += 1
    if i < len(lines) and lines[i].strip()[:3] in ('"""', "'''", 'r""'):
        quote = lines[i].strip()[:3] if not lines[i].strip().startswith("r") else '"""'
        if lines[i].strip().count(quote) < 2 or lines[i].strip() == quote:
            i += 1
            while i < s.f.end_lineno and quote not in lines[i]:
                i += 1
        i += 1
    return min(i, s.f.end_lineno - 1)


def patch_source(s: Session, change: str) -> str:
    """A diff of the target function: a guard for a fix, a keyword flag for a feature, a cache for speed."""
    lines = list(s.sf.lines)
    k = _body_start(s)
    indent = re.match(r"\s*", lines[k]).group(0)
    first = s.f.params[0] if s.f.params else "value"
    new = list(lines)
    if change == "fix":
        guard = {"empty_input": f"if not {first}:", "none_value": f"if {first} is None:"}.get(
            s.symptom[0], f"if not {first}:"
        )
        new[k:k] = [f"{indent}{guard}", f"{indent}    return {first}"]
    elif change == "feature":
        d = s.f.lineno - 1
        sig = new[d]
        new[d] = (
            sig.replace("):", ", *, strict=False):")
            if "):" in sig and "*" not in sig
            else sig.replace("):", ", strict=False):")
        )
        new[k:k] = [
            f"{indent}if strict and not {first}:",
            f"{indent}    raise ValueError(f'{s.f.name}: empty {first} in strict mode')",
        ]
    else:  # speed: memoise a pure top-level function
        d = s.f.lineno - 1
        new[d:d] = [lines[d][: len(lines[d]) - len(lines[d].lstrip())] + "@functools.lru_cache(maxsize=1024)"]
    lo, hi = s.f.lineno - 4, s.f.end_lineno + 4
    diff = _diff(s.path, lines[max(0, lo) : hi], new[max(0, lo) : hi + (len(new) - len(lines))])
    diff = _renumber(diff, max(0, lo))
    s.patches.append(diff)
    return diff


def _renumber(diff: str, offset: int) -> str:
    def fix(m: re.Match) -> str:
        a, b = int(m.group(1)) + offset, int(m.group(3)) + offset
        return f"@@ -{a}{m.group(2)} +{b}{m.group(4)} @@"

    return re.sub(r"@@ -(\d+)(,\d+)? \+(\d+)(,\d+)? @@", fix, diff)


def patch_tests(s: Session, suffixes: list[str], rng: random.Random) -> str:
    old = tests_file(s)
    added: list[str] = []
    for suffix in suffixes:
        added += test_function(s, suffix, rng)
        s.tests_added.append(f"test_{s.f.name.strip('_')}_{suffix}")
    diff = _diff(s.test_path, old, [*old, "", *added])
    s.patches.append(diff)
    return diff


def pytest_pass(s: Session, rng: random.Random) -> str:
    n = max(s.n_tests, 8) + len(s.tests_added) + rng.randint(0, 40)
    dots = "." * min(n, 70)
    return result(
        "run_tests",
        f"$ python -m pytest -q {s.test_path}\n{dots}{' ' * (72 - len(dots))}[100%]\n{n} passed in {rng.uniform(0.2, 3.5):.2f}s",
    )


def pytest_fail(s: Session, test_name: str, exc: str, message: str, rng: random.Random) -> str:
    n = max(s.n_tests, 8) + rng.randint(0, 30)
    body_lines = code_lines(s)
    line = rng.choice(body_lines[: max(1, len(body_lines) // 2 + 1)])
    context = [f"    {s.sf.lines[i - 1]}" for i in range(max(s.f.lineno, line - 3), line)]
    mark = s.sf.lines[line - 1]
    out = [
        f"$ python -m pytest -q {s.test_path}",
        "." * (n // 2) + "F" + "." * (n - n // 2 - 1),
        "=" * 30 + " FAILURES " + "=" * 30,
        f"{'_' * 20} {test_name} {'_' * 20}",
        "",
        f"    def {test_name}():",
        f">       result = {call_expr(s.f, rng)}",
        "",
        f"{s.test_path}:{40 + rng.randint(0, 80)}: ",
        "_ " * 30,
        "",
        *context,
        f">   {mark}",
        f"E   {exc}: {message}",
        "",
        f"{s.path}:{line}: {exc}",
        "=" * 26 + " short test summary info " + "=" * 26,
        f"FAILED {s.test_path}::{test_name} - {exc}: {message}",
        f"1 failed, {n - 1} passed in {rng.uniform(0.2, 3.5):.2f}s",
    ]
    return result("run_tests", "\n".join(out))


def timeit(s: Session, rng: random.Random, usec: float) -> tuple[str, str]:
    command = f'python -m timeit -s "from {s.import_name} import {s.f.qualname.split(".")[0]}" "{call_expr(s.f, rng)}"'
    loops = rng.choice([1000, 2000, 5000, 10000, 20000])
    return command, result(
        "run_command", f"$ {command}\nexit code: 0\n{loops} loops, best of 5: {usec:.3g} usec per loop"
    )


def changelog(s: Session) -> tuple[str, list[str]]:
    lines = ["# Changelog", "", "## Unreleased", "", f"- Faster import of `{s.repo.package}` (lazy submodules).", "",
             "## 2.3.1 - 2024-05-02", "", "- Fix a crash on empty configuration files.", "- Document the `strict` options.", ""]  # fmt: skip
    return "CHANGELOG.md", lines


def patch_changelog(s: Session, entry: str) -> str:
    path, old = changelog(s)
    new = [*old[:4], f"- {entry}", *old[4:]]
    diff = _diff(path, old, new)
    s.patches.append(diff)
    return diff
