"""Run folders whose truth is known: rows written by the contract's own `RequestRecord`, stages in run.json.

Every request is given its send time, E2E and token count; its chunks arrive evenly from TTFT to
E2E, so the figures a test expects (requests per window, tokens arriving in a window) follow from
the parameters by hand.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

from core.record import COLUMNS, RequestRecord

T0 = 1_767_225_600.0


def request(
    step: int,
    t_send: float,
    e2e_s: float,
    tokens: int = 20,
    ttft_s: float = 0.1,
    users: int = 1,
    user: int = 1,
    worker: str = "w1",
    error: str = "",
    scheduled: float | None = None,
    received: int = 0,
) -> RequestRecord:
    """One request sent at `T0 + t_send`; `error` "cancelled" makes it a cancelled row, cut at `e2e_s`
    after the first `received` of its `tokens` chunks arrived (at the pace of the whole answer)."""
    rec = RequestRecord(run_id="syn", worker=worker, user=user, step=step, target_users=users, dataset="chat",
                        t_start_unix=T0 + t_send, request_id=f"{worker}-{user}-{t_send:.6f}", api="chat",
                        t_scheduled_unix=None if scheduled is None else T0 + scheduled)  # fmt: skip
    if error == "cancelled":
        rec.e2e_s, rec.error, rec.error_detail = (
            e2e_s,
            "cancelled",
            "user stopped while the request was in flight",
        )
        if received:  # what the transport had received when the user was stopped (loadgen/request.py)
            gap = (e2e_s - ttft_s) / received  # the next chunk was due when it was cut
            rec.ttft_s, rec.itl_s = ttft_s, [gap] * (received - 1)
            rec.n_chunks, rec.output_tokens, rec.tokens_source, rec.http_status = (
                received,
                received,
                "chunks",
                200,
            )
        return rec
    gap = (e2e_s - ttft_s) / (tokens - 1) if tokens > 1 else 0.0
    rec.ttft_s, rec.e2e_s, rec.itl_s = ttft_s, e2e_s, [gap] * (tokens - 1)
    rec.n_chunks, rec.output_tokens, rec.prompt_tokens = tokens, tokens, 100
    rec.tokens_source, rec.ok, rec.http_status, rec.finish_reason = "usage", not error, 200, "length"
    rec.error = error
    return rec


def stage(
    step: int, t0: float, t1: float | None, users: int = 1, rate_rps: float | None = None, **kw
) -> dict:
    """A run.json `stages[]` item from `T0 + t0` to `T0 + t1` (None: never closed)."""
    label = f"{rate_rps:g} req/s" if rate_rps is not None else f"{users} users"
    return {"step": step, "label": kw.pop("label", label), "target_users": users, "rate_rps": rate_rps,
            "warmup_s": 0.0, "cooldown_s": 0.0, "spawn_rate": 10.0, "t_start_unix": T0 + t0,
            "t_end_unix": None if t1 is None else T0 + t1, **kw}  # fmt: skip


def write_run(path: Path, rows: list[RequestRecord], stages: list[dict], **meta: object) -> Path:
    """requests.csv (sorted by send time, as the sink writes them) and run.json; the chat SLO."""
    path.mkdir(parents=True, exist_ok=True)
    with open(path / "requests.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(COLUMNS)
        w.writerows(r.row() for r in sorted(rows, key=lambda r: r.t_start_unix))
    ends = [s["t_end_unix"] for s in stages if s["t_end_unix"] is not None]
    doc = {"run_id": "syn", "name": path.name, "slo": {"profile": "chat", "ttft_s": 0.5, "tpot_s": 0.25},
           "stages": stages, "t_start_unix": T0, "t_end_unix": max(ends) if ends else None, **meta}  # fmt: skip
    (path / "run.json").write_text(json.dumps(doc))
    return path


def steady(
    step: int, users: int, t0: float, t1: float, rate_rps: float, e2e_s: float, **kw
) -> list[RequestRecord]:
    """Requests sent every 1/rate from t0 (inclusive) to t1 (exclusive), each lasting e2e_s."""
    n = round((t1 - t0) * rate_rps)
    return [
        request(step, t0 + i / rate_rps, e2e_s, users=users, user=i % max(users, 1), **kw) for i in range(n)
    ]
