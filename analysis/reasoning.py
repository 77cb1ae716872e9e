"""Reasoning and tool-call results of a run, as typed objects (Summary's `reasoning` and
`tool_calls`; summary.json's keys of the same names).

The per-request definitions are core/measure.py's (TTFO, reasoning tokens, tool_ttft_s,
tool_call_tokens; README.md § Metric definitions); the aggregates are computed once, in
analysis/metrics.py (`reasoning`, `tool_calls`): over completed requests, a run *reasoned* when
some request has reasoning_tokens > 0 — only then is there a `Reasoning` (and a "Reasoning"
section in the outputs) —, and has `ToolCalls` when some request was answered with a tool call.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from analysis.dist import Dist


@dataclass(frozen=True)
class Reasoning:
    """A run whose requests reasoned (analysis/reasoning.py): completed requests only.

    `ttfo` over every completed request with an answer (TTFO = TTFT where a request did not reason);
    `reasoning_time` (TTFO − TTFT) and `reasoning_tokens` (tokens, not seconds) over the requests
    that reasoned; `token_share` = reasoning tokens / output tokens.
    """

    requests: int
    share: float | None
    ttfo: Dist
    reasoning_time: Dist
    reasoning_tokens: Dist
    token_share: float | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "share": self.share,
            "ttfo_s": self.ttfo.to_dict(),
            "reasoning_time_s": self.reasoning_time.to_dict(),
            "reasoning_tokens": self.reasoning_tokens.to_dict(),
            "token_share": self.token_share,
        }


@dataclass(frozen=True)
class ToolCalls:
    """Completed requests answered with a tool call: send → first tool-call delta, argument chunks."""

    requests: int
    share: float | None
    tool_ttft: Dist
    argument_chunks: Dist

    def to_dict(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "share": self.share,
            "tool_ttft_s": self.tool_ttft.to_dict(),
            "argument_chunks": self.argument_chunks.to_dict(),
        }
