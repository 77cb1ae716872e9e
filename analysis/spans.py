"""The engine's own timing of each request, joined with the client's row: where the time went, and why SLOs were missed.

Two sources, the spans first: an engine's spans (below); without server_spans.csv, the timing the
server's stream stated on each row (llama-server, Ollama: analysis/enginetiming.py, its own
components). The share rule and the attribution below are the same for both.

`<run>/server_spans.csv` (written during the run by `--otlp-listen`, loadgen/monitors/spans.py)
holds one row per engine span: vLLM's `llm_request` (or the simulated engine's copy of it) with
`gen_ai.latency.*` — queue, prefill, decode, TTFT and E2E as the engine measured them.

Join rule: a row of requests.csv joins the span whose `x_request_id` (the client's X-Request-Id,
recovered from vLLM's `chatcmpl-<id>` / `cmpl-<id>-0`) equals the row's `request_id`, when exactly
one span has it. A completed row with no span is `unjoined`, one with several is `ambiguous` and
is not joined either: nothing is guessed, every row is counted in one of them.

Per joined request (`per_request`): `server_queue_s`, `server_prefill_s`, `server_decode_s`,
`server_ttft_s`, `server_e2e_s` from the span; `server_other_s` = server E2E − queue − prefill −
decode and `server_ttft_other_s` = server TTFT − queue − prefill (the engine's input processing
before the queue and its output hand-off after the last token); `client_remainder_s` = client
E2E − server E2E and `client_ttft_remainder_s` = client TTFT − server TTFT (network and the
HTTP/API layer: what lies outside the engine's span). The parts of analysis/timing.py add up to
the client's latency by construction; the server part is the engine's own measure.

Share rule ("which component exceeded its share"), per SLO limit L of a metric (TTFT, TPOT, E2E;
components as in analysis/timing.py `METRIC_COMPONENTS`):
1. Reference requests: the joined completed requests of the run within L. Each component's share
   of the limit is its fraction of their mean latency: f_i = mean(c_i) / mean(latency). With fewer
   than `MIN_REFERENCE` such requests, the lowest load step's joined completed requests are the
   reference instead (what the engine does unloaded); without those, nothing is attributed.
2. A request over L is attributed to the component with the largest excess c_i − f_i·L. Since
   the c_i add up to its latency (> L) and the f_i·L add up to L, at least one component exceeds
   its share; the attributed one is the one that exceeds it most. The shares are the run's, the
   same for every step, so "82 % of TTFT misses at 9 users were queueing" compares like with like.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv

from analysis import enginetiming
from analysis.load import Run
from analysis.results import Step
from analysis.timing import (
    METRIC_COMPONENTS,
    Decomposition,
    Misses,
    ServerTiming,
    Shares,
    TimingStep,
    metric_components,
)
from core.slo import Slo

SPAN_FILE = "server_spans.csv"
SPAN_VALUES = ("queue_s", "prefill_s", "decode_s", "ttft_s", "e2e_s")
MIN_REFERENCE = 10


@dataclass
class Joined:
    """The rows' server timing, aligned with `Run.df` (NaN where a row did not join), and the counts."""

    frame: pd.DataFrame
    ids: np.ndarray | None  # each row's request id
    span_count: np.ndarray  # spans per row's request id
    spans: int
    spans_without_row: int
    warnings: list[str] = field(default_factory=list)
    source: str = "spans"  # or "stream": the rows' own engine timing (analysis/enginetiming.py)
    has_load: bool = False  # (stream) some row states a model load
    has_queue: bool = False  # (stream) some row states the server's queue time


def load_spans(run_dir: Path) -> tuple[pd.DataFrame | None, list[str]]:
    """server_spans.csv's join key and durations; None when absent; a broken file is a warning."""
    p = run_dir / SPAN_FILE
    if not p.exists():
        return None, []
    wanted = {"x_request_id", *SPAN_VALUES}  # of 27 columns: a big run's file parses in a fraction
    try:
        df = pd.read_csv(
            p,
            usecols=lambda c: c in wanted,
            dtype={"x_request_id": str},
            keep_default_na=False,
            na_values={c: [""] for c in SPAN_VALUES},
        )
    except (OSError, ValueError, pd.errors.ParserError) as e:
        return None, [f"{p}: unreadable ({' '.join(str(e).split())[:160]}); server timing skipped"]
    missing = wanted - set(df.columns)
    if missing:
        return None, [f"{p}: missing column(s) {', '.join(sorted(missing))}; server timing skipped"]
    for c in SPAN_VALUES:
        df[c] = pd.to_numeric(df[c], errors="coerce")
    return df[["x_request_id", *SPAN_VALUES]], []


