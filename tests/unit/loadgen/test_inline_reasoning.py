"""Reasoning inline in the answer text — `<think>` tags, gpt-oss's harmony channels with their markers
and without — told apart by `answer` (loadgen/transport/apis/base.py, inline.py)."""

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


HARMONY = ["<|channel|>", "analysis", "<|message|>", "Let", " me", "<|end|>", "<|start|>", "assistant",
           "<|channel|>", "final", "<|message|>", "Paris", " is"]  # fmt: skip


def test_harmony_channels_with_their_markers() -> None:
    res = fed(HARMONY)
    assert (res.reasoning_chunks, res.t_first_answer, res.text) == (11, 11.0, "Paris is")
    assert res.text_times == [float(i) for i in range(13)]


def test_harmony_markers_in_one_piece_or_split_anywhere() -> None:
    """llama-server may send several markers in one chunk, and the end's three markers may come in any
    grouping (each marker is one special token, so the opening one comes whole)."""
    whole = "<|channel|>analysis<|message|>Let me<|end|><|start|>assistant<|channel|>final<|message|>Paris"
    assert (lambda r: (r.reasoning_chunks, r.t_first_answer, r.text))(fed([whole, " is"])) == (
        1,
        0.0,
        "Paris is",
    )
    for cut in range(len("<|channel|>"), len(whole)):
        res = fed([whole[:cut], whole[cut:], " is"])
        assert res.text == "Paris is", cut
        assert res.t_first_answer == (1.0 if cut <= whole.index("Paris") else 0.0), cut


def test_harmony_straight_to_the_final_channel_and_a_stream_cut_while_analysing() -> None:
    res = fed(["<|start|>assistant<|channel|>final<|message|>", "Hi", "!"])
    assert (res.reasoning_chunks, res.t_first_answer, res.text) == (1, 1.0, "Hi!")
    res = fed(
        ["<|channel|>", "analysis", "<|message|>", "still", " analysing"]
    )  # the cap came first: no TTFO
    assert (res.reasoning_chunks, res.t_first_answer, res.text) == (5, None, "")


def test_bare_harmony_moves_what_came_before_the_final_channel_to_reasoning() -> None:
    res = fed(["analysis", "Let", " me", "assistant", "final", "Paris", " is"])
    assert (res.reasoning_chunks, res.t_first_answer, res.text) == (5, 5.0, "Paris is")
    res = fed(["analysisLet me", "assistantfinalParis", " is"])
    assert (res.reasoning_chunks, res.t_first_answer, res.text) == (2, 1.0, "Paris is")


def test_the_words_alone_are_answer_text() -> None:
    """An answer that starts with the word 'analysis', or names a marker later, keeps its text."""
    words = ["analysis", " of", " the", " data", " shows"]
    res = fed(words)
    assert (res.reasoning_chunks, res.t_first_answer, res.text) == (0, 0.0, "".join(words))
    res = fed(["The", " tag", " <|channel|>", "final", "<|message|>", " opens", " it"])
    assert (res.reasoning_chunks, res.t_first_answer) == (0, 0.0)
    assert res.text == "The tag <|channel|>final<|message|> opens it"
