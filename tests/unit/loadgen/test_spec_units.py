"""Speculative decoding as the servers state it (loadgen/transport/apis/spec.py): vLLM's real stream,
SGLang's meta_info and llama-server's timings become the row's three spec_ columns, copied as stated."""

from __future__ import annotations

import orjson

from core.record import COLUMNS, RequestRecord
from tests.unit.loadgen.test_apis import data, fixture, run

SPEC_AT = COLUMNS.index("spec_draft_tokens")


def spec_cells(rec: RequestRecord) -> list[str]:
    """The row's spec_draft_tokens, spec_accepted_tokens and spec_steps cells."""
    return rec.row()[SPEC_AT : SPEC_AT + 3]


def test_real_vllm_spec_decode_stream_states_draft_accepted_and_steps() -> None:
    """vLLM 0.32 (CPU) with an ngram drafter, K = 3, `--per-request-spec-decode-metrics summary`:
    each step streams its verified token plus the accepted ones in one chunk, so the chunks plus the
    accepted tokens are the tokens (nothing was cut at max_tokens in this capture)."""
    events = fixture("vllm-cpu-spec-decode-stream.txt")
    _, rec = run("chat", events)
    last = next(orjson.loads(d) for _, d in reversed(events) if b'"speculative_decoding"' in d)
    sd = last["metrics"]["speculative_decoding"]
    assert rec.ok and rec.tokens_source == "usage" and rec.output_tokens == 24
    assert (rec.spec_draft_tokens, rec.spec_accepted_tokens, rec.spec_steps) == (
        sd["num_draft_tokens"], sd["num_accepted_draft_tokens"], sd["num_spec_steps"])  # fmt: skip
    assert (rec.spec_draft_tokens, rec.spec_accepted_tokens, rec.spec_steps) == (16, 6, 9)
    assert rec.n_chunks + rec.spec_accepted_tokens == rec.output_tokens
    assert spec_cells(rec) == ["16", "6", "9"]


def test_vllm_spec_without_timing_and_in_responses_completed() -> None:
    """Without --enable-per-request-metrics vLLM's `metrics` holds only `speculative_decoding`; the
    Responses route carries it in response.completed's response."""
    spec = {"num_draft_tokens": 9, "num_accepted_draft_tokens": 4, "num_spec_steps": 3, "num_spec_tokens": 3}
    text = {"choices": [{"index": 0, "delta": {"content": "ab"}, "finish_reason": "length"}]}
    usage = {
        "choices": [],
        "usage": {"prompt_tokens": 3, "completion_tokens": 8},
        "metrics": {"speculative_decoding": spec},
    }
    _, rec = run("chat", data(text, usage, "[DONE]"))
    assert (rec.spec_draft_tokens, rec.spec_accepted_tokens, rec.spec_steps) == (9, 4, 3)
    assert rec.engine_prefill_s is None  # no timing stated: none made up
    _, rec = run("chat", fixture("vllm-cpu-per-request-metrics-stream.txt"))  # no drafter: empty
    assert (rec.spec_draft_tokens, rec.spec_accepted_tokens, rec.spec_steps) == (None, None, None)
    assert spec_cells(rec) == ["", "", ""]


def test_sglang_and_llamacpp_spec_counts_and_what_is_not_a_count() -> None:
    first = {"text": "ab", "meta_info": {"completion_tokens": 2}}
    last = {"text": "abcdef", "meta_info": {"completion_tokens": 6, "prompt_tokens": 4, "finish_reason": {"type": "length"},
            "spec_verify_ct": 3, "spec_accept_token_num": 2, "spec_draft_token_num": 9, "spec_accept_length": 2.0}}  # fmt: skip
    _, rec = run("sglang", data(first, last, "[DONE]"))
    assert rec.ok and (rec.spec_draft_tokens, rec.spec_accepted_tokens, rec.spec_steps) == (9, 2, 3)
    timings = {
        "prompt_n": 4,
        "prompt_ms": 5.0,
        "predicted_n": 6,
        "predicted_ms": 9.0,
        "draft_n": 8,
        "draft_n_accepted": 5,
    }
    text = {"choices": [{"index": 0, "delta": {"content": "a"}, "finish_reason": None}]}
    end = {"choices": [{"index": 0, "delta": {}, "finish_reason": "length"}], "timings": timings}
    _, rec = run("chat", data(text, end, "[DONE]"))
    assert (rec.spec_draft_tokens, rec.spec_accepted_tokens, rec.spec_steps) == (8, 5, None)
    plain = {k: v for k, v in timings.items() if not k.startswith("draft_")}
    for bad in ({"draft_n": 8, "draft_n_accepted": 9}, {"draft_n": 8.0, "draft_n_accepted": 5},
                {"draft_n": 8}, {"draft_n": -1, "draft_n_accepted": 0}):  # fmt: skip
        _, rec = run("chat", data(text, {**end, "timings": {**plain, **bad}}, "[DONE]"))
        assert (rec.spec_draft_tokens, rec.spec_accepted_tokens) == (None, None), bad
        assert rec.engine_prefill_s == 0.005  # the rest of the timings still read
