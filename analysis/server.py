"""Server-side series from `<run>/server_metrics.csv` (`t, metric, labels, value`): the hook for issue 9.

Minimal but working: maps vLLM / SGLang / TGI gauge names to common series (running, waiting,
KV-cache usage), summarises them and plots them on the run's time axis. The scraper and the
richer mapping (prefix-cache hit rate, batching efficiency, server-side TTFT) extend `SERIES`
and `summarize` here, so the report picks them up without other changes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

# common name → (engine metric names, how to combine label sets at one instant)
SERIES: dict[str, tuple[tuple[str, ...], str]] = {
    "running": (("vllm:num_requests_running", "sglang:num_running_reqs", "tgi_batch_current_size"), "sum"),
    "waiting": (("vllm:num_requests_waiting", "sglang:num_queue_reqs", "tgi_queue_size"), "sum"),
    "kv_usage": (("vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc", "sglang:token_usage"), "mean"),
}
LABELS = {"running": "running requests", "waiting": "waiting requests", "kv_usage": "KV-cache usage (%)"}


def load_server_metrics(run_dir: Path) -> tuple[pd.DataFrame | None, list[str]]:
    """The samples, or None when the file is absent; a broken file is a warning, never fatal."""
    p = run_dir / "server_metrics.csv"
    if not p.exists():
        return None, []
    try:
        df = pd.read_csv(
            p, dtype={"metric": str, "labels": str}, keep_default_na=False, na_values={"value": [""]}
        )
    except (OSError, ValueError, pd.errors.ParserError) as e:
        return None, [f"{p}: unreadable ({' '.join(str(e).split())[:160]}); server series skipped"]
    missing = {"t", "metric", "value"} - set(df.columns)
    if missing:
        return None, [f"{p}: missing column(s) {', '.join(sorted(missing))}; server series skipped"]
    df["t"] = pd.to_numeric(df["t"], errors="coerce")
    df["value"] = pd.to_numeric(df["value"], errors="coerce")
    return df.dropna(subset=["t", "value"]), []


def common_series(df: pd.DataFrame) -> pd.DataFrame:
    """Columns running / waiting / kv_usage (percent) indexed by scrape time; absent series are left out."""
    out = {}
    for name, (metrics, how) in SERIES.items():
        sub = df[df["metric"].isin(metrics)]
        if sub.empty:
            continue
        first = next(m for m in metrics if (sub["metric"] == m).any())  # one engine's name, not a mix
        s = sub[sub["metric"] == first].groupby("t")["value"].agg(how)
        if name == "kv_usage" and s.max() <= 1.0:
            s = s * 100.0  # vLLM reports a fraction
        out[name] = s
    return pd.DataFrame(out).sort_index()


def summarize(series: pd.DataFrame) -> dict:
    """Per-run figures for summary.json (`running_mean`, `waiting_mean`, `kv_usage_max`)."""
    out: dict = {}
    for col in series.columns:
        v = series[col].dropna().to_numpy()
        if v.size:
            out[f"{col}_mean"] = float(np.mean(v))
            out[f"{col}_max"] = float(np.max(v))
    return out


def plot(series: pd.DataFrame, t0: float, path: Path) -> Path:
    """Running / waiting requests and KV-cache usage on the run's time axis (seconds since first request)."""
    from analysis.plots import plt, save  # lazily: summaries must not pay for matplotlib

    fig, ax = plt.subplots(figsize=(12, 4))
    x = series.index.to_numpy() - t0
    for col in ("running", "waiting"):
        if col in series:
            ax.plot(x, series[col], label=LABELS[col])
    ax.set_ylabel("requests")
    ax.set_xlabel("time since first request (s)")
    ax.grid(alpha=0.3)
    h, labels = ax.get_legend_handles_labels()
    if "kv_usage" in series:
        ax2 = ax.twinx()
        ax2.plot(x, series["kv_usage"], color="purple", linestyle=":", label=LABELS["kv_usage"])
        ax2.set_ylabel("KV-cache usage (%)")
        ax2.set_ylim(0, 105)
        h2, l2 = ax2.get_legend_handles_labels()
        h, labels = h + h2, labels + l2
    ax.legend(h, labels, fontsize=8, loc="upper left")
    ax.set_title("Server: running and waiting requests, KV-cache usage (server_metrics.csv)")
    fig.subplots_adjust(left=0.07, right=0.93, bottom=0.14, top=0.9)
    return save(fig, path)
