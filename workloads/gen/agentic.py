"""`agentic`: multi-turn sessions of a coding agent, the workload where prefix caching matters.

Options: sessions=48, seed=0, think=1 (scales the recorded pauses between turns; 0 turns them off),
context=4096 (the server's context window, prompt plus output; every request fits it), tools=text
(the tools are described in the system prompt only) or native (also sent as the request's OpenAI
`tools`, so a server with tool calling answers with `tool_calls`; users/agent.py then sends each
tool result back as a `tool` message).
A session is a task (fix a bug, add a flag, write tests, explain, speed up) on a real function of
one of three repositories (agent_prompt.REPOS). Each turn sends the tool result of the previous
reply; the assistant replies (recorded) call the next tool, the last one summarises. Context grows
turn by turn on top of a system prompt shared by every session of a repository. At the default 4k
window (the simulated and CPU engines' size) the prompt is the compact ~1.7k-token variant and
sessions have 4-9 turns; from context=8192 on it is the full ~3.5k-token one (JSON tool schemas,
whole repository map) and sessions have 4-10 turns with larger reads. Outputs range from tens of
tokens (tool calls) to hundreds (patches, summaries). Think times are the tools' run times (a test
run takes seconds, a file read a fraction of one; a human follow-up tens of seconds).
"""

from __future__ import annotations

import dataclasses
import random

from workloads.conversation import Conversation, Turn
from workloads.gen import agent_tools as tools
from workloads.gen.agent_prompt import REPOS, Repo, system_prompt, tool_specs
from workloads.gen.agent_steps import DROP_ORDER, st_changelog, st_read_changelog
from workloads.gen.agent_steps import plan as steps_for
from workloads.gen.agent_tools import Session, tokens_of
from workloads.gen.material import source_file
from workloads.spec import Options

# Context budget: `context=N` is the server's window (prompt + output). Goodput counts tokens with its
# own estimate; real BPE tokenizers count ~1.2x more on this code-heavy text, and chat templates add a
# few tokens per message, so the generator keeps estimate * TOKENIZER_ALLOWANCE + overheads within N.
TOKENIZER_ALLOWANCE = 1.25
TEMPLATE_TOKENS = 64
MESSAGE_OVERHEAD = 5
SYSTEM_SHARE = 0.5  # below FULL_PROMPT_CONTEXT the system prompt takes at most this share of the budget
FULL_PROMPT_CONTEXT = 8192  # from this window on, the full ~3.5k-token prompt
SUMMARY_RESERVE = 450  # room kept for the closing summary
FOLLOWUP_COST = 400  # a changelog follow-up: question, read, patch, reply

KINDS = {"bugfix": 0.35, "feature": 0.2, "tests": 0.15, "explain": 0.15, "speed": 0.15}
SYMPTOMS_BY_KIND = {"text": ("empty_input", "unicode", "whitespace"), "sequence": ("empty_input", "odd_length", "none_value"),
                    "number": ("none_value",), "other": ("none_value", "empty_input")}  # fmt: skip
SYMPTOMS = [
    ("empty_input", "raises `IndexError: list index out of range` when `{p}` is empty", "IndexError", "list index out of range"),
    ("none_value", "crashes with `TypeError: 'NoneType' object is not iterable` when `{p}` is None", "TypeError", "'NoneType' object is not iterable"),
    ("unicode", "fails with a `UnicodeEncodeError` on non-ASCII input such as 'naïve café'", "UnicodeEncodeError", "'ascii' codec can't encode character '\\xef' in position 2"),
    ("odd_length", "silently drops the last element when the input has an odd length", "AssertionError", "assert [1, 2] == [1, 2, 3]"),
    ("whitespace", "keeps trailing whitespace it should strip, which breaks our golden-file tests", "AssertionError", "assert 'value  ' == 'value'"),
]  # fmt: skip
INTROS = [
    "",
    "Bug report from QA: ",
    "We're seeing this in production: ",
    "Customer ticket #{n}: ",
    "Found while testing the 2.4 release: ",
]
CONTEXTS = [
    "",
    " It started after last week's refactor.",
    " This blocks the release.",
    " Low priority, but it keeps coming up.",
]
THINK = {"read_file": (0.05, 0.3), "list_dir": (0.05, 0.2), "search_code": (0.2, 1.2), "apply_patch": (0.1, 0.4),
         "run_tests": (1.5, 9.0), "run_command": (2.0, 10.0), "git_diff": (0.1, 0.3), "human": (8.0, 40.0)}  # fmt: skip


