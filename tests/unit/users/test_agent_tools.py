"""The agent's side of a tool call: the assistant message that carries it, the `tool` messages that
answer it with the workload's tool result, and the agentic set's tools as OpenAI `tools`."""

from __future__ import annotations

from core.result import StreamResult
from users.agent import UNANSWERED, assistant_message, named_calls, tool_messages
from workloads import load_workload, tool_result_text
from workloads.gen.agent_tools import result


def _res(calls: list[dict], text: str = "") -> StreamResult:
    return StreamResult(parts=[text] if text else [], tool_calls=calls)


def test_a_tool_call_reply_and_the_tool_result_that_answers_it() -> None:
    res = _res([{"id": "call-1", "name": "read_file", "arguments": '{"path": "a.py"}'}])
    calls = named_calls(res)
    assert assistant_message(res, calls) == {
        "role": "assistant",
        "content": "",
        "tool_calls": [{"id": "call-1", "type": "function", "function": {"name": "read_file", "arguments": '{"path": "a.py"}'}}],
    }  # fmt: skip
    turn = ({"role": "user", "content": result("read_file", "1 | import os")},)
    assert tool_messages(turn, calls) == [
        {"role": "tool", "tool_call_id": "call-1", "content": "1 | import os"}
    ]


def test_a_call_without_id_a_second_call_and_a_human_turn_are_all_answered() -> None:
    calls = named_calls(
        _res([{"id": "", "name": "a", "arguments": "{}"}, {"id": "c2", "name": "b", "arguments": ""}])
    )
    assert [c["id"] for c in calls] == ["call_0", "c2"]
    out = tool_messages(({"role": "user", "content": result("a", "ok")},), calls)
    assert [(m["tool_call_id"], m["content"]) for m in out] == [("call_0", "ok"), ("c2", UNANSWERED)]
    human = {"role": "user", "content": "Thanks! Also add a changelog line."}
    out = tool_messages((human,), calls)  # the workload has no result here: every call gets "not run"
    assert [m["role"] for m in out] == ["tool", "tool", "user"] and out[-1] is human
    assert named_calls(_res([])) == [] and assistant_message(_res([], "hi"), []) == {
        "role": "assistant",
        "content": "hi",
    }


def test_tool_result_text_unwraps_only_tool_results() -> None:
    assert tool_result_text(result("run_tests", "2 passed\nok")) == "2 passed\nok"
    assert tool_result_text("a human message") is None


def test_agentic_tools_native_sends_the_tools_and_the_same_sessions() -> None:
    native, text = load_workload("agentic:tools=native,sessions=3"), load_workload("agentic:sessions=3")
    for a, b in zip(native.conversations, text.conversations, strict=True):
        assert a.turns == b.turns and a.prefix == b.prefix and b.extra_body == {}
        names = [t["function"]["name"] for t in a.extra_body["tools"]]
        assert "read_file" in names and all(t["type"] == "function" for t in a.extra_body["tools"])
