"""Answer plans (reasoning, text, tool calls), their profile keys, and the wire pieces built from them."""

from __future__ import annotations

import json
import random
from dataclasses import replace

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from simserver.__main__ import build_profile, parse_args
from simserver.answer import (
    CONTENT,
    FRAGMENT_RE,
    REASONING,
    TOOL,
    Answer,
    ToolCall,
    draw_reasoning,
    parse_tools,
    pick_call,
    plan,
)
from simserver.profiles import ProfileError, ReasoningParams, ToolCallParams, from_dict, load_profile
from simserver.wire import Reply, Tally
from simserver.wire_openai import ChatWire

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "n": {"type": "integer"}},
        },
    },
}


def call(pieces: tuple[str, ...] = ('{"', "a", '":', "1", "}")) -> ToolCall:
    return ToolCall("f", "id-1", pieces)


def test_max_tokens_counts_reasoning_and_cuts_where_it_falls() -> None:
    assert plan(5, "stop", 3, None, 100, False) == Answer(3, None, 8, "stop")
    assert plan(5, "stop", 3, None, 8, False) == Answer(3, None, 8, "length")  # reasoning + answer = max
    assert plan(5, "stop", 30, None, 10, False) == Answer(10, None, 10, "length")  # cut inside reasoning
    assert plan(10, "length", 0, None, 10, False) == Answer(
        0, None, 10, "length"
    )  # as before reasoning existed
    tool = call()
    assert plan(5, "stop", 2, tool, 100, False) == Answer(2, tool, 2 + 6, "stop")  # name + 5 fragments
    assert (
        plan(5, "stop", 2, tool, 5, False).finish == "length"
    )  # arguments cut: invalid JSON, as on a server
    assert plan(5, "length", 4, tool, 100, True) == Answer(4, None, 100, "length")  # ignore_eos: no call


def test_phases_boundaries_and_api_finish() -> None:
    a = Answer(2, call(), 8, "stop")
    assert [a.phase_of(n) for n in range(1, 5)] == [REASONING, REASONING, TOOL, TOOL]
    assert a.next_boundary(1) == 3 and a.next_boundary(3) > 10**9
    assert a.api_finish("stop") == "tool_calls" and a.api_finish("length") == "length"
    assert Answer(0, None, 4, "stop").phase_of(1) == CONTENT and a.split(5) == (2, 3) and a.split(1) == (1, 0)
    assert call().arguments(1) == "" and json.loads(call().arguments(6)) == {"a": 1}


@given(st.text())
def test_fragments_rejoin_any_text_exactly(text: str) -> None:
    assert "".join(FRAGMENT_RE.findall(text)) == text


def test_tool_calls_follow_the_schema_choice_and_seed() -> None:
    specs, choice = parse_tools({"tools": [WEATHER], "tool_choice": "required"})
    p = ToolCallParams(call_probability=0.0, string_words_max=3)
    c = pick_call(random.Random(1), p, specs, choice, "id")
    assert c is not None and c.name == "get_weather" and c.tokens == 1 + len(c.pieces)
    args = json.loads("".join(c.pieces))
    assert set(args) == {"city", "n"} and isinstance(args["n"], int) and 1 <= len(args["city"].split()) <= 3
    assert pick_call(random.Random(1), p, specs, "auto", "id") is None  # probability 0, not forced
    assert pick_call(random.Random(1), replace(p, call_probability=1.0), specs, "none", "id") is None
    again = pick_call(random.Random(1), p, specs, choice, "id")
    assert again == c  # seeded: the same draw gives the same call
    named = {"type": "function", "function": {"name": "get_weather"}}
    assert (
        pick_call(random.Random(2), p, *parse_tools({"tools": [WEATHER], "tool_choice": named}), "id")
        is not None
    )
    calls = [
        pick_call(random.Random(s), replace(p, call_probability=0.5), specs, "auto", "id") for s in range(200)
    ]
    assert 60 < sum(c is not None for c in calls) < 140


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({"tools": {"a": 1}}, "must be a list"),
        ({"tools": [{"type": "function"}]}, "tools[0]"),
        ({"tools": [{"type": "function", "function": {"name": ""}}]}, "name"),
        (
            {"tools": [WEATHER], "tool_choice": {"type": "function", "function": {"name": "other"}}},
            "not in 'tools'",
        ),
        ({"tools": [WEATHER], "tool_choice": "sometimes"}, "tool_choice"),
    ],
)
def test_bad_tools_are_one_clear_error(body: dict, needle: str) -> None:
    with pytest.raises(ValueError) as e:
        parse_tools(body)
    assert needle in str(e.value)


