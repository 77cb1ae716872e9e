"""Speculative decoding as vLLM v1 runs it (`--speculative-config`), for the simulated engine.

A module of its own so that the engine's per-token loop costs what it cost before when speculation
is off: everything speculative — how many draft tokens a decode step verifies, how many of them are
accepted, the counters the servers report — lives here, and the engine only branches on `seq.draft`.

The model. The prefill step samples a request's first token alone. Every later step of the request
is a verify pass over a draft of K = num_speculative_tokens tokens (fewer only where the context or
the step's token budget ends, as vLLM's scheduler caps it; never capped at max_tokens, as vLLM does
not). Draft position i is accepted with probability `acceptance` if position i-1 was, so the count
a of accepted drafts is a truncated geometric: P(a >= j) = p^j, E[a] = p + p^2 + … + p^K. The step
emits 1 + a tokens for the request (the accepted drafts and the verifier's own token), cut where the
request ends (EOS or max_tokens), and its rejected draft positions are rolled back in the KV cache.
Every counter counts a as drawn, also when the request's end cut some accepted tokens off — vLLM
counts acceptance before its stop check — so for one request
    completion_tokens <= 1 + num_spec_steps + num_accepted_draft_tokens <= completion_tokens + K,
equal on the left unless the last step was cut, and the per-request figures summed over requests are
exactly the /metrics counters.

Cost: a verify pass computes 1 + K tokens per decoding sequence. The step-time model charges the
K draft tokens to its token term (prefill_token_s: they are computed like prompt tokens) and their
context to the KV term; the one verified token stays in decode_seq_s. The proposer's own time (an
n-gram lookup on the CPU) is not modelled. The acceptance draws come from one RNG per engine seeded
from --seed, so the virtual-time simulator (simserver/offline.py) replays them exactly.
"""

from __future__ import annotations

import json
import random
from typing import TYPE_CHECKING, Any

from simserver.kvcache import ROOT_HASH
from simserver.metrics import EngineStats
from simserver.profiles import SpecParams
from simserver.tokenizer import VOCAB

if TYPE_CHECKING:
    from simserver.seq import Seq
    from simserver.tokenizer import TextTable

# vLLM's SpeculativeConfig keys beside the two read here: accepted (a vLLM command line carries over)
# and ignored. Anything else is a mistake worth naming.
VLLM_KEYS = frozenset((
    "method", "model", "draft_tensor_parallel_size", "tensor_parallel_size", "quantization", "moe_backend",
    "attention_backend", "kv_cache_dtype", "max_model_len", "revision", "code_revision", "enforce_eager",
    "disable_padded_drafter_batch", "prompt_lookup_max", "prompt_lookup_min", "parallel_drafting",
    "num_speculative_tokens_per_batch_size", "suffix_decoding_max_tree_depth",
    "suffix_decoding_max_cached_requests", "suffix_decoding_max_spec_factor",
    "suffix_decoding_min_token_prob", "rejection_sample_method", "synthetic_acceptance_rates",
    "synthetic_acceptance_length", "draft_sample_method", "enable_adaptive_verification",
))  # fmt: skip
EXAMPLE = '\'{"method":"ngram","num_speculative_tokens":3,"acceptance":0.7}\''


def parse_speculative_config(text: str) -> SpecParams:
    """`--speculative-config JSON` → SpecParams; ValueError says what is wrong and what is expected."""
    try:
        data = json.loads(text)
    except ValueError:
        raise ValueError(f"not valid JSON ({text!r}); expected an object such as {EXAMPLE}") from None
    if not isinstance(data, dict):
        raise ValueError(f"expected a JSON object such as {EXAMPLE}, got {text!r}")
    unknown = sorted(set(data) - VLLM_KEYS - {"num_speculative_tokens", "acceptance"})
    if unknown:
        raise ValueError(
            f"unknown key {unknown[0]!r} (read: num_speculative_tokens, acceptance; "
            "vLLM's other SpeculativeConfig keys are accepted and ignored)"
        )
    k = data.get("num_speculative_tokens")
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"num_speculative_tokens must be an integer >= 1, got {k!r}")
    p = data.get("acceptance", SpecParams().acceptance)
    if isinstance(p, bool) or not isinstance(p, int | float) or not 0 < p <= 1:
        raise ValueError(f"acceptance must be a number in (0, 1], got {p!r}")
    return SpecParams(k, float(p))


