"""The one definition of every aggregate: distributions, throughput, errors, goodput, attainment, checks.

Definitions (explained for users in README.md § Metric definitions; windows: analysis/windows.py):
- the run's window: first send → last completion of the requests it holds, `min(t_start_unix)` →
  `max(t_start_unix + e2e_s)` (the start-up and the first warm-up are not held, unless asked).
- req/s: completed (`ok`) requests that completed inside the window / window; output tok/s: the output
  tokens of completed requests that *arrived* inside it / window; input tok/s: the prompt tokens of
  the requests completed inside it / window. Without start-up or warm-up these are every completed
  request and all its tokens (what they always were); with them, requests sent before the window
  that complete inside it count too — the server served them there, and leaving them out would
  bias every rate low by the in-flight requests at the window's start.
- goodput: good requests (every per-request limit of the SLO: TTFT, TTFO, TPOT, E2E) completed
  inside the window / window. SLO attainment: good requests / all
  requests *sent* in the window, except those the load generator itself cancelled
  (`error == "cancelled"`: in flight when the run ended or a user was stopped) — the server was never
  given the chance to finish them, and counting them would bias the last step.
- latency distributions use completed requests sent in the window only (a failure's TTFT or E2E is
  not a service time); TPOT where defined (> 1 output token); ITL: every gap of every completed request.
- percentiles: numpy's default linear interpolation over raw rows (as vLLM's benchmark), never averaged.
- a load level's figures: analysis/steps.py over the level's window (analysis/windows.py).
- reasoning (analysis/reasoning.py says what the results hold): only when some completed request
  reasoned (reasoning_tokens > 0); TTFO over every completed request with an answer, reasoning time
  (TTFO − TTFT) and tokens over those that reasoned; tool calls only when some request made one.

Each function returns a typed result (analysis/results.py); analysis/summary.py assembles them.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa

from analysis import windows as win
from analysis.itl import Distribution
from analysis.results import Check, Dist, OpenLoop, Reasoning, Throughput, ToolCalls, Verdict
from core.slo import Slo

PCTS = (50.0, 90.0, 95.0, 99.0)


def dist(values: np.ndarray) -> Dist:
    """`{mean, p50, p90, p95, p99, max}` of raw values (NaN dropped); all None when there are none."""
    v = np.asarray(values, dtype=np.float64)
    v = v[~np.isnan(v)]
    if v.size == 0:
        return Dist(None, None, None, None, None, None, n=0)
    p = np.percentile(v, PCTS)
    return Dist(
        float(v.mean()), float(p[0]), float(p[1]), float(p[2]), float(p[3]), float(v.max()), n=int(v.size)
    )


def dist_itl(d: Distribution) -> Dist:
    """The same six figures from the ITL histogram (exact; see analysis/itl.py)."""
    p = d.percentiles_s(PCTS)
    return Dist(d.mean_s(), p[0], p[1], p[2], p[3], d.max_s(), n=d.n)


def end_times(df: pd.DataFrame) -> np.ndarray:
    """Completion time of each row; a row without E2E ends when it was sent."""
    return df["t_start_unix"].to_numpy() + np.nan_to_num(df["e2e_s"].to_numpy(), nan=0.0)


def window(df: pd.DataFrame) -> tuple[float, float]:
    """(first send, last completion) in unix seconds."""
    return float(df["t_start_unix"].min()), float(end_times(df).max())


def good_mask(df: pd.DataFrame, slo: Slo) -> np.ndarray:
    """Vectorized `ok and Slo.is_good(...)`: the same rule as the live view, row by row."""
    good = df["ok"].to_numpy(dtype=bool).copy()
    if slo.ttft_s is not None:
        good &= df["ttft_s"].to_numpy() <= slo.ttft_s  # NaN compares False: no first token, not good
    if slo.ttfo_s is not None:  # no answer (or a run without the column): not good
        good &= _values(df, "ttfo_s") <= slo.ttfo_s
    if slo.tpot_s is not None:
        tpot = df["tpot_s"].to_numpy()
        good &= np.isnan(tpot) | (tpot <= slo.tpot_s)  # undefined TPOT (≤ 1 token) passes, as vLLM
    if slo.e2e_s is not None:
        good &= df["e2e_s"].to_numpy() <= slo.e2e_s
    return good


CANCELLED = "cancelled"


def judged(df: pd.DataFrame) -> np.ndarray:
    """Rows that count in SLO attainment: every sent request but those the load generator cancelled."""
    return (df["error"].astype(object) != CANCELLED).to_numpy(dtype=bool)


def errors_by_category(df: pd.DataFrame) -> dict[str, int]:
    """Failed rows by `error` category, most frequent first; a failure without a category is `unknown`."""
    failed = df.loc[~df["ok"], "error"].astype(object).fillna("")
    counts = failed.replace("", "unknown").value_counts()
    return {str(k): int(v) for k, v in counts.items()}


def _ratio(a: int, b: int) -> float | None:
    return a / b if b else None


def rate(count: float, duration_s: float) -> float | None:
    return float(count) / duration_s if duration_s > 0 else None


def throughput(df: pd.DataFrame, rows: np.ndarray, good: np.ndarray, itl: pa.ChunkedArray) -> Throughput:
    """The run's counts (the `rows` sent in its window) and rates (what completed or arrived inside it)."""
    sel = df[rows]
    t0, t1 = window(sel)
    dur = t1 - t0
    ok = df["ok"].to_numpy(dtype=bool)
    done = win.completed_in(df, ok, t0, t1)
    out_tok = float(
        win.tokens_in_windows(df, itl, win.generated(df), [(t0, float(np.nextafter(t1, np.inf)))])[0]
    )
    in_tok = float(np.nansum(df["prompt_tokens"].to_numpy()[done]))
    n, n_ok, n_good = len(sel), int(ok[rows].sum()), int(good[rows].sum())
    n_judged = int(judged(sel).sum())
    return Throughput(
        requests=n,
        cancelled=n - n_judged,
        ok=n_ok,
        good=n_good,
        t_start_unix=t0,
        t_end_unix=t1,
        duration_s=dur,
        req_per_s=rate(int(done.sum()), dur),
        output_tok_per_s=rate(out_tok, dur),
        input_tok_per_s=rate(in_tok, dur),
        total_tok_per_s=rate(out_tok + in_tok, dur),
        goodput_req_per_s=rate(int((done & good).sum()), dur),
        slo_attainment=n_good / n_judged if n_judged else None,
    )