def _task(s: Session) -> str:
    rng, p = s.rng, (s.f.params[0] if s.f.params else "the input")
    where = f"`{s.f.qualname}` in `{s.path}`"
    if s.kind == "bugfix":
        intro = rng.choice(INTROS).format(n=rng.randint(1000, 9999))
        text = f"{intro}{where} {s.symptom[1].format(p=p)}.{rng.choice(CONTEXTS)} Please find the root cause, fix it and add a regression test."
        if rng.random() < 0.6:
            line = rng.choice(tools.code_lines(s))
            text += (f"\n\n```\nTraceback (most recent call last):\n  File \"/srv/app/jobs/nightly_report.py\", line {rng.randint(40, 300)}, in run\n"
                     f"    rows = build_rows(payload)\n  File \"/workspace/{s.repo.name}/{s.path}\", line {line}, in {s.f.name}\n"
                     f"    {s.sf.lines[line - 1].strip()}\n{s.symptom[2]}: {s.symptom[3]}\n```")  # fmt: skip
        return text
    if s.kind == "feature":
        return f"Add a keyword-only `strict` flag to {where}: when true it should raise ValueError for an empty `{p}` instead of quietly returning. The default must keep today's behaviour. Add tests and mention it in the changelog."
    if s.kind == "tests":
        return f"{where} has no direct tests and we're about to refactor it. Write focused tests for it (normal use and edge cases) in `{s.test_path}`, and make sure they pass against the current code."
    if s.kind == "explain":
        return f"I'm new to this codebase. Can you explain how {where} works, who calls it, and what happens when `{p}` is empty or None? Don't change anything."
    return f"Profiling the nightly report job shows {where} near the top: it's called about two million times per run, mostly with the same few arguments. Can you make it faster without changing results?"


def _summary(s: Session) -> str:
    rng = s.rng
    if s.kind == "explain":
        lines = [
            f"`{s.f.qualname}` is defined at line {s.f.lineno} of `{s.path}` ({s.f.end_lineno - s.f.lineno + 1} lines). Walking through it:",
            "",
        ]
        notes = {"if": "branches on this condition", "for": "is the main loop", "while": "loops until the condition fails",
                 "return": "produces the result", "try": "guards the risky part", "raise": "rejects invalid input"}  # fmt: skip
        for n in tools.code_lines(s):
            code = s.sf.lines[n - 1].strip()
            key = code.split(" ", 1)[0].rstrip(":")
            if key in notes and len(lines) < 14:
                lines.append(f"- Line {n}: `{code[:80]}` {notes[key]}.")
        lines += ["", f"An empty `{s.f.params[0] if s.f.params else 'input'}` takes the early branches and returns without entering the loop; None is not handled explicitly and fails with a TypeError at the first operation that needs a value.",
                  f"It is called from the module itself and from the tests in `{s.test_path}`; nothing else in the repository depends on its internals, so it is safe to change as long as the public behaviour stays the same."]  # fmt: skip
        return "\n".join(lines)
    head = {"bugfix": f"Fixed the {s.symptom[0].replace('_', ' ')} bug in `{s.f.qualname}`.",
            "feature": f"Added a keyword-only `strict` flag to `{s.f.qualname}`.",
            "tests": f"Added {len(s.tests_added)} tests for `{s.f.qualname}`.",
            "speed": f"Made `{s.f.qualname}` faster by memoising it."}[s.kind]  # fmt: skip
    bullets = [f"- `{s.path}`: {'early return for the failing case' if s.kind == 'bugfix' else 'the change itself, limited to this function'}.",
               f"- `{s.test_path}`: {', '.join(f'`{t}`' for t in s.tests_added) or 'unchanged'}.",
               f"- Verified with `python -m pytest -q {s.test_path}`: all tests pass."]  # fmt: skip
    if s.kind == "speed":
        bullets.append(
            "- The cache is bounded (1024 entries); results are identical because the function has no side effects."
        )
    if rng.random() < 0.5:
        bullets.append(
            "- Worth checking: any caller that relied on the old behaviour for this edge case (I found none in the repository)."
        )
    return "\n".join([head, "", *bullets])


def _tokens(messages: tuple[dict, ...]) -> int:
    return sum(tokens_of(m["content"]) + MESSAGE_OVERHEAD for m in messages)


