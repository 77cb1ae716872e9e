"""What one request's answer is made of: reasoning tokens, then text or a tool call — drawn, seeded.

A reasoning model spends decode steps on reasoning before it answers, and a tool-using model
answers some requests with a function call whose arguments are JSON text. To the engine all of
these are tokens (the plan only fixes how many); the wire formats decide how each one is shown.
Token n of an answer (1-based) is in phase REASONING for n <= reasoning, then CONTENT or TOOL.
A tool call's first token is its function name; each further token is one fragment of the
arguments, so the fragments concatenate to valid JSON when the call is not cut by max_tokens.
"""

from __future__ import annotations

import math
import random
import re
from dataclasses import dataclass
from typing import Any

import orjson

from simserver.profiles import OutputLen, ReasoningParams, ToolCallParams
from simserver.tokenizer import VOCAB

REASONING, CONTENT, TOOL = 0, 1, 2
NEVER = 1 << 62  # a token number no answer reaches
WORDS = tuple(w for w in VOCAB if w.isalnum())
FRAGMENT_RE = re.compile(r" ?\w+|[^\w ]+| ")  # covers every character: the pieces re-join exactly


@dataclass(frozen=True, slots=True)
class ToolSpec:
    """One function a request offers (OpenAI `tools[i].function`)."""

    name: str
    parameters: Any


@dataclass(frozen=True, slots=True)
class ToolCall:
    """A planned call: its name, id, and the argument text split into one fragment per token."""

    name: str
    call_id: str
    pieces: tuple[str, ...]

    @property
    def tokens(self) -> int:
        return 1 + len(self.pieces)

    def arguments(self, tool_tokens: int) -> str:
        """The argument text a client has after `tool_tokens` tool tokens (the name is the first)."""
        return "".join(self.pieces[: max(0, tool_tokens - 1)])


@dataclass(frozen=True, slots=True)
class Answer:
    reasoning: int  # reasoning tokens before the answer (all of the output if max_tokens cuts there)
    tool: ToolCall | None
    total: int  # tokens the engine generates
    finish: str  # the engine's finish reason: stop | length

    def phase_of(self, n: int) -> int:
        if n <= self.reasoning:
            return REASONING
        return TOOL if self.tool is not None else CONTENT

    def next_boundary(self, n: int) -> int:
        """The first token number after `n` that starts a new phase."""
        return self.reasoning + 1 if n <= self.reasoning else NEVER

    def api_finish(self, engine_finish: str) -> str:
        return "tool_calls" if engine_finish == "stop" and self.tool is not None else engine_finish

    def split(self, n: int) -> tuple[int, int]:
        """(reasoning tokens, answer tokens) among the first n tokens."""
        r = min(n, self.reasoning)
        return r, n - r


def parse_tools(body: dict[str, Any]) -> tuple[tuple[ToolSpec, ...], Any]:
    """`tools` and `tool_choice` of a chat request, checked; ValueError names the field."""
    raw = body.get("tools")
    if raw is None:
        return (), body.get("tool_choice")
    if not isinstance(raw, list):
        raise ValueError("'tools' must be a list of {type: function, function: {name, parameters}}")
    specs = []
    for i, t in enumerate(raw):
        fn = t.get("function") if isinstance(t, dict) else None
        if not isinstance(t, dict) or t.get("type", "function") != "function" or not isinstance(fn, dict):
            raise ValueError(f"tools[{i}] must be {{type: function, function: {{name, parameters}}}}")
        name = fn.get("name")
        if not isinstance(name, str) or not name:
            raise ValueError(f"tools[{i}].function.name must be a non-empty string")
        specs.append(ToolSpec(name, fn.get("parameters") or {}))
    choice = body.get("tool_choice")
    if isinstance(choice, dict):
        name = (
            (choice.get("function") or {}).get("name") if isinstance(choice.get("function"), dict) else None
        )
        if name not in {s.name for s in specs}:
            raise ValueError("tool_choice names a function that is not in 'tools'")
    elif choice not in (None, "none", "auto", "required"):
        raise ValueError("'tool_choice' must be none, auto, required or {type: function, function: {name}}")
    return tuple(specs), choice