def latency_values(df: pd.DataFrame, metric: str) -> np.ndarray:
    """Raw values of one per-request latency over completed requests."""
    return _values(df, metric)[df["ok"].to_numpy(dtype=bool)]


def _values(df: pd.DataFrame, column: str) -> np.ndarray:
    """A column's values; all NaN when the run has no such column (ttfo_s before it existed)."""
    return df[column].to_numpy(dtype=np.float64) if column in df else np.full(len(df), np.nan)


def percentile_checks(df: pd.DataFrame, itl: Distribution, slo: Slo) -> list[Check]:
    """Run-level checks such as `p99 TPOT ≤ 250 ms`: value, limit, pass; no samples → fail (nothing shown)."""
    out = []
    for c in slo.percentiles:
        if c.metric == "itl":
            value = itl.percentiles_s((c.q,))[0]
        else:
            v = latency_values(df, f"{c.metric}_s")
            v = v[~np.isnan(v)]
            value = float(np.percentile(v, c.q)) if v.size else None
        passed = value is not None and value <= c.limit_s
        out.append(Check(c.label, c.metric, c.q, c.limit_s, value, passed))
    return out


def verdict(df: pd.DataFrame, rows: np.ndarray, itl: Distribution, slo: Slo) -> Verdict:
    """Does the run (the `rows` sent in its window) meet `slo`? Attainment ≥ target and every percentile check."""
    sel = df[rows]
    good = good_mask(df, slo)
    n = int(judged(sel).sum())
    att = float(good[rows].sum()) / n if n else None
    checks = percentile_checks(sel, itl, slo)
    t0, t1 = window(sel)
    done = win.completed_in(df, good, t0, t1)
    ok_target = att is not None and att >= slo.attain_target
    return Verdict(
        slo=slo.name,
        describe=slo.describe(),
        slo_attainment=att,
        attain_target=slo.attain_target,
        goodput_req_per_s=rate(int(done.sum()), t1 - t0),
        checks=checks,
        passed=bool(ok_target and all(c.passed for c in checks)),
    )


