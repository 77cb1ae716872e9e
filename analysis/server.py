"""Server-side figures from `<run>/server_metrics.csv` (`t, metric, labels, value`), beside the client's.

The engine's names are mapped to common series (analysis/engines.py), then every figure is taken
over a time window — the run's measurement window for summary.json `server`, each level's window
(analysis/windows.py: its stage minus warm-up/cool-down) for `steps[i].server`:
- gauges (running, waiting, KV-cache usage): mean / max of the scrapes inside the window;
- counters (prefix-cache hits and queries, preemptions, tokens) and histograms (TTFT, E2E, queue):
  the increase over the window, each counter interpolated linearly between scrapes at the window's
  edges, so a step's figures are not shifted by up to one scrape interval;
- `prefix_cache_hit_rate` = Δhits / Δqueries (tokens; the engine's own accounting), else the mean of
  the engine's hit-rate gauge (SGLang before `cached_tokens_total`, vLLM v0);
- `image_cache_hit_rate` = Δhits / Δqueries of the engine's multimodal cache (images, not tokens: vLLM's
  `mm_cache_*`), `image_cache_queries` the images it looked up; None where no image was looked up;
- `server_ttft_mean_s` = Δsum / Δcount of the engine's TTFT histogram; percentiles by Prometheus'
  `histogram_quantile` (bucket-resolution estimates, not exact);
- `client_minus_server_ttft_s` = mean client TTFT − mean server TTFT over the same requests (first
  token in the same span, client rows weighted like the interpolated counters; the span stops
  before the first request the load generator cancelled): the time a request spends outside the
  engine before its first token — network, HTTP server, tokenization, the API layer and the
  client's own reading. A gap that grows with load is queueing in front of the engine.
- LoRA adapters (vLLM with --enable-lora: the adapters running, the requests deferred for a slot):
  analysis/lora.py, over the same windows.
- A page of several replicas (`instance` / `engine` labels): each replica's own figures, from this
  module's `build` and `window_figures` run per replica (analysis/replicas.py; summary.json `replicas`).

The figures are typed dicts (analysis/results.py `ServerFigures`, `ServerSummary`, `StepServer`):
a pass-through of the engine's series, written to summary.json as they are.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv

from analysis import lora
from analysis.engines import Engine, detect
from analysis.results import ServerFigures, ServerSummary, Step, StepServer
from analysis.samples import Samples, bound, histogram_quantile
from analysis.samples import load_server_metrics as load_server_metrics  # where serverside reads it
from analysis.specdecode import ACCEPTED_AT, DRAFTED_AT, spec_figures

HISTOGRAMS = ("ttft", "e2e", "queue", "step_tokens")
NO_ENGINE = (
    "server_metrics.csv: no vLLM, SGLang, TGI, llama-server, LMDeploy, TensorRT-LLM, NVIDIA Dynamo or NVIDIA NIM "
    "metric names"
)
QUANTILES = (0.5, 0.9, 0.99)


@dataclass
class ServerData:
    """One run's server series on the scrape times: gauges as sampled, counters as increases since the first scrape."""

    engine: Engine
    times: np.ndarray
    gauges: pd.DataFrame
    counters: pd.DataFrame
    ttft_buckets: pd.DataFrame | None
    sources: dict[str, str] = field(default_factory=dict)
    simulated: bool = False
    lora_names: pd.Series | None = None  # the LoRA adapters running at each scrape (analysis/lora.py)
    _cached: dict = field(default_factory=dict, repr=False)

    def cached_rows(self, run_dir: Path) -> pd.DataFrame | None:
        """read_cached(run_dir), read once for the run and all its steps."""
        if run_dir not in self._cached:
            self._cached[run_dir] = read_cached(run_dir)
        return self._cached[run_dir]

    @property
    def interval_s(self) -> float | None:
        return float(np.median(np.diff(self.times))) if len(self.times) > 1 else None

    def interval_series(self, num: str, den: str) -> pd.Series:
        """Δnum / Δden between consecutive scrapes (NaN where nothing happened), at each interval's end."""
        if num not in self.counters or den not in self.counters:
            return pd.Series(dtype=float)
        dn, dd = self.counters[num].diff(), self.counters[den].diff()
        return (dn / dd.where(dd > 0)).iloc[1:]