def _session(index: int, seed: int, think_scale: float, budget: int, system_target: int) -> Conversation:
    """One session whose every request (prompt + expected output) stays within `budget` tokens.

    Reads shrink to the room left (Session.room). If a step still does not fit, the session is
    rebuilt from the same seed without the next tag of optional steps (DROP_ORDER), so small
    windows give shorter sessions that still tell a whole story.
    """
    for drop in range(len(DROP_ORDER) + 1):
        conv, complete = _attempt(index, seed, think_scale, budget, system_target, DROP_ORDER[:drop])
        if complete:
            return conv
    return conv  # the smallest plan, with whatever steps fitted


def _attempt(
    index: int, seed: int, think_scale: float, budget: int, system_target: int, dropped: tuple[str, ...]
) -> tuple[Conversation, bool]:
    rng = random.Random(f"agentic:{seed}:{index}")
    repo: Repo = rng.choices(REPOS, [r.weight for r in REPOS])[0]
    module = rng.choice(repo.modules)
    sf = source_file(module)
    kind = rng.choices(list(KINDS), list(KINDS.values()))[0]
    pool = [f for f in sf.functions if "." not in f.qualname] if kind == "speed" else list(sf.functions)
    f = rng.choice(pool or list(sf.functions))
    fitting = SYMPTOMS_BY_KIND[tools.param_kind(f.params[0]) if f.params else "other"]
    s = Session(rng, repo, module, sf, f, kind, rng.choice([x for x in SYMPTOMS if x[0] in fitting]))
    prefix = ({"role": "system", "content": system_prompt(repo, system_target)},)
    plan = steps_for(s)
    followup = len(plan) <= 6 and rng.random() < 0.3 and kind != "explain"  # explain changes nothing
    steps = [step for step, tag in plan if tag not in dropped]
    turns: list[Turn] = []
    messages: tuple[dict, ...] = ({"role": "user", "content": _task(s)},)
    used = _tokens(prefix)  # the prompt so far, without the pending `messages`
    think, complete = 0.0, True
    for step in steps:
        s.room = (
            budget
            - used
            - _tokens(messages)
            - (SUMMARY_RESERVE if kind == "explain" else SUMMARY_RESERVE // 2)
        )
        state = (len(s.patches), len(s.tests_added))
        reply, res, tool = step(s)
        if tokens_of(reply) + tokens_of(res) + 2 * MESSAGE_OVERHEAD > s.room:
            del s.patches[state[0] :], s.tests_added[state[1] :]  # not taken; a later, smaller step may fit
            complete = False
            continue
        turns.append(Turn(messages, tokens_of(reply), reply, think))
        used += _tokens(messages) + tokens_of(reply) + MESSAGE_OVERHEAD
        messages, think = ({"role": "user", "content": res},), _pause(rng, tool, think_scale)
    final = _summary(s)
    turns.append(Turn(messages, tokens_of(final), final, think))
    used += _tokens(messages) + tokens_of(final) + MESSAGE_OVERHEAD
    if followup and used + FOLLOWUP_COST <= budget:
        ask = rng.choice(
            [
                "Thanks! Can you also add a line to the changelog?",
                "Looks good. Please add a CHANGELOG entry for this too.",
            ]
        )
        messages, think = ({"role": "user", "content": ask},), _pause(rng, "human", think_scale)
        for step in (st_read_changelog, st_changelog):
            reply, res, tool = step(s)
            turns.append(Turn(messages, tokens_of(reply), reply, think))
            messages, think = ({"role": "user", "content": res},), _pause(rng, tool, think_scale)
        done = "Done: the changelog has the entry under 'Unreleased'."
        turns.append(Turn(messages, tokens_of(done), done, think))
    return Conversation(f"agentic-{index:05d}", prefix, tuple(turns), repo.group, {}), complete


def _pause(rng: random.Random, tool: str, scale: float) -> float:
    lo, hi = THINK[tool]
    return round(rng.uniform(lo, hi) * scale, 2)


def generate(opts: Options) -> list[Conversation]:
    n = opts.integer("sessions", 48)
    seed = opts.integer("seed", 0, lo=0)
    think_scale = opts.number("think", 1.0)
    context = opts.integer("context", 4096, lo=4096)
    native = opts.choice("tools", "text", ("text", "native")) == "native"
    budget = int((context - TEMPLATE_TOKENS) / TOKENIZER_ALLOWANCE)
    system_target = 1_000_000 if context >= FULL_PROMPT_CONTEXT else int(budget * SYSTEM_SHARE)
    convs = [_session(i, seed, think_scale, budget, system_target) for i in range(n)]
    if native:  # the same sessions, with the tools also declared to the server (OpenAI `tools`)
        body = {"tools": tool_specs()}
        convs = [dataclasses.replace(c, extra_body=body) for c in convs]
    return convs
