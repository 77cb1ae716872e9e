"""A server's speculative decoding of one request, as its last event states it (core/result.py `SpecDecode`).

Read once per request, on the event that carries the server's counts — never per token. Three
servers say it, each in its own words (read in their source):
- vLLM (0.32, `--speculative-config` with `--per-request-spec-decode-metrics summary`): a
  `speculative_decoding` object inside the `metrics` beside the last usage (chat, completions) or in
  `response.completed`'s response — `num_draft_tokens`, `num_accepted_draft_tokens`, `num_spec_steps`
  (entrypoints/generate/base/protocol.py `SpeculativeDecodingMetrics`). It rides there even without
  `--enable-per-request-metrics` (the `metrics` object then holds only it).
- SGLang (`/generate`'s last meta_info, a server with `--speculative-algorithm`): `spec_draft_token_num`,
  `spec_accept_token_num`, `spec_verify_ct` (its verify steps).
- llama-server with a draft model (`-md`): `draft_n` and `draft_n_accepted` in the final `timings`
  (its server-task.cpp result_timings); it states no step count.
A count that is missing, negative or not an integer, or more accepted than drafted, makes none: a
figure is copied as stated or not at all.
"""

from __future__ import annotations

from typing import Any

from core.result import SpecDecode, StreamResult

# Where each server keeps its (draft tokens, accepted tokens, verify steps); None: it states no step count.
VLLM = ("num_draft_tokens", "num_accepted_draft_tokens", "num_spec_steps")
SGLANG = ("spec_draft_token_num", "spec_accept_token_num", "spec_verify_ct")
LLAMACPP = ("draft_n", "draft_n_accepted", None)


def vllm_spec(res: StreamResult, metrics: dict) -> None:
    """vLLM's `metrics.speculative_decoding`."""
    spec = metrics.get("speculative_decoding")
    if type(spec) is dict:
        _state(res, spec, VLLM)


def sglang_spec(res: StreamResult, meta: dict) -> None:
    """SGLang's meta_info spec_ counts (present only on a server that speculates)."""
    _state(res, meta, SGLANG)


def llamacpp_spec(res: StreamResult, timings: dict) -> None:
    """llama-server's `timings.draft_n` / `draft_n_accepted` (present only with a draft model)."""
    _state(res, timings, LLAMACPP)


def _state(res: StreamResult, obj: dict, keys: tuple[str, str, str | None]) -> None:
    """The counts under `keys` as the row's, where the drafted count is there and all are counts."""
    drafted_key, accepted_key, steps_key = keys
    if drafted_key not in obj:
        return
    drafted, accepted = obj[drafted_key], obj.get(accepted_key)
    if not (_count(drafted) and _count(accepted)) or accepted > drafted:
        return
    steps = obj.get(steps_key) if steps_key else None
    res.spec = SpecDecode(drafted, accepted, steps if _count(steps) else None)


def _count(v: Any) -> bool:
    return type(v) is int and v >= 0