def build(df: pd.DataFrame, engine: Engine | None = None) -> tuple[ServerData | None, list[str]]:
    """The common series of the engine found in `df` (or of `engine`'s names: a gateway's page read as an
    engine's, analysis/gatewaypage.py); a page of unknown names is a warning."""
    if df.empty:
        return None, []
    engine = engine or detect(df["metric"].unique())
    if engine is None:
        return None, [f"{NO_ENGINE}; server figures skipped"]
    s = Samples(df)
    times = s.times
    sources: dict[str, str] = {}
    gauges = pd.DataFrame(index=times)
    for key, names, how in (
        ("running", engine.running, "sum"),
        ("waiting", engine.waiting, "sum"),
        ("kv_usage", engine.kv_usage, "mean"),
        ("hit_rate_gauge", engine.hit_rate_gauge, "mean"),
        ("spec_length_gauge", engine.spec_length_gauge, "mean"),
        ("spec_rate_gauge", engine.spec_rate_gauge, "mean"),
    ):
        if name := s.first(names):
            gauges[key] = s.gauge(name, how).reindex(times)
            sources[key] = name
    more, lora_names, more_sources = lora.series(s, engine)
    for key, values in more.items():
        gauges[key] = values.reindex(times)
    sources.update(more_sources)
    if "kv_usage" in gauges and gauges["kv_usage"].max() > 1.0 + 1e-9:
        gauges["kv_usage"] = gauges["kv_usage"] / 100.0  # a build that reports percent
    counters = pd.DataFrame(index=times)
    for key, col, pairs in (
        ("prefix_cache", "", engine.hits_queries),
        ("image_cache", "mm_", engine.mm_hits_queries),
    ):
        if (pair := next(((h, q) for h, q in pairs if s.has(h) and s.has(q)), None)) is not None:
            counters[col + "hits"], counters[col + "queries"] = s.counter(pair[0]), s.counter(pair[1])
            sources[key] = f"{pair[0]} / {pair[1]}"
    if "prefix_cache" not in sources and "hit_rate_gauge" in sources:
        sources["prefix_cache"] = sources["hit_rate_gauge"]
    for key, prefix, names, label in (
        ("prefix_cache_tiers", TIER, engine.hits_by_tier, "source"),
        ("spec_accepted_by_pos", ACCEPTED_AT, engine.spec_accepted_by_pos, engine.spec_pos_label),
        ("spec_drafted_by_pos", DRAFTED_AT, engine.spec_drafted_by_pos, engine.spec_pos_label),
    ):  # a labelled counter, one column per label value
        if name := s.first(names):
            for value, series in s.counter_by(name, label).items():
                counters[prefix + value] = series
            sources[key] = name
    for key, names in (
        ("preemptions", engine.preemptions),
        ("prompt_tokens", engine.prompt_tokens),
        ("generation_tokens", engine.generation_tokens),
        ("steps", engine.step_count),
        ("spec_drafts", engine.spec_drafts),
        ("spec_draft_tokens", engine.spec_draft_tokens),
        ("spec_accepted", engine.spec_accepted),
    ):
        if name := s.first(names):
            counters[key] = s.counter(name)
            sources[key] = name
    if (name := s.first(engine.cached_prompt)) and "prompt_tokens" in counters:
        computed = counters["computed_prompt"] = counters["prompt_tokens"]
        counters["hits"] = s.counter(name)
        counters["queries"] = counters["prompt_tokens"] = computed + counters["hits"]
        sources["prefix_cache"] = f"{name} / ({name} + {sources['prompt_tokens']})"
        sources["prompt_tokens"] = f"{sources['prompt_tokens']} + {name}"
    buckets = _histograms(s, engine, counters, sources)
    simulated = any(m.startswith("simserver:") for m in s.metrics)
    names = None if lora_names is None else lora_names.reindex(times)
    return ServerData(engine, times, gauges, counters, buckets, sources, simulated, names), []


