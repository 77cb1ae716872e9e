"""Reasoning between `<think>` tags in the answer text (loadgen/transport/apis/base.py `answer`)."""

from __future__ import annotations

from core.result import StreamResult
from loadgen.transport.apis.base import answer


def fed(chunks: list[str]) -> StreamResult:
    res = StreamResult()
    for i, text in enumerate(chunks):
        answer(res, text, float(i))
    return res


def test_an_answer_that_opens_with_the_tag() -> None:
    res = fed(["\n<think>", "hm", "</think>", "\n\nParis", " is"])
    assert (res.reasoning_chunks, res.t_first_answer, res.text) == (3, 3.0, "\n\nParis is")
    assert res.text_times == [0.0, 1.0, 2.0, 3.0, 4.0]  # every chunk is a token (TTFT at the first)


def test_the_tag_opened_in_the_prompt_moves_what_came_before_to_reasoning() -> None:
    res = fed(["Let", " me", "</think>", "Paris"])
    assert (res.reasoning_chunks, res.t_first_answer, res.text) == (3, 3.0, "Paris")


def test_the_answer_in_the_chunk_that_closes_and_an_empty_block() -> None:
    assert (lambda r: (r.reasoning_chunks, r.t_first_answer, r.text))(fed(["<think></think>Hi", "!"])) == (
        1, 0.0, "Hi!",
    )  # fmt: skip
    res = fed(["<think>", "still thinking when the cap came"])  # a stream cut while reasoning: no TTFO
    assert (res.reasoning_chunks, res.t_first_answer, res.text) == (2, None, "")


def test_tags_elsewhere_are_text() -> None:
    res = fed(["Use", " <think> tags", " like", " this"])  # the word, not at the answer's start
    assert (res.reasoning_chunks, res.t_first_answer, res.text) == (0, 0.0, "Use <think> tags like this")
    res = fed(["<think>", "a", "</think>", "b", " </think> again"])  # after the block: answer text
    assert (res.reasoning_chunks, res.t_first_answer, res.text) == (3, 3.0, "b </think> again")