def test_reasoning_draws() -> None:
    rng = random.Random(3)
    state = rng.getstate()
    assert draw_reasoning(rng, ReasoningParams()) == 0 and rng.getstate() == state  # off: no draw at all
    assert draw_reasoning(rng, ReasoningParams(tokens_median=50, tokens_sigma=0)) == 50
    assert draw_reasoning(rng, ReasoningParams(tokens_median=50, skip_probability=1.0)) == 0
    draws = sorted(draw_reasoning(random.Random(s), ReasoningParams(tokens_median=100, tokens_sigma=0.5)) for s in range(301))  # fmt: skip
    assert 80 < draws[150] < 125 and draws[0] >= 1 and draws[-1] > 150


@pytest.mark.parametrize(
    ("section", "needle"),
    [
        ({"reasoning": {"delta_field": "thoughts"}}, "reasoning.delta_field must be one of"),
        ({"reasoning": {"skip_probability": 1.5}}, "reasoning.skip_probability must be in [0, 1]"),
        ({"reasoning": {"tokens_median": -1}}, "must be >= 0"),
        ({"tool_calls": {"call_probability": -0.1}}, "tool_calls.call_probability must be in [0, 1]"),
        ({"tool_calls": {"string_words_max": 0}}, "string_words_max must be >= 1"),
        ({"reasoning": {"median": 3}}, "unknown key 'reasoning.median'"),
    ],
)
def test_new_profile_keys_are_validated(section: dict, needle: str) -> None:
    with pytest.raises(ProfileError) as e:
        from_dict({"name": "x", **section}, "x.yaml")
    assert needle in str(e.value)


def test_reasoning_profile_and_bare_set_keys() -> None:
    p = load_profile("reasoning")
    assert p.reasoning.tokens_median > 0 and p.tool_calls.call_probability > 0 and p.description
    q = build_profile(
        parse_args(["--profile", "reasoning", "--set", "tokens_median=7", "--set", "median_tokens=9"])
    )
    assert q.reasoning.tokens_median == 7 and q.output.median_tokens == 9  # bare keys stay unambiguous
    assert load_profile("default").reasoning.tokens_median == 0  # the other profiles do not reason


def test_chat_wire_names_the_reasoning_field_the_profile_asks_for() -> None:
    a = Answer(2, None, 4, "stop")
    w = ChatWire(Reply("chatcmpl-1", 1, "m"), a, True, "reasoning_content")
    _, emit = w.enter(REASONING, 1)
    assert emit.pre.endswith(b'"delta":{"reasoning_content":') and emit.fmt is None
    tally = Tally(5, 0, 4, 2, "stop", 0.01, 0.02, 0.05)
    body = orjson.loads(w.body([10, 11, 12, 13], tally))
    msg = body["choices"][0]["message"]
    assert msg["reasoning_content"] and msg["content"] and body["usage"]["completion_tokens_details"] == {"reasoning_tokens": 2}  # fmt: skip
    plain = orjson.loads(
        ChatWire(Reply("c", 1, "m"), Answer(0, None, 2, "stop"), False, None).body([1, 2], tally)
    )
    assert "reasoning_content" not in plain["choices"][0]["message"] and "completion_tokens_details" not in plain["usage"]  # fmt: skip