def _histograms(
    s: Samples, engine: Engine, counters: pd.DataFrame, sources: dict[str, str]
) -> pd.DataFrame | None:
    """The engine's histograms' sums and counts into `counters`; the TTFT one's buckets (None: none)."""
    buckets = None
    for key in HISTOGRAMS:
        base = next((b for b in getattr(engine, key) if s.has(b + "_count") and s.has(b + "_sum")), None)
        if base is None:
            continue
        counters[f"{key}_sum"], counters[f"{key}_count"] = (
            s.counter(base + "_sum"),
            s.counter(base + "_count"),
        )
        sources[key] = base
        if key == "ttft":
            buckets = s.buckets(base)
    return buckets


def increase(d: ServerData, col: str, a: float, b: float) -> float | None:
    """How much counter `col` grew over [a, b], interpolating between scrapes (None if not scraped)."""
    if col not in d.counters:
        return None
    c = d.counters[col].to_numpy()
    return float(np.interp(b, d.times, c) - np.interp(a, d.times, c))


TIER = "tier:"  # counters' column prefix: the cached prompt tokens one cache tier served


def tier_shares(tokens: dict[str, float | None]) -> dict[str, float] | None:
    """Each cache tier's share of the cached prompt tokens over a window, the tiers that served any
    (largest first); None without a breakdown or without a hit."""
    served = {k: v for k, v in tokens.items() if v is not None and v > 0}
    total = sum(served.values())
    if not total:
        return None
    return {k: v / total for k, v in sorted(served.items(), key=lambda kv: -kv[1])}


def ratio(num: float | None, den: float | None) -> float | None:
    return num / den if num is not None and den else None


def _none(v: float) -> float | None:
    return None if v is None or not np.isfinite(v) else float(v)


def window_figures(d: ServerData, t0: float, t1: float) -> ServerFigures:
    """Every server figure over [t0, t1] (keys are always present; None when not measured there)."""
    out: dict = dict.fromkeys(
        (
            "scrapes", "running_mean", "running_max", "waiting_mean", "waiting_max", "kv_cache_usage_mean",
            "kv_cache_usage_max", "prefix_cache_hit_rate", "prefix_cache_hit_source", "prefix_cache_queried_tokens",
            "prefix_cache_hit_tiers", "image_cache_queries", "image_cache_hit_rate",
            "preemptions", "prompt_tokens", "generation_tokens", "server_gen_tok_per_s", "tokens_per_step",
            "server_ttft_mean_s", *(f"server_ttft_p{round(q * 100)}_s" for q in QUANTILES), "server_ttft_count",
            "server_e2e_mean_s", "server_queue_mean_s", "spec_draft_tokens", "spec_acceptance_rate",
            "spec_acceptance_length", "spec_acceptance_by_position", "counter_window", *lora.KEYS,
        )
    )  # fmt: skip
    times = d.times
    inside = (times >= t0) & (times <= t1)
    out["scrapes"] = int(inside.sum())
    for key, name in (("running", "running"), ("waiting", "waiting"), ("kv_usage", "kv_cache_usage")):
        v = _in_window(d, key, inside)
        if v is not None and v.size:
            out[f"{name}_mean"], out[f"{name}_max"] = float(v.mean()), float(v.max())
    a, b = max(t0, float(times[0])), min(t1, float(times[-1]))
    spans = len(times) > 1 and b > a
    out["counter_window"] = [a, b] if spans else None

    def inc(col: str) -> float | None:
        return increase(d, col, a, b) if spans else None

    hits, queries = inc("hits"), inc("queries")
    if queries:
        out["prefix_cache_hit_rate"], out["prefix_cache_hit_source"] = hits / queries, "counters"
        out["prefix_cache_queried_tokens"] = queries
    elif "hits" not in d.counters and (v := _in_window(d, "hit_rate_gauge", inside)) is not None and v.size:
        out["prefix_cache_hit_rate"], out["prefix_cache_hit_source"] = float(v.mean()), "gauge"
    out["prefix_cache_hit_tiers"] = tier_shares(
        {c[len(TIER) :]: inc(c) for c in d.counters if c.startswith(TIER)}
    )
    out["image_cache_queries"] = mm = inc("mm_queries")
    out["image_cache_hit_rate"] = ratio(inc("mm_hits"), mm)
    out["preemptions"] = inc("preemptions")
    out["prompt_tokens"], out["generation_tokens"] = inc("prompt_tokens"), inc("generation_tokens")
    if out["generation_tokens"] is not None:
        out["server_gen_tok_per_s"] = out["generation_tokens"] / (b - a)
    if "step_tokens_count" in d.counters:
        out["tokens_per_step"] = ratio(inc("step_tokens_sum"), inc("step_tokens_count"))
    elif "steps" in d.counters and out["prompt_tokens"] is not None and out["generation_tokens"] is not None:
        computed = inc("computed_prompt") if "computed_prompt" in d.counters else out["prompt_tokens"]
        out["tokens_per_step"] = ratio((computed or 0.0) + out["generation_tokens"], inc("steps"))
    n = inc("ttft_count")
    out["server_ttft_count"] = n
    out["server_ttft_mean_s"] = ratio(inc("ttft_sum"), n)
    if n and d.ttft_buckets is not None and spans:
        tb = d.ttft_buckets
        counts = np.array([np.interp(b, times, tb[c]) - np.interp(a, times, tb[c]) for c in tb.columns])
        bounds = [bound(c) for c in tb.columns]
        for q in QUANTILES:
            out[f"server_ttft_p{round(q * 100)}_s"] = histogram_quantile(bounds, counts, q)
    out["server_e2e_mean_s"] = ratio(inc("e2e_sum"), inc("e2e_count"))
    out["server_queue_mean_s"] = ratio(inc("queue_sum"), inc("queue_count"))
    spec_figures(out, lambda col: _in_window(d, col, inside), inc, d.counters.columns)
    out.update(lora.figures(d.gauges, d.lora_names, inside))
    return cast(ServerFigures, {k: (_none(v) if isinstance(v, float) else v) for k, v in out.items()})