def open_loop(df: pd.DataFrame, slo: Slo) -> OpenLoop | None:
    """Open-loop runs: latency from the *intended* send time (no coordinated omission) and the send lag.

    A generator that falls behind sends late; measuring from `t_start_unix` would hide the wait
    the request would have suffered. `*_from_scheduled_s` add the lag back.
    """
    if "t_scheduled_unix" not in df:
        return None
    sched = df["t_scheduled_unix"].to_numpy()
    has = ~np.isnan(sched)
    if not has.any():
        return None
    sub = df[has]
    lag = sub["t_start_unix"].to_numpy() - sched[has]
    ok = sub["ok"].to_numpy(dtype=bool)
    ttft_s = sub["ttft_s"].to_numpy() + lag
    e2e_s = sub["e2e_s"].to_numpy() + lag
    shifted = sub.assign(ttft_s=ttft_s, e2e_s=e2e_s, ttfo_s=_values(sub, "ttfo_s") + lag)
    good = good_mask(shifted, slo)
    s0, s1 = float(np.nanmin(sched)), float(np.nanmax(sched))
    t0, t1 = window(sub)
    starts = sub["t_start_unix"].to_numpy()
    return OpenLoop(
        requests=len(sub),
        scheduled_rate_rps=rate(len(sub) - 1, s1 - s0),
        achieved_rate_rps=rate(len(sub) - 1, float(starts.max() - starts.min())),
        send_lag_s=dist(lag),
        ttft_from_scheduled_s=dist(ttft_s[ok]),
        e2e_from_scheduled_s=dist(e2e_s[ok]),
        goodput_from_scheduled_req_per_s=rate(int(good.sum()), t1 - t0),
        slo_attainment_from_scheduled=_ratio(int(good.sum()), int(judged(sub).sum())),
    )


def reasoning(df: pd.DataFrame) -> Reasoning | None:
    """The reasoning figures of these rows, or None when no completed request reasoned."""
    ok = df["ok"].to_numpy(dtype=bool)
    tokens = _values(df, "reasoning_tokens")[ok]
    reasoned = np.nan_to_num(tokens) > 0
    if not reasoned.any():
        return None
    ttft, ttfo = _values(df, "ttft_s")[ok], _values(df, "ttfo_s")[ok]
    output = np.nansum(df["output_tokens"].to_numpy(dtype=np.float64)[ok])
    return Reasoning(
        requests=int(reasoned.sum()),
        share=float(reasoned.mean()),
        ttfo=dist(ttfo),
        reasoning_time=dist((ttfo - ttft)[reasoned]),  # NaN (no answer came) is dropped
        reasoning_tokens=dist(tokens[reasoned]),
        token_share=float(np.nansum(tokens) / output) if output > 0 else None,
    )


def tool_calls(df: pd.DataFrame) -> ToolCalls | None:
    """Tool-call timing of these rows, or None when no completed request was answered with a tool call."""
    ok = df["ok"].to_numpy(dtype=bool)
    tool_ttft = _values(df, "tool_ttft_s")[ok]
    called = ~np.isnan(tool_ttft)
    if not called.any():
        return None
    return ToolCalls(
        requests=int(called.sum()),
        share=float(called.mean()),
        tool_ttft=dist(tool_ttft[called]),
        argument_chunks=dist(_values(df, "tool_call_tokens")[ok][called]),
    )
