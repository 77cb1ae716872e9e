"""The agent's steps in the `agentic` set: each makes one recorded assistant reply (a sentence and
a tool call) and the tool's result, which becomes the next turn's message.

`plan(session)` lists the steps of a task kind; optional steps carry a tag that a tight context
budget drops first (DROP_ORDER), so a small window shortens a session without breaking its story.
"""

from __future__ import annotations

from collections.abc import Callable

from workloads.gen import agent_tools as tools
from workloads.gen.agent_tools import Session, call

# A step makes one assistant reply (with its tool call) and the tool's result: (reply, result, tool name).
Step = Callable[[Session], tuple[str, str, str]]


def _say(s: Session, options: list[str], **kw: object) -> str:
    return s.rng.choice(options).format(func=s.f.qualname, path=s.path, tests=s.test_path, **kw)


def st_search(s: Session) -> tuple[str, str, str]:
    args, res = tools.search(s, s.f.name)
    text = _say(s, ["I'll start by finding where `{func}` is defined and used.", "Let me locate `{func}` and its callers first.",
                    "First, a search for `{func}` across the repository."])  # fmt: skip
    return f"{text}\n{call('search_code', args)}", res, "search_code"


def st_read_source(s: Session) -> tuple[str, str, str]:
    args, res = tools.read_source(s, s.rng)
    text = _say(s, ["The definition is in `{path}`. Reading it with some surrounding context.",
                    "Let me read `{func}` in full.", "Opening `{path}` around the definition of `{func}`."])  # fmt: skip
    return f"{text}\n{call('read_file', args)}", res, "read_file"


def st_read_other(s: Session) -> tuple[str, str, str]:
    args, res = tools.read_other(s, s.rng)
    text = _say(
        s,
        [
            "To see how it is used, let me read the caller in the same file.",
            "Let me check the related code next to it.",
        ],
    )
    return f"{text}\n{call('read_file', args)}", res, "read_file"


def st_read_tests(s: Session) -> tuple[str, str, str]:
    args, res = tools.read_tests(s)
    text = _say(
        s,
        [
            "Now the existing tests in `{tests}`, to follow their style.",
            "Let me look at how `{tests}` covers this module.",
        ],
    )
    return f"{text}\n{call('read_file', args)}", res, "read_file"


def st_list_dir(s: Session) -> tuple[str, str, str]:
    args, res = tools.list_dir(s)
    return f"Let me get an overview of the repository layout.\n{call('list_dir', args)}", res, "list_dir"


def st_reproduce(s: Session) -> tuple[str, str, str]:
    code, _, exc, message = s.symptom
    name = f"test_{s.f.name.strip('_')}_{code}"
    res = tools.pytest_fail(s, name, exc, message, s.rng)
    text = _say(s, ["I think I see the problem, but let me reproduce it first with a failing test run.",
                    "Before changing anything, let me confirm the failure with the test suite."])  # fmt: skip
    return f"{text}\n{call('run_tests', {'target': s.test_path})}", res, "run_tests"


def st_fix(s: Session) -> tuple[str, str, str]:
    diff = tools.patch_source(s, "fix")
    first = s.f.params[0] if s.f.params else "the input"
    why = _say(s, ["`{func}` never checks `{p}` before using it, so the {what} case falls through to code that assumes data is present.",
                   "The root cause: the {what} case reaches the main logic of `{func}` unguarded. The fix is an early return for it, which matches what callers expect (`{p}` returned unchanged)."],
               p=first, what=s.symptom[0].replace("_", " "))  # fmt: skip
    added = tools.patch_tests(s, [s.symptom[0]], s.rng)
    patch = f"{diff}\n{added}"
    return (
        f"{why} I'll add the guard and a regression test.\n{call('apply_patch', {'patch': patch})}",
        tools.result("apply_patch", _applied(s, 2)),
        "apply_patch",
    )


def st_feature(s: Session) -> tuple[str, str, str]:
    diff = tools.patch_source(s, "feature")
    text = "The change is local to `{func}`: add the keyword-only flag with a default of False and check it before the main logic, so existing callers are unaffected."
    return (
        f"{_say(s, [text])}\n{call('apply_patch', {'patch': diff})}",
        tools.result("apply_patch", _applied(s, 1)),
        "apply_patch",
    )


def st_add_tests(s: Session) -> tuple[str, str, str]:
    suffixes = s.rng.sample(
        ["basic", "empty", "strict", "unicode", "large", "invalid", "defaults"], s.rng.randint(2, 4)
    )
    diff = tools.patch_tests(s, suffixes, s.rng)
    text = _say(
        s,
        [
            "Now the tests for the new behaviour, in the style of the existing ones.",
            "Adding tests that cover normal use and the edge cases.",
        ],
    )
    return (
        f"{text}\n{call('apply_patch', {'patch': diff})}",
        tools.result("apply_patch", _applied(s, 1)),
        "apply_patch",
    )