def _in_window(d: ServerData, col: str, inside: np.ndarray) -> np.ndarray | None:
    """Gauge `col`'s scraped values inside a window (NaN dropped); None when not scraped."""
    if col not in d.gauges:
        return None
    v = d.gauges[col].to_numpy()[inside]
    return v[~np.isnan(v)]


def read_cached(run_dir: Path) -> pd.DataFrame | None:
    """`t_start_unix, step, ok, prompt_tokens, cached_tokens` of requests.csv (the analysis' own loader
    skips `cached_tokens`); None when the column is absent or the file unreadable."""
    path = run_dir / "requests.csv"
    cols = ["t_start_unix", "step", "ok", "prompt_tokens", "cached_tokens"]
    try:
        table = pacsv.read_csv(
            path,
            parse_options=pacsv.ParseOptions(invalid_row_handler=lambda _row: "skip"),
            convert_options=pacsv.ConvertOptions(
                include_columns=cols,
                column_types={c: pa.float64() for c in cols if c != "ok"} | {"ok": pa.bool_()},
                true_values=["true", "True", "1"],
                false_values=["false", "False", "0", ""],
            ),
        )
    except (pa.ArrowInvalid, pa.ArrowKeyError, OSError, KeyError):
        return None
    df = table.to_pandas()
    df = df[df["ok"].fillna(False).astype(bool) & df["cached_tokens"].notna() & (df["prompt_tokens"] > 0)]
    return df if len(df) else None


def cached_share(rows: pd.DataFrame | None) -> float | None:
    """Σ cached_tokens / Σ prompt_tokens of completed requests, as the server reported them in `usage`."""
    if rows is None or rows.empty:
        return None
    p = float(rows["prompt_tokens"].sum())
    return float(rows["cached_tokens"].sum()) / p if p > 0 else None