class SpecCounts:
    """One request's verify steps: how many, draft tokens proposed, drafts accepted, and the steps
    that accepted exactly j drafts (j = 0..K) — what vLLM's per-request summary is made of."""

    __slots__ = ("accepted", "drafted", "hist", "steps")

    def __init__(self, k: int) -> None:
        self.steps = self.drafted = self.accepted = 0
        self.hist = [0] * (k + 1)

    def summary(self) -> dict[str, Any]:
        """vLLM's `metrics.speculative_decoding` (--per-request-spec-decode-metrics summary)."""
        steps, accepted, drafted = self.steps, self.accepted, self.drafted
        return {
            "mean_acceptance_length": 1.0 + accepted / steps if steps else 1.0,
            "draft_acceptance_rate": accepted / drafted if drafted else 0.0,
            "acceptance_histogram": list(self.hist),
            "num_spec_steps": steps,
            "num_accepted_draft_tokens": accepted,
            "num_draft_tokens": drafted,
            "num_spec_tokens": len(self.hist) - 1,
        }


class SpecDecoder:
    """The engine's speculative side: draft sizes at scheduling, acceptance draws at completion."""

    def __init__(self, params: SpecParams, seed: int, stats: EngineStats) -> None:
        self.k, self.p = params.num_speculative_tokens, params.acceptance
        self.rng = random.Random(f"specdecode-{seed}")  # its own stream: output lengths stay as without
        self.stats = stats
        stats.spec_per_pos = [0] * self.k  # non-empty: /metrics shows the spec_decode counters

    def drafts(self, seq: Seq, budget: int, max_model_len: int) -> int:
        """Draft tokens the decode step of `seq` verifies: K, within the step's token budget and the
        context (vLLM caps the step's tokens at max_model_len − computed − 1)."""
        return max(0, min(self.k, budget - 1, max_model_len - seq.num_tokens - 1))

    def verify(self, seq: Seq, text: TextTable, block_size: int) -> list[int]:
        """Complete the verify step of `seq`: draw the accepted drafts, count them, append the step's
        tokens (1 + accepted, cut at the request's end) and return their vocabulary indices.
        `block_size` 0: no prefix caching, no block hashes to extend."""
        d, seq.draft = seq.draft, 0
        a, rand, p = 0, self.rng.random, self.p
        while a < d and rand() < p:
            a += 1
        c = seq.spec
        assert c is not None
        c.steps += 1
        c.drafted += d
        c.accepted += a
        c.hist[a] += 1
        s = self.stats
        s.spec_drafts += 1
        s.spec_draft_tokens += d
        s.spec_accepted += a
        per_pos = s.spec_per_pos
        for i in range(a):
            per_pos[i] += 1
        e = min(1 + a, seq.target_len - seq.num_output)
        table, mask, start = text.table, text.mask, seq.text_off + seq.num_output
        out = [table[(start + i) & mask] for i in range(e)]
        seq.num_output += e
        seq.num_tokens += e
        seq.num_computed += e  # the input token and the kept drafts; the rest roll back
        if block_size:
            _extend_tail(seq, out, block_size)
        return out


def _extend_tail(seq: Seq, out: list[int], block_size: int) -> None:
    """Append the tokens to the sequence's trailing partial block, hashing each block that fills
    (the prefix cache's chained hashes, as the engine's one-token path does)."""
    tail = seq.tail
    assert tail is not None
    for idx in out:
        tail.append(VOCAB[idx])
        if len(tail) == block_size:
            parent = seq.block_hashes[-1] if seq.block_hashes else ROOT_HASH
            seq.block_hashes.append(hash((parent, tuple(tail))))
            tail = seq.tail = []


# -- how the native servers state it at the end of an answer -------------------------------------
def llamacpp_draft(seq: Seq | None) -> dict[str, int]:
    """llama-server's `timings` keys for a request that drafted (its result_timings: only then)."""
    c = seq.spec if seq is not None else None
    if c is None or not c.drafted:
        return {}
    return {"draft_n": c.drafted, "draft_n_accepted": c.accepted}


def sglang_spec(seq: Seq | None, completion_tokens: int) -> bytes:
    """SGLang's speculative keys of the final meta_info (`,"spec_verify_ct":…`), b"" when it is off:
    verify steps, accepted and draft tokens, accepted/draft, and completion tokens per verify step."""
    c = seq.spec if seq is not None else None
    if c is None:
        return b""
    rate = c.accepted / c.drafted if c.drafted else 0.0
    length = completion_tokens / c.steps if c.steps else float(completion_tokens)
    return b',"spec_verify_ct":%d,"spec_accept_token_num":%d,"spec_draft_token_num":%d,"spec_accept_rate":%r,"spec_accept_length":%r' % (
        c.steps, c.accepted, c.drafted, rate, length,
    )  # fmt: skip