def st_tests_fail_own(s: Session) -> tuple[str, str, str]:
    name = s.tests_added[0] if s.tests_added else f"test_{s.f.name}_basic"
    res = tools.pytest_fail(s, name, "AssertionError", "assert ['hello', 'world'] == ['hello world']", s.rng)
    return f"Running the new tests.\n{call('run_tests', {'target': s.test_path})}", res, "run_tests"


def st_fix_own_test(s: Session) -> tuple[str, str, str]:
    diff = tools.patch_tests(s, ["expected_value"], s.rng)
    text = "My expectation in that test was wrong, not the code: the function keeps the input as a single item there. Correcting the assertion."
    return (
        f"{text}\n{call('apply_patch', {'patch': diff})}",
        tools.result("apply_patch", _applied(s, 1)),
        "apply_patch",
    )


def st_run_tests(s: Session) -> tuple[str, str, str]:
    text = _say(
        s,
        [
            "Re-running the test module to check the change and that nothing else broke.",
            "Running the tests again.",
        ],
    )
    return f"{text}\n{call('run_tests', {'target': s.test_path})}", tools.pytest_pass(s, s.rng), "run_tests"


def st_lint(s: Session) -> tuple[str, str, str]:
    res = tools.result("run_command", "$ ruff check src tests\nexit code: 0\nAll checks passed!")
    return (
        f"And the linter, as the conventions require.\n{call('run_command', {'command': 'ruff check src tests'})}",
        res,
        "run_command",
    )


def st_git_diff(s: Session) -> tuple[str, str, str]:
    res = tools.result("git_diff", "\n".join(s.patches))
    return f"Let me review the complete diff before summarising.\n{call('git_diff', {})}", res, "git_diff"


def st_timeit(s: Session, before: bool) -> tuple[str, str, str]:
    usec = s.rng.uniform(8.0, 90.0) * (1.0 if before else s.rng.uniform(0.05, 0.3))
    command, res = tools.timeit(s, s.rng, usec)
    text = (
        "Measuring the current cost per call first." if before else "Measuring again with the cache in place."
    )
    return f"{text}\n{call('run_command', {'command': command})}", res, "run_command"


def st_speed(s: Session) -> tuple[str, str, str]:
    diff = tools.patch_source(s, "speed")
    text = "`{func}` is pure and its arguments are hashable, and the report calls it with a small set of repeated arguments, so memoising it is the simplest safe speed-up."
    return (
        f"{_say(s, [text])}\n{call('apply_patch', {'patch': diff})}",
        tools.result("apply_patch", _applied(s, 1)),
        "apply_patch",
    )


def st_changelog(s: Session) -> tuple[str, str, str]:
    diff = tools.patch_changelog(s, f"`{s.f.qualname}`: {s.kind} change (see tests).")
    return (
        f"Adding the entry under 'Unreleased'.\n{call('apply_patch', {'patch': diff})}",
        tools.result("apply_patch", _applied(s, 1)),
        "apply_patch",
    )


def st_read_changelog(s: Session) -> tuple[str, str, str]:
    path, lines = tools.changelog(s)
    res = tools.result(
        "read_file", f"{path}  (lines 1-{len(lines)} of {len(lines)})\n{tools.numbered(lines)}"
    )
    return f"Sure. Reading the changelog first.\n{call('read_file', {'path': path})}", res, "read_file"


def _applied(s: Session, files: int) -> str:
    return f"Patch applied cleanly: {files} file{'s' if files > 1 else ''} changed."


# Optional steps carry a tag; under a tight context budget whole tags are dropped in this order
# (a session should rather skip a look-around than a step its story needs).
DROP_ORDER = ("diff", "lint", "other", "dir", "tests", "search", "repro", "own")


def plan(s: Session) -> list[tuple[Step, str | None]]:
    rng = s.rng

    def maybe(p: float, step: Step, tag: str) -> list[tuple[Step, str | None]]:
        return [(step, tag)] if rng.random() < p else []

    if s.kind == "bugfix":
        return [(st_search, "search"), (st_read_source, None), *maybe(0.4, st_read_other, "other"),
                *maybe(0.4, st_read_tests, "tests"), (st_reproduce, "repro"), (st_fix, None),
                (st_run_tests, None), *maybe(0.3, st_git_diff, "diff")]  # fmt: skip
    if s.kind == "feature":
        return [(st_read_source, None), (st_search, "search"), (st_read_tests, "tests"), (st_feature, None),
                (st_add_tests, None), (st_run_tests, None), *maybe(0.5, st_lint, "lint")]  # fmt: skip
    if s.kind == "tests":
        return [(st_read_source, None), *maybe(0.5, st_list_dir, "dir"), (st_read_tests, "tests"), (st_add_tests, None),
                (st_tests_fail_own, "own"), (st_fix_own_test, "own"), (st_run_tests, None)]  # fmt: skip
    if s.kind == "explain":
        return [(st_search, None), (st_read_source, None), (rng.choice([st_read_other, st_read_tests]), None)]
    return [(st_read_source, None), (lambda x: st_timeit(x, True), None), (st_speed, None),
            (lambda x: st_timeit(x, False), None), (st_run_tests, None)]  # fmt: skip
