"""Will the workload fit the server's context (loadgen/run/fit.py, workloads/stats.py `requests_over`):
counts against synthetic workloads whose lengths are known, and the stop when nothing can fit."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.errors import OptionError
from core.tokens import count_tokens
from loadgen.run.fit import check_fit
from loadgen.run.serverfacts import Context
from workloads.conversation import Conversation, Turn, Workload, output_cap, request_messages
from workloads.stats import requests_above


def ctx(tokens: int, strict: bool = True) -> Context:
    return Context(tokens, "max_model_len in /v1/models", strict)


def words(n: int) -> str:
    return " ".join(["w"] * n)  # n tokens by the rule, 2n - 1 characters


def single(*prompts: tuple[int, int | None]) -> Workload:
    convs = tuple(
        Conversation(f"c{i}", (), (Turn(({"role": "user", "content": words(n)},), cap),))
        for i, (n, cap) in enumerate(prompts)
    )
    return Workload("synthetic", "synthetic", "generated", convs)


def test_counts_the_requests_over_the_context_with_their_caps() -> None:
    """Context 1,024, --max-tokens 128: 100 + 128 fits, 896 + 128 = 1,024 fits exactly, 900 + 128
    does not, 1,000 with its own cap 20 fits, 1,000 with 128 does not, 2,000 fills it alone."""
    wl = single((100, None), (896, None), (900, None), (1000, 20), (1000, None), (2000, 512))
    fit = check_fit("synthetic", wl, 128, ctx(1024))
    assert (fit.requests, fit.over, fit.longest_prompt, fit.its_cap) == (6, 3, 2000, 128)
    line = fit.warning()
    assert (
        "3 of 6 requests of --dataset synthetic (50 %) will not fit the server's context of 1,024 tokens"
        in line
    )
    assert "the longest prompt, ~2,000 tokens (Goodput's estimate), fills it by itself" in line
    assert "lower --max-tokens" in line


def test_all_fit_says_nothing_and_the_longest_is_named_with_its_cap() -> None:
    assert check_fit("s", single((10, None), (20, 5)), 16, ctx(4096)).warning() == ""
    fit = check_fit("s", single((10, None), (1000, None)), 64, ctx(1050))
    assert (fit.over, fit.longest_prompt, fit.its_cap) == (1, 1000, 64)
    assert "~1,000 tokens (Goodput's estimate), with max_tokens 64 needs ~1,064" in fit.warning()


def test_an_output_cap_larger_than_the_context_stops_the_run() -> None:
    with pytest.raises(
        OptionError, match=r"--max-tokens 4,097: the server's context is 4,096 tokens .* below 4,096"
    ):
        check_fit("s", single((10, None), (20, None)), 4097, ctx(4096))
    # a server that generates until its context is full (llama-server): counted, not stopped
    assert check_fit("s", single((10, None), (20, None)), 4097, ctx(4096, strict=False)).over == 2
    # at the context, a server may still answer (vLLM clamps max_tokens): counted, not stopped
    assert check_fit("s", single((10, None), (20, None)), 4096, ctx(4096)).over == 2
    # a turn whose own cap is smaller fits or not by its prompt: no stop, counted as usual
    assert check_fit("s", single((10, None), (20, 100)), 4097, ctx(4096)).over == 1


def test_multi_turn_history_grows_into_the_limit() -> None:
    """Turn t is sent with every earlier turn and recorded reply: the later turns go over first."""
    turns = tuple(Turn(({"role": "user", "content": words(100)},), 50, reply=words(100)) for _ in range(5))
    wl = Workload(
        "s", "s", "generated", (Conversation("c", ({"role": "system", "content": words(50)},), turns),)
    )
    # prompts 150, 350, 550, 750, 950 tokens; with the cap 50: 200 … 1000 > 700 from the fourth turn
    fit = check_fit("s", wl, 512, ctx(700))
    assert (fit.requests, fit.over, fit.longest_prompt, fit.its_cap) == (5, 2, 950, 50)


turn = st.builds(
    lambda n, cap, reply: Turn(
        ({"role": "user", "content": words(n)},), cap, reply=words(reply) if reply else None
    ),
    st.integers(0, 300),
    st.one_of(st.none(), st.integers(1, 400)),
    st.one_of(st.none(), st.integers(1, 200)),
)
conv = st.builds(
    lambda i, pre, ts: Conversation(
        str(i), ({"role": "system", "content": words(pre)},) if pre else (), tuple(ts)
    ),
    st.integers(),
    st.integers(0, 200),
    st.lists(turn, min_size=1, max_size=4),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(conv, min_size=1, max_size=6), st.integers(1, 500), st.integers(50, 2000))
def test_requests_over_is_what_counting_every_request_gives(convs, cap: int, context: int) -> None:
    """The characters-first shortcut never changes the answer: the same as counting every prompt."""
    wl = Workload("s", "s", "generated", tuple(convs))
    truth = []
    for c in convs:
        for t, tn in enumerate(c.turns):
            n = sum(count_tokens(m["content"]) for m in request_messages(c, t))
            if n + output_cap(tn.max_tokens, cap) > context:
                truth.append((n, output_cap(tn.max_tokens, cap)))
    assert [(n, c) for _, _, n, c in requests_above(wl, cap, context)] == truth


def server_count(messages: list[dict]) -> int:
    """A tokenizer unlike Goodput's rule: 3 tokens per word, and 7 of template per message."""
    return sum(3 * count_tokens(m["content"]) + 7 for m in messages)


