"""The metric definitions, applied once per request: a `StreamResult`'s stamps → a row's figures.

The definitions, in the one place they are computed (README.md § "Metric definitions" explains them):
- TTFT: send → the first chunk carrying generated tokens of any kind — reasoning, answer text or a
  tool call (a role-only or empty chunk is not a token). A tool call's first delta, which carries
  the function name, is a generated token.
- TTFO (time to first output): send → the first chunk of the *answer*: content or a tool call, not
  reasoning (`ttfo_s`; reasoning written inline in the text — `<think>` tags, gpt-oss's channels —
  counts as reasoning: loadgen/transport/apis/inline.py). Undefined when the API streams reasoning as plain text (/v1/completions,
  TGI, llama.cpp's /completion: nothing tells the two apart) or when no answer came (a stream cut
  while reasoning). Without reasoning, TTFO = TTFT.
- reasoning time: TTFO − TTFT (the analysis derives it; no column of its own).
- reasoning tokens: the server's count (`usage.completion_tokens_details.reasoning_tokens`, which
  the Responses and SGLang parsers map their own fields onto), else the number of reasoning-only
  chunks; undefined where the API does not tell reasoning apart.
- tool-call timing: `tool_ttft_s` = send → the first tool-call delta; `tool_call_tokens` = the
  deltas carrying argument fragments (undefined when the answer had no tool call).
- ITL: the gaps between consecutive chunks of generated tokens (every kind);
- E2E: send → the last data event (a trailing usage chunk included);
- TPOT: (E2E − TTFT) / (output_tokens − 1), undefined for ≤ 1 token (core/record.py `tpot_s`);
- output tokens: the server's count when it sent one (`tokens_source` says which field: `usage`,
  SGLang's `meta_info`, TGI's `details`, llama.cpp's `timings`, Ollama's `eval_count`), else the number of generated
  chunks (`chunks`) — which loadgen/request.py replaces by the text's count under `--tokenizer`
  (`tokenizer`, loadgen/tokencount.py: the model's tokenizer is no part of the core).
- engine timing: the server's own prefill, decode, model-load and queue durations, copied as its
  stream's last event states them (`engine_prefill_s`, `engine_decode_s`, `engine_load_s`,
  `engine_queue_s`; core/result.py
  `EngineTiming` says whose field each is); nothing is derived from them here.
- speculative decoding: the server's draft tokens, accepted draft tokens and verify steps for the
  request (`spec_draft_tokens`, `spec_accepted_tokens`, `spec_steps`; core/result.py `SpecDecode`),
  copied as stated; the analysis pools them (analysis/specdecode.py).
"""

from __future__ import annotations

import itertools
from typing import Any

from core.record import RequestRecord
from core.result import StreamResult


def fill_record(rec: RequestRecord, res: StreamResult) -> None:
    """Copy `res`'s outcome into `rec` under the definitions above."""
    t0 = res.t_send
    times = res.text_times
    rec.http_status = res.status
    rec.new_connection = res.new_connection
    rec.served_model, rec.gateway_attempts = res.served_model, res.gateway_attempts
    rec.finish_reason = res.finish_reason
    rec.error, rec.error_detail = res.error, res.error_detail
    rec.ok = not res.error
    rec.n_chunks = len(times)
    if times:
        rec.ttft_s = times[0] - t0
        rec.itl_s = [b - a for a, b in itertools.pairwise(times)]
    last = res.t_last if res.t_last is not None else (times[-1] if times else None)
    if last is not None:
        rec.e2e_s = last - t0
    usage = res.usage
    details: dict = {}
    if usage and usage.get("completion_tokens") is not None:
        rec.tokens_source = res.tokens_source
        rec.output_tokens = int(usage["completion_tokens"])
        rec.prompt_tokens = _int(usage.get("prompt_tokens"))
        rec.cached_tokens = _int((usage.get("prompt_tokens_details") or {}).get("cached_tokens"))
        details = usage.get("completion_tokens_details") or {}
    elif times:
        rec.tokens_source = "chunks"
        rec.output_tokens = len(times)
    _fill_kinds(rec, res, details)
    if (engine := res.engine) is not None:
        rec.engine_prefill_s, rec.engine_decode_s, rec.engine_load_s, rec.engine_queue_s = engine
    if (spec := res.spec) is not None:
        rec.spec_draft_tokens, rec.spec_accepted_tokens, rec.spec_steps = spec


def _fill_kinds(rec: RequestRecord, res: StreamResult, details: dict) -> None:
    """TTFO, reasoning tokens and tool-call timing: which generated chunks were which."""
    t0 = res.t_send
    counted = details.get("reasoning_tokens")
    if counted is not None:
        rec.reasoning_tokens = int(counted)
    if res.splits_reasoning:
        if res.t_first_answer is not None:
            rec.ttfo_s = res.t_first_answer - t0
        if counted is None:
            rec.reasoning_tokens = res.reasoning_chunks
    if res.t_first_tool is not None:
        rec.tool_ttft_s = res.t_first_tool - t0
        rec.tool_call_tokens = res.tool_arg_chunks


def _int(v: Any) -> int | None:
    return None if v is None else int(v)