def request_ids(run: Run) -> tuple[np.ndarray | None, list[str]]:
    """requests.csv's `request_id`, row for row with `run.df` (the analysis' loader skips the column)."""
    path = run.path / "requests.csv"
    try:
        table = pacsv.read_csv(
            path,
            parse_options=pacsv.ParseOptions(
                invalid_row_handler=lambda _row: "skip", newlines_in_values=False
            ),
            convert_options=pacsv.ConvertOptions(
                include_columns=["request_id"],
                column_types={"request_id": pa.string()},
                strings_can_be_null=False,
            ),
        )
    except (pa.ArrowInvalid, pa.ArrowKeyError, OSError, KeyError) as e:
        return None, [
            f"{path}: request ids unreadable ({' '.join(str(e).split())[:160]}); server timing skipped"
        ]
    ids = table.column("request_id").to_numpy(zero_copy_only=False).astype(object)
    n = len(run.df)
    if len(ids) == n + 1:  # a last line cut inside its last field: the loader dropped it
        ids = ids[:n]
    if len(ids) != n:
        return None, [f"{path}: {len(ids)} request ids for {n} rows; server timing skipped"]
    return ids, []


def join(run: Run) -> Joined | None:
    """Each row's span (see the module docstring); without server_spans.csv, the timing the rows'
    streams stated (analysis/enginetiming.py); None when the run has neither."""
    spans, warnings = load_spans(run.path)
    if spans is None:
        return Joined(pd.DataFrame(), None, np.zeros(0), 0, 0, warnings) if warnings else _stream(run)
    ids, more = request_ids(run)
    if ids is None:
        return Joined(pd.DataFrame(), None, np.zeros(0), len(spans), 0, warnings + more)
    per_id = spans["x_request_id"].value_counts()
    count = pd.Series(ids).map(per_id).fillna(0).to_numpy(dtype=np.int64)
    unique = spans[~spans["x_request_id"].duplicated(keep=False)].set_index("x_request_id")
    matched = unique.reindex(ids)  # NaN for no span and for several
    df = run.df
    f = pd.DataFrame(index=df.index)
    for c in SPAN_VALUES:
        f[f"server_{c}"] = matched[c].to_numpy(dtype=float)
    f["server_other_s"] = (
        f["server_e2e_s"] - f["server_queue_s"] - f["server_prefill_s"] - f["server_decode_s"]
    )
    f["server_ttft_other_s"] = f["server_ttft_s"] - f["server_queue_s"] - f["server_prefill_s"]
    f["client_remainder_s"] = df["e2e_s"].to_numpy(dtype=float) - f["server_e2e_s"].to_numpy()
    f["client_ttft_remainder_s"] = df["ttft_s"].to_numpy(dtype=float) - f["server_ttft_s"].to_numpy()
    f.insert(0, "joined", count == 1)
    f.insert(1, "span_count", count)
    without_row = int((~spans["x_request_id"].isin(set(ids))).sum())
    return Joined(f, ids, count, len(spans), without_row, warnings)


def _stream(run: Run) -> Joined | None:
    f = enginetiming.frame(run.df)
    if f is None:
        return None
    count = f["span_count"].to_numpy()
    df, total = run.df, int(count.sum())
    stated = {"has_load": enginetiming.has_load(df), "has_queue": enginetiming.has_queue(df)}
    return Joined(f, None, count, total, 0, [], "stream", **stated)


def per_request(run: Run) -> pd.DataFrame | None:
    """One row per request of `run.df` (same index): request id, step, ok, the client's TTFT/E2E and
    the server timing columns of the module docstring (NaN where the row did not join); `joined`, and
    `span_count` (spans with the row's id: 0 unjoined, 2+ ambiguous)."""
    j = join(run)
    if j is None or j.frame.empty:
        return None
    ids = j.ids if j.ids is not None else request_ids(run)[0]
    base = run.df[["step", "ok", "ttft_s", "e2e_s", "tpot_s", "output_tokens"]].copy()
    base.insert(0, "request_id", ids)
    return pd.concat([base, j.frame], axis=1)


def components(df: pd.DataFrame, f: pd.DataFrame, metric: str) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """(client latency, {component: seconds}) per row for `metric`; the components add up to the latency."""
    if metric == "tpot":
        k = df["output_tokens"].to_numpy(dtype=float) - 1.0
        k = np.where(k > 0, k, np.nan)
        total = (df["e2e_s"].to_numpy(dtype=float) - df["ttft_s"].to_numpy(dtype=float)) / k
        parts = {
            "client": (f["client_remainder_s"] - f["client_ttft_remainder_s"]).to_numpy() / k,
            "engine_other": (f["server_other_s"] - f["server_ttft_other_s"]).to_numpy() / k,
            "decode": f["server_decode_s"].to_numpy() / k,
        }
        return total, parts
    ttft = metric == "ttft"
    total = df["ttft_s" if ttft else "e2e_s"].to_numpy(dtype=float)
    parts = {
        "client": f["client_ttft_remainder_s" if ttft else "client_remainder_s"].to_numpy(),
        "engine_other": f["server_ttft_other_s" if ttft else "server_other_s"].to_numpy(),
        "queue": f["server_queue_s"].to_numpy(),
        "prefill": f["server_prefill_s"].to_numpy(),
    }
    if not ttft:
        parts["decode"] = f["server_decode_s"].to_numpy()
    return total, {c: parts[c] for c in METRIC_COMPONENTS[metric]}


