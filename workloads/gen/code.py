"""`code`: code completion and editing requests that carry real file contents (stdlib modules).

Options: n=120, seed=0. Each request sends (part of) a file the way an editor plugin does, then an
instruction about one function in it: complete it, document it, test it, explain, refactor, type or
review it. Requests on the same file share the file text as a prefix (their group is the file).
Expected output lengths follow the task: a completion is as long as the real remaining body, a
refactor about as long as the function, tests and explanations a few hundred tokens.
"""

from __future__ import annotations

import random

from workloads.conversation import Conversation, Turn
from workloads.gen.material import Function, SourceFile, source_file
from workloads.lengths import LengthDist
from workloads.spec import Options
from workloads.tokens import count_tokens

MODULES = (
    "textwrap.py", "string.py", "shlex.py", "fnmatch.py", "glob.py", "csv.py", "json/decoder.py", "json/encoder.py",
    "statistics.py", "fractions.py", "heapq.py", "bisect.py", "calendar.py", "graphlib.py", "pprint.py", "reprlib.py",
    "netrc.py", "colorsys.py", "sched.py", "queue.py", "copy.py", "linecache.py", "filecmp.py", "html/parser.py",
    "base64.py", "quopri.py", "gettext.py",
)  # fmt: skip
SYSTEM = (
    "You are an expert Python engineer built into a code editor. The user shares the file they are editing "
    "and asks for help with it. Rules: answer with code in fenced ```python blocks; keep changes minimal and "
    "in the style of the surrounding code; do not invent APIs that the file does not import; when you change "
    "code, show the complete new version of the function; when you explain, refer to line numbers; keep prose "
    "short and concrete."
)
TASKS = {  # kind -> (weight, instruction templates)
    "complete": (3, ["Complete the body of `{qual}`: continue from the last line shown. Reply with the missing lines only."]),
    "docstring": (2, ["Write a concise Google-style docstring for `{qual}`.", "Add a docstring to `{qual}` that documents every parameter."]),
    "tests": (2, ["Write pytest unit tests for `{qual}`, covering the edge cases.", "Add tests for `{qual}`: normal use, empty input and invalid arguments."]),
    "explain": (2, ["Explain what `{qual}` does, step by step, and list its edge cases.", "How does `{qual}` work? Walk me through it."]),
    "refactor": (2, ["Refactor `{qual}` for readability without changing its behaviour. Show the full new function."]),
    "types": (1, ["Add type hints to `{qual}` and show the full annotated function."]),
    "review": (2, ["Review `{qual}` for bugs and performance problems and suggest concrete fixes.", "Is there anything wrong with `{qual}`? Be specific."]),
}  # fmt: skip


def _window(sf: SourceFile, f: Function) -> tuple[int, int]:
    """The lines an editor would send: from the top for short files, around the function otherwise."""
    start = 1 if f.end_lineno <= 220 else max(1, f.lineno - 120)
    end = min(len(sf.lines), max(f.end_lineno + 25, start + 150), start + 259)
    return start, max(end, f.end_lineno)


def _expected_output(kind: str, sf: SourceFile, f: Function, cut: int, rng: random.Random) -> int:
    body_tokens = count_tokens(sf.window(f.lineno, f.end_lineno, numbered=False))
    if kind == "complete":
        return max(16, count_tokens(sf.window(cut + 1, f.end_lineno, numbered=False)))
    if kind == "refactor":
        return max(48, int(body_tokens * rng.uniform(1.0, 1.3)) + 40)
    if kind == "types":
        return max(40, body_tokens + 10 * len(f.params) + 20)
    mean = {"docstring": 60 + 15 * len(f.params), "tests": 420, "explain": 330, "review": 280}[kind]
    return LengthDist("lognormal", mean, mean * 0.35, 24, 1500).sample(rng)


def generate(opts: Options) -> list[Conversation]:
    n = opts.integer("n", 120)
    seed = opts.integer("seed", 0, lo=0)
    kinds = list(TASKS)
    weights = [TASKS[k][0] for k in kinds]
    out: list[Conversation] = []
    for i in range(n):
        rng = random.Random(f"code:{seed}:{i}")
        sf = source_file(rng.choice(MODULES))
        f = rng.choice(sf.functions)
        kind = rng.choices(kinds, weights)[0]
        start, end = _window(sf, f)
        cut = end
        if kind == "complete":  # the file up to a point inside the function: def, docstring, a line or two
            cut = min(f.end_lineno - 1, f.lineno + rng.randint(1, max(1, (f.end_lineno - f.lineno) // 2)))
            end = cut
        instruction = rng.choice(TASKS[kind][1]).format(qual=f.qualname)
        text = f"File: Lib/{sf.module} (lines {start}-{end})\n```python\n{sf.window(start, end, numbered=False)}\n```\n\n{instruction}"
        turn = Turn(({"role": "user", "content": text},), _expected_output(kind, sf, f, cut, rng), None, 0.0)
        out.append(
            Conversation(f"code-{i:05d}", ({"role": "system", "content": SYSTEM},), (turn,), sf.module, {})
        )
    return out