def test_a_server_tokenizer_scales_the_estimate_and_decides_near_the_limit() -> None:
    """With the server's count (its /tokenize), the fit is its: the longest prompts set the scale,
    and every request near the limit is counted there, so the count is exact here."""
    lengths = list(range(50, 2000, 37))  # 53 prompts, 50 … 1974 words
    wl = single(*((n, None) for n in lengths))
    truth = [n for n in lengths if 3 * n + 7 + 64 > 4096]
    calls: list[int] = []

    def count(messages: list[dict]) -> int:
        calls.append(1)
        return server_count(messages)

    fit = check_fit("s", wl, 64, ctx(4096), count)
    assert fit.over == len(truth) and abs(fit.longest_prompt - (3 * max(lengths) + 7)) <= 2  # scaled: ~
    assert fit.scale is not None and 3.0 < fit.scale < 3.01  # the longest prompts' template weighs little
    assert fit.sampled == len(calls) <= 16 + 64
    assert "counted by the server for" in fit.warning() and f"× {fit.scale:.2f}" in fit.warning()
    # Goodput's estimate alone (a server without /tokenize) is a third of the truth here
    alone = check_fit("s", wl, 64, ctx(4096), lambda messages: None)
    assert (alone.scale, alone.sampled, alone.over) == (None, 0, sum(1 for n in lengths if n + 64 > 4096))
    assert (
        "(Goodput's estimate)"
        in check_fit("s", single((5000, None)), 64, ctx(4096), lambda m: None).warning()
    )


def test_the_context_is_read_from_the_model_card_with_what_the_server_does_above_it() -> None:
    """vLLM's and SGLang's max_model_len refuses a larger max_tokens (strict); OpenRouter's
    context_length is taken as said; without either (and no /props: nothing listens) there is none."""
    from loadgen.run.serverfacts import Asker, context_length

    nobody = Asker("http://127.0.0.1:1", "OPENAI_API_KEY", "raw", None, timeout_s=1)
    assert context_length({"id": "m", "max_model_len": 4096}, nobody) == (
        4096,
        "max_model_len in /v1/models",
        True,
    )
    assert context_length({"id": "m", "context_length": 131072}, nobody) == (
        131072, "context_length in /v1/models", False,
    )  # fmt: skip
    for card in ({"id": "m"}, {"id": "m", "max_model_len": None}, {"id": "m", "max_model_len": "4k"}, None):
        assert context_length(card, nobody) is None


def test_a_server_that_stops_counting_leaves_the_ratio_of_what_it_counted() -> None:
    """Its counting budget spent after 6 of the 16 longest, the ratio is theirs; after 2, none."""
    wl = single(*((n, None) for n in range(1000, 3000, 100)))  # 20 prompts

    def stops_after(k: int):
        calls: list[int] = []

        def count(messages: list[dict]) -> int | None:
            calls.append(1)
            return server_count(messages) if len(calls) <= k else None

        return count

    fit = check_fit("s", wl, 64, ctx(4096), stops_after(6))
    assert fit.scale is not None and 3.0 < fit.scale < 3.01 and fit.sampled == 6
    fit = check_fit("s", wl, 64, ctx(4096), stops_after(2))
    assert (fit.scale, fit.sampled) == (None, 0)


def pictured(*prompts: tuple[int, int]) -> Workload:
    """Single requests of `n` words and `k` pictures each."""
    part = {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,AAAA"}}
    convs = tuple(
        Conversation(f"c{i}", (), (Turn(({"role": "user", "content": [{"type": "text", "text": words(n)}, *[part] * k]},), None),))
        for i, (n, k) in enumerate(prompts)
    )  # fmt: skip
    return Workload("pictures", "pictures", "generated", convs)


def test_pictures_are_counted_by_the_server_apart_from_the_text() -> None:
    """A server counting 2 tokens a word and 300 a picture: the text's scale is 2 (the pictures left out
    of the calibration), each picture 300, and a request fits by both: 400 words and 2 pictures is
    800 + 600 + 64 over a context of 1,400; 300 words and 1 picture (600 + 300 + 64) fits."""
    asked: list[int] = []

    def count(messages: list[dict]) -> int:
        text = sum(count_tokens(p["text"]) for m in messages for p in m["content"] if p.get("type") == "text")
        pictures = sum(p.get("type") == "image_url" for m in messages for p in m["content"])
        asked.append(pictures)
        return 2 * text + 300 * pictures

    fit = check_fit("pictures", pictured((400, 2), (300, 1), (350, 1)), 64, ctx(1400), count)
    assert (fit.scale, fit.pictures, fit.picture_tokens) == (2.0, 4, 300.0)
    assert (fit.over, fit.longest_prompt) == (1, 1400)
    assert "and 300 tokens a picture by the server's count" in fit.warning()
    assert fit.picture_line().endswith(
        "counts one of its pictures as 300 prompt tokens (a request counted with and without them)"
    )
    assert asked[:3] == [0, 0, 0]  # the calibration counts the text alone
    assert fit.to_dict()["tokens_per_picture"] == 300.0


def test_a_server_that_counts_no_pictures_is_said_so() -> None:
    """A counting route that takes text (SGLang's /tokenize): with and without pictures the same count."""

    def count(messages: list[dict]) -> int:
        return sum(count_tokens(p["text"]) for m in messages for p in m["content"] if p.get("type") == "text")

    fit = check_fit("pictures", pictured((100, 1), (200, 1)), 64, ctx(4096), count)
    assert (fit.pictures, fit.picture_tokens) == (2, None)
    assert "the server did not count one" in fit.picture_line()
    assert check_fit("s", single((10, None)), 16, ctx(4096)).picture_line() == ""