def client_ttft_mean(df: pd.DataFrame, span: list[float], times: np.ndarray) -> float | None:
    """Mean client TTFT of the requests whose first token arrived in `span`, weighted the way the
    engine's counters are: a first token in scrape interval (t[i-1], t[i]] counts by the share of that
    interval inside the span (the engine's increase there is interpolated by the same share). Failed
    requests count once they had a token. Selecting by send time would compare different requests."""
    ttft = df["ttft_s"].to_numpy(dtype=float)
    first = df["t_start_unix"].to_numpy(dtype=float) + ttft
    has = ~np.isnan(ttft)
    ttft, first = ttft[has], first[has]
    i = np.searchsorted(times, first, side="left")
    inside = (i >= 1) & (i < len(times))  # before the first or after the last scrape: no engine count either
    ttft, i = ttft[inside], i[inside]
    lo, hi = times[i - 1], times[i]
    w = np.clip(np.minimum(hi, span[1]) - np.maximum(lo, span[0]), 0.0, None) / (hi - lo)
    return float(np.dot(w, ttft) / w.sum()) if w.sum() > 0 else None


def client_gap(fig: ServerFigures, d: ServerData, df: pd.DataFrame, cut: float | None) -> dict:
    """The TTFT comparison: client and engine means over the same span, which ends at the last scrape
    before the first request the load generator cancelled was sent. Such a request's first token, if
    it came, counts in the engine's histogram but not in requests.csv (a cancelled row has no TTFT):
    past that point the two sides no longer count the same requests (those in flight at the stop).
    A span shorter than one scrape interval compares too few requests to mean anything: None."""
    out: dict = {"client_minus_server_ttft_s": None, "ttft_compare": None}
    span = fig["counter_window"]
    if span is None or d.interval_s is None:
        return out
    a, b = span
    if cut is not None:  # down to the last scrape before it: no share of the interval holding that token
        before = d.times[d.times <= cut]
        b = min(b, float(before[-1])) if len(before) else a
    if b - a < d.interval_s * 0.99:
        return out
    client = client_ttft_mean(df, [a, b], d.times)
    server = ratio(increase(d, "ttft_sum", a, b), increase(d, "ttft_count", a, b))
    if client is not None and server is not None:
        out["client_minus_server_ttft_s"] = client - server
        out["ttft_compare"] = {"window": [a, b], "client_mean_s": client, "server_mean_s": server}
    return out


def first_cancelled_send(df: pd.DataFrame) -> float | None:
    cancelled = (df["error"].astype(object) == "cancelled").to_numpy()
    return float(df["t_start_unix"].to_numpy()[cancelled].min()) if cancelled.any() else None


def summarize(d: ServerData, window: tuple[float, float], df: pd.DataFrame, run_dir: Path) -> ServerSummary:
    """summary.json `server`: the engine, where each series came from, and the window's figures."""
    t0, t1 = window
    fig = window_figures(d, t0, t1)
    cached = d.cached_rows(run_dir)
    if cached is not None:
        cached = cached[(cached["t_start_unix"] >= t0) & (cached["t_start_unix"] <= t1)]
    out = {
        "engine": d.engine.name,
        "simulated": d.simulated,
        "scrape_interval_s": d.interval_s,
        "sources": d.sources,
        **fig,
        **client_gap(fig, d, df, first_cancelled_send(df)),
        "client_cached_share": cached_share(cached),
    }
    return cast(ServerSummary, out)


def step_figures(d: ServerData, steps: list[Step], df: pd.DataFrame, run_dir: Path) -> list[StepServer]:
    """Per level: the figures over its window (analysis/windows.py: its stage without warm-up and
    cool-down), the client's mean TTFT of the requests whose first token came in that span, and the
    gap between them."""
    if not steps:
        return []
    cached = d.cached_rows(run_dir)
    cut = first_cancelled_send(df)
    out = []
    for row in steps:
        t0, t1 = row.t_start_unix, row.t_end_unix
        fig: dict = dict(window_figures(d, t0, t1))
        share = None
        if cached is not None:
            mine = cached[(cached["step"] == row.step) & (cached["t_start_unix"] >= t0)]
            share = cached_share(mine)
        fig.update(
            client_gap(cast(ServerFigures, fig), d, df, cut), client_cached_share=share, window=[t0, t1]
        )
        out.append(cast(StepServer, fig))
    return out