def draw_reasoning(rng: random.Random, r: ReasoningParams) -> int:
    if r.tokens_median <= 0 or (r.skip_probability > 0 and rng.random() < r.skip_probability):
        return 0
    x = (
        r.tokens_median
        if r.tokens_sigma == 0
        else rng.lognormvariate(math.log(r.tokens_median), r.tokens_sigma)
    )
    return max(1, round(x))


def pick_call(
    rng: random.Random, p: ToolCallParams, specs: tuple[ToolSpec, ...], choice: Any, call_id: str
) -> ToolCall | None:
    """Whether this answer is a tool call (a named or `required` choice always is) and which."""
    if not specs or choice == "none":
        return None
    if isinstance(choice, dict):
        spec = next(s for s in specs if s.name == choice["function"]["name"])
    elif choice == "required" or (p.call_probability > 0 and rng.random() < p.call_probability):
        spec = specs[rng.randrange(len(specs))]
    else:
        return None
    text = orjson.dumps(_arguments(rng, spec.parameters, p.string_words_max)).decode()
    return ToolCall(spec.name, call_id, tuple(FRAGMENT_RE.findall(text)))


def _arguments(rng: random.Random, schema: Any, words_max: int) -> dict[str, Any]:
    props = schema.get("properties") if isinstance(schema, dict) else None
    if not isinstance(props, dict):
        return {}
    return {str(k): _value(rng, v, words_max) for k, v in props.items()}


def _value(rng: random.Random, schema: Any, words_max: int) -> Any:
    """A plausible value for one JSON-schema property (enum, number, boolean, …, else words)."""
    s = schema if isinstance(schema, dict) else {}
    enum = s.get("enum")
    if isinstance(enum, list) and enum:
        return enum[rng.randrange(len(enum))]
    kind = s.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "string")
    if kind == "integer":
        return rng.randrange(1, 1000)
    if kind == "number":
        return round(rng.uniform(0, 100), 2)
    if kind == "boolean":
        return rng.random() < 0.5
    if kind == "object":
        return _arguments(rng, s, words_max)
    if kind == "array":
        return [_value(rng, s.get("items"), words_max) for _ in range(rng.randint(1, 3))]
    return " ".join(WORDS[rng.randrange(len(WORDS))] for _ in range(rng.randint(1, words_max)))


def plan(
    text_len: int, text_finish: str, reasoning: int, tool: ToolCall | None, max_tokens: int, ignore_eos: bool
) -> Answer:
    """Combine the drawn parts under max_tokens (which, as in OpenAI and vLLM, counts reasoning).

    `text_len`/`text_finish` are output_length()'s draw for a text answer; with ignore_eos the
    output is exactly max_tokens and a tool call is never made (a call cannot run on past its end).
    """
    if ignore_eos:
        return Answer(min(reasoning, max_tokens), None, max_tokens, "length")
    answer = tool.tokens if tool is not None else text_len
    if text_finish == "length" and tool is None:
        answer = max_tokens
    total = reasoning + answer
    if total >= max_tokens:
        return Answer(min(reasoning, max_tokens), tool, max_tokens, "length")
    return Answer(reasoning, tool, total, "stop")


def output_length(
    rng: random.Random, out: OutputLen, max_tokens: int, min_tokens: int, ignore_eos: bool
) -> tuple[int, str]:
    """(tokens to generate, finish_reason): EOS falls at a lognormal length unless ignore_eos."""
    if ignore_eos:
        return max_tokens, "length"
    natural = (
        out.median_tokens if out.sigma == 0 else rng.lognormvariate(math.log(out.median_tokens), out.sigma)
    )
    natural_n = max(1, round(natural), min_tokens)
    if natural_n >= max_tokens:
        return max_tokens, "length"
    return natural_n, "stop"