def _usable(mask: np.ndarray, total: np.ndarray, parts: dict[str, np.ndarray]) -> np.ndarray:
    ok = mask & np.isfinite(total)
    for v in parts.values():
        ok &= np.isfinite(v)
    return ok


def decompose(mask: np.ndarray, total: np.ndarray, parts: dict[str, np.ndarray]) -> Decomposition | None:
    """Means over the rows of `mask` that have every part (None when there are none)."""
    use = _usable(mask, total, parts)
    n = int(use.sum())
    if not n:
        return None
    return Decomposition(n, float(total[use].mean()), {c: float(v[use].mean()) for c, v in parts.items()})


def shares(
    metric: str, limit_s: float, base: np.ndarray, fallback: np.ndarray, total: np.ndarray, parts: dict
) -> Shares | None:
    """Step 1 of the share rule: the reference requests and each component's fraction of their latency."""
    ref, name = _usable(base, total, parts) & (total <= limit_s), "requests within the limit"
    if ref.sum() < MIN_REFERENCE:
        ref, name = _usable(fallback, total, parts), "the lowest load step's requests"
    mean_total = float(total[ref].mean()) if ref.any() else 0.0
    if mean_total <= 0:
        return None
    fractions = {c: float(v[ref].mean()) / mean_total for c, v in parts.items()}
    return Shares(metric, limit_s, name, int(ref.sum()), fractions)


def attribute(
    mask: np.ndarray, total: np.ndarray, parts: dict, sh: Shares | None, metric: str, limit_s: float
) -> Misses:
    """Step 2 of the share rule over the rows of `mask`: each miss under the component most over its share."""
    use = _usable(mask, total, parts)
    miss = use & (total > limit_s)
    missed = int(miss.sum())
    counts: dict[str, int] = {}
    if missed and sh is not None:
        names = list(parts)
        excess = np.stack([parts[c][miss] - sh.fractions[c] * limit_s for c in names])
        winner = excess.argmax(axis=0)
        counts = {names[i]: int(n) for i, n in enumerate(np.bincount(winner, minlength=len(names))) if n}
        counts = dict(sorted(counts.items(), key=lambda kv: -kv[1]))
    top = next(iter(counts), None)
    share = counts[top] / missed if top is not None else None
    return Misses(metric, limit_s, int(use.sum()), missed, counts, top, share)


def server_timing(
    run: Run, slo: Slo, steps: list[Step], in_run: np.ndarray, in_step: np.ndarray
) -> ServerTiming | None:
    """summary.json `server_timing`; None when the run has neither spans nor stream-stated timing.

    `in_run` / `in_step`: the rows the headline and the step table count (warm-up, cool-down and,
    unless included, the start-up left out: analysis/summary.py), so the section's requests are theirs."""
    j = join(run)
    if j is None:
        return None
    df = run.df
    ok = df["ok"].to_numpy(dtype=bool)
    if j.frame.empty:
        return ServerTiming(j.spans, int(ok.sum()), 0, 0, 0, 0, 0, None, None, None, [], [], [], j.warnings)
    c = j.span_count
    joined = ok & (c == 1)
    base = joined & in_run
    stepped = joined & in_step
    step_of = df["step"].to_numpy()
    lowest = min(steps, key=lambda s: s.load).step if steps else int(step_of.min())
    limits = {
        m: v for m, v in (("ttft", slo.ttft_s), ("tpot", slo.tpot_s), ("e2e", slo.e2e_s)) if v is not None
    }
    parts_of = metric_components(j.source, j.has_load, j.has_queue)
    split = components if j.source == "spans" else enginetiming.components
    comp = {}
    for m, names in parts_of.items():
        total, parts = split(df, j.frame, m)
        comp[m] = (total, {c: parts[c] for c in names})
    sh = {m: shares(m, lim, base, stepped & (step_of == lowest), *comp[m]) for m, lim in limits.items()}

    def misses(mask: np.ndarray) -> list[Misses]:
        return [attribute(mask, *comp[m], sh[m], m, lim) for m, lim in limits.items()]

    out_steps = []
    for s in steps:
        mine = step_of == s.step
        sel = stepped & mine
        out_steps.append(
            TimingStep(
                s.step, s.label, s.load, int((ok & mine & in_step).sum()), int(sel.sum()),
                decompose(sel, *comp["ttft"]), decompose(sel, *comp["e2e"]), misses(sel),
            )
        )  # fmt: skip
    n_ok = int(ok.sum())
    return ServerTiming(
        spans=j.spans,
        ok=n_ok,
        joined=int(joined.sum()),
        unjoined=int((ok & (c == 0)).sum()),
        ambiguous=int((ok & (c > 1)).sum()),
        failed_with_span=int((~ok & (c > 0)).sum()),
        spans_without_row=j.spans_without_row,
        joined_share=float(joined.sum()) / n_ok if n_ok else None,
        ttft=decompose(base, *comp["ttft"]),
        e2e=decompose(base, *comp["e2e"]),
        shares=[v for v in sh.values() if v is not None],
        misses=misses(base),
        steps=out_steps,
        warnings=j.warnings,
        source=j.source,
        components=parts_of["e2e"],
    )
