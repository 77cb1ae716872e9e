"""The metric definitions, applied once per request: a `StreamResult`'s stamps → a row's figures.

The definitions, in the one place they are computed (README.md § "Metric definitions" explains them):
- TTFT: send → first chunk carrying generated text (a role-only or empty chunk is not a token);
- ITL: the gaps between consecutive text-bearing chunks;
- E2E: send → the last data event (a trailing usage chunk included);
- TPOT: (E2E − TTFT) / (output_tokens − 1), undefined for ≤ 1 token (core/record.py `tpot_s`);
- output tokens: the server's `usage` when it sent one (`tokens_source=usage`), else the number of
  text-bearing chunks (`chunks`).
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
    if usage and usage.get("completion_tokens") is not None:
        rec.tokens_source = "usage"
        rec.output_tokens = int(usage["completion_tokens"])
        rec.prompt_tokens = _int(usage.get("prompt_tokens"))
        details = usage.get("prompt_tokens_details") or {}
        rec.cached_tokens = _int(details.get("cached_tokens"))
    elif times:
        rec.tokens_source = "chunks"
        rec.output_tokens = len(times)


def _int(v: Any) -> int | None:
    return None if v is None else int(v)
