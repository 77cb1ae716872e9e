"""The server figures in summary.md, the console, report.html and a plot: server series beside the client's on one time axis.

Nothing here computes a figure (analysis/server.py does); this file only lays them out. Every
section is skipped when the run has no server metrics, so such a run's outputs do not change; a
replica set's line and table (analysis/render/replicas.py) only when the page held several replicas.
The figures are `ServerSummary` / `StepServer` typed dicts (analysis/results.py), read by key.
"""

from __future__ import annotations

import html as _html
import math
from pathlib import Path

import numpy as np
import pandas as pd

from analysis import fmt
from analysis.render import replicas
from analysis.render.page import table
from analysis.results import ServerSummary, Step, Summary
from analysis.server import ServerData

EXPLAIN = (
    "Server figures come from the engine's /metrics, scraped during the run (server_metrics.csv). "
    "Prefix-cache hit rate: cached prompt tokens / prompt tokens looked up (engine counters over the window). "
    "Client − server TTFT: mean client TTFT minus the engine's own mean TTFT over the same requests (first "
    "token in the same span, which ends where the first request cancelled by the load generator was sent) — "
    "time spent outside the engine (network, HTTP and API layer, tokenization, queueing in front of the engine)."
)


def _pair(a: float | None, b: float | None, f=fmt.num) -> str:
    return f"{f(a)} / {f(b)}"


def headline_rows(sv: ServerSummary) -> list[list[str]]:
    """summary.json `server` → (figure, value) rows for summary.md and report.html."""
    engine = sv["engine"] + (" (simulated engine)" if sv.get("simulated") else "")
    hit = fmt.pct(sv["prefix_cache_hit_rate"])
    if sv.get("prefix_cache_hit_source") == "gauge":
        hit += " (engine gauge)"
    if (tiers := sv.get("prefix_cache_hit_tiers")) and len(tiers) > 1:  # a KV connector's tiers served some
        hit += " (" + ", ".join(f"{k} {fmt.pct(v)}" for k, v in tiers.items()) + " of the hits)"
    if sv.get("client_cached_share") is not None:
        hit += f" — clients were told {fmt.pct(sv['client_cached_share'])} cached"
    ttft_q = " / ".join(
        fmt.ms(v) for v in (sv["server_ttft_p50_s"], sv["server_ttft_p90_s"], sv["server_ttft_p99_s"])
    )
    return [
        ["engine", engine],
        ["prefix-cache hit rate", hit],
        ["running requests (batch): mean / max", _pair(sv["running_mean"], sv["running_max"])],
        ["waiting requests (queue): mean / max", _pair(sv["waiting_mean"], sv["waiting_max"])],
        ["KV-cache usage: mean / max", _pair(sv["kv_cache_usage_mean"], sv["kv_cache_usage_max"], fmt.pct)],
        *(
            [
                [
                    "image cache hit rate (of images looked up)",
                    f"{fmt.pct(rate)} of {fmt.num(sv['image_cache_queries'], 0)}",
                ]
            ]
            if (rate := sv.get("image_cache_hit_rate")) is not None
            else []
        ),
        ["preemptions", fmt.num(sv["preemptions"], 0)],
        ["tokens per engine step", fmt.num(sv["tokens_per_step"], 1)],
        ["server generation tok/s", fmt.num(sv["server_gen_tok_per_s"], 1)],
        ["server TTFT mean (ms)", fmt.ms(sv["server_ttft_mean_s"])],
        ["server TTFT p50 / p90 / p99 (ms, from buckets)", ttft_q],
        [
            "server E2E mean / queue mean (ms)",
            _pair(sv["server_e2e_mean_s"], sv["server_queue_mean_s"], fmt.ms),
        ],
        ["client − server TTFT (ms)", gap_text(sv)],
    ]


def gap_text(v: ServerSummary) -> str:
    """`+5.58 (client 45.6 vs engine 40.0, first tokens over 10.0 s)`, or a dash."""
    c = v["ttft_compare"]
    if not c:
        return fmt.DASH
    span = c["window"][1] - c["window"][0]
    return (
        f"{fmt.signed_ms(v['client_minus_server_ttft_s'])} (client {fmt.ms(c['client_mean_s'])} vs engine "
        f"{fmt.ms(c['server_mean_s'])}, first tokens over {fmt.duration(span)})"
    )


def lora_line(sv: ServerSummary) -> str | None:
    """`LoRA adapters: up to 1 running at once (b; max_loras 1); requests waited for an adapter slot in
    63 % of scrapes (up to 3 deferred) — raise --max-loras or spread adapters across replicas.` None
    without the engine's LoRA series (another engine, or vLLM without --enable-lora)."""
    top = sv.get("lora_running_max")
    if top is None:
        return None
    names = ", ".join(sv.get("lora_running_max_adapters") or [])
    slots = sv.get("lora_max_loras")
    within = "; ".join(x for x in (names, None if slots is None else f"max_loras {slots:.0f}") if x)
    running = f"up to {top:.0f} running at once" if top else "none running at any scrape"
    text = f"LoRA adapters: {running}" + (f" ({within})" if within else "")
    share, most = sv.get("waiting_deferred_share"), sv.get("waiting_deferred_max")
    if share is None or most is None:
        return text + "."
    if most == 0:
        return text + "; no request waited for an adapter slot."
    deferred = f"in {fmt.pct(share, 0)} of scrapes (up to {most:.0f} deferred)"
    if slots is not None and top < slots:  # slots to spare: not the adapter budget that held them
        return f"{text}; requests were deferred {deferred} with adapter slots to spare: not the LoRA budget."
    return (
        f"{text}; requests waited for an adapter slot {deferred} — raise --max-loras or spread adapters "
        "across replicas."
    )


def console_line(sv: ServerSummary) -> str:
    """The console's one line about the engine."""
    images = (
        f", image cache hit {fmt.pct(rate)}" if (rate := sv.get("image_cache_hit_rate")) is not None else ""
    )
    return (
        f"server ({sv['engine']}): prefix-cache hit {fmt.pct(sv['prefix_cache_hit_rate'])}{images}, running mean "
        f"{fmt.num(sv['running_mean'], 1)}, waiting mean {fmt.num(sv['waiting_mean'], 1)}, KV max "
        f"{fmt.pct(sv['kv_cache_usage_max'])}, client − server TTFT {fmt.signed_ms(sv['client_minus_server_ttft_s'])} ms"
    )


def step_headers(unit: str) -> list[str]:
    return [
        "step", f"load ({unit})", "prefix hit", "client cached", "running mean", "waiting mean", "KV max",
        "preempt.", "tok/step", "server TTFT (ms)", "client − server TTFT (ms)",
    ]  # fmt: skip


def step_rows(steps: list[Step]) -> list[list[str]]:
    rows = []
    for s in steps:
        v = s.server
        if not v:
            continue
        rows.append(
            [
                str(s.step),
                fmt.level(s.load),
                fmt.pct(v["prefix_cache_hit_rate"]),
                fmt.pct(v["client_cached_share"]),
                fmt.num(v["running_mean"], 1),
                fmt.num(v["waiting_mean"], 1),
                fmt.pct(v["kv_cache_usage_max"]),
                fmt.num(v["preemptions"], 0),
                fmt.num(v["tokens_per_step"], 1),
                fmt.ms(v["server_ttft_mean_s"]),
                fmt.signed_ms(v["client_minus_server_ttft_s"]),
            ]
        )
    return rows


def markdown(s: Summary) -> list[str]:
    """The `## Server` section of summary.md (empty when the run has no server metrics)."""
    if not s.server:
        return []
    lines = ["", "## Server (engine metrics)", "", EXPLAIN, ""]
    lines.append(fmt.md_table(["figure", "value"], headline_rows(s.server), right={1}))
    if line := lora_line(s.server):
        lines += ["", line]
    lines += replicas.markdown(s.server.get("replicas"))
    rows = step_rows(s.steps)
    if rows:
        lines += ["", fmt.md_table(step_headers(s.load_unit), rows)]
    return lines


def html(s: Summary) -> str:
    """The report's server section (empty when the run has no server metrics)."""
    if not s.server:
        return ""
    parts = ["<h2>Server (engine metrics)</h2>", f"<p>{_html.escape(EXPLAIN)}</p>"]
    parts.append(table(["figure", "value"], headline_rows(s.server), cls="meta"))
    if line := lora_line(s.server):
        parts.append(f"<p>{_html.escape(line)}</p>")
    if rs := replicas.html(s.server.get("replicas")):
        parts.append(rs)
    rows = step_rows(s.steps)
    if rows:
        parts.append(f'<div class="scroll">{table(step_headers(s.load_unit), rows)}</div>')
    return "\n".join(parts)


def plot(
    d: ServerData, df: pd.DataFrame, t0: float, path: Path, level: dict[int, float] | None = None
) -> Path:
    """3 panels on one time axis: client throughput and TTFT (with the engine's TTFT); server running /
    waiting with the load level; KV-cache usage and prefix-cache hit rate per scrape interval."""
    from analysis.render.plots import bin_width, plt, save  # lazily: summaries must not pay for matplotlib

    ok = df["ok"].to_numpy(dtype=bool)
    t_send = df["t_start_unix"].to_numpy() - t0
    ttft = df["ttft_s"].to_numpy()
    t_end = t_send + np.nan_to_num(df["e2e_s"].to_numpy(), nan=0.0)
    xs = d.times - t0
    span = max(float(np.nanmax(t_end, initial=0.0)), float(xs.max(initial=0.0)), 1.0)
    w = max(bin_width(span), d.interval_s or 0.0)
    nbins = max(1, math.ceil(span / w))
    centers = (np.arange(nbins) + 0.5) * w
    done = np.bincount(np.clip((t_end[ok] // w).astype(np.int64), 0, nbins - 1), minlength=nbins) / w
    first = t_send + ttft  # TTFT is drawn where the first token arrived, as the engine records it
    has = ok & ~np.isnan(first)
    tt = pd.Series(ttft[has] * 1000).groupby(np.clip((first[has] // w).astype(np.int64), 0, nbins - 1)).mean()

    fig, axes = plt.subplots(3, 1, figsize=(12, 9.5), sharex=True)
    ax = axes[0]
    ax.plot(centers, done, color="#1f77b4", label="client: completed req/s")
    ax.set_ylabel("requests/s")
    ax2 = ax.twinx()
    ax2.plot((tt.index.to_numpy() + 0.5) * w, tt.to_numpy(), color="#ff7f0e", label="client TTFT mean (ms)")
    srv = d.interval_series("ttft_sum", "ttft_count") * 1000
    if len(srv):
        ax2.plot(srv.index.to_numpy() - t0, srv.to_numpy(), color="#d62728", linestyle="--",
                 label="server TTFT mean (ms)")  # fmt: skip
    ax2.set_ylabel("TTFT (ms)")
    ax2.set_ylim(bottom=0)
    _legend2(ax, ax2)
    ax.set_title(
        f"Client throughput and TTFT vs the engine's TTFT ({w:.2g} s bins; server per scrape interval)"
    )

    ax = axes[1]
    for col, color, label in (
        ("running", "#2ca02c", "server: running"),
        ("waiting", "#d62728", "server: waiting"),
    ):
        if col in d.gauges:
            ax.plot(xs, d.gauges[col].to_numpy(), color=color, label=label)
    if level and "step" in df:
        load = df["step"].map(level).to_numpy(dtype=float)
        lv = pd.Series(load).groupby(np.clip((t_send // w).astype(np.int64), 0, nbins - 1)).max()
        ax.step((lv.index.to_numpy() + 0.5) * w, lv.to_numpy(), where="mid", color="gray", linestyle=":",
                label="client: load level")  # fmt: skip
    ax.set_ylabel("requests")
    ax.set_ylim(bottom=0)
    ax.set_title("Engine batch (running) and queue (waiting)")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8, loc="upper left")

    _cache_panel(axes[2], d, xs, t0)
    for a in axes:
        a.grid(alpha=0.3)
    axes[-1].set_xlabel("time since first request (s)")
    fig.suptitle(
        f"Server ({d.engine.name}) beside the client, one time axis (server_metrics.csv + requests.csv)"
    )
    fig.subplots_adjust(left=0.07, right=0.93, bottom=0.07, top=0.9, hspace=0.38)
    return save(fig, path)


def _cache_panel(ax, d: ServerData, xs: np.ndarray, t0: float) -> None:
    """KV-cache usage and the prefix-cache hit rate (per scrape interval from counters, else the gauge)."""
    if "kv_usage" in d.gauges:
        ax.plot(xs, d.gauges["kv_usage"].to_numpy() * 100, color="purple", label="KV-cache usage (%)")
    hit = d.interval_series("hits", "queries") * 100
    if len(hit):
        ax.plot(
            hit.index.to_numpy() - t0,
            hit.to_numpy(),
            color="#17becf",
            marker=".",
            label="prefix-cache hit rate (%)",
        )
    elif "hit_rate_gauge" in d.gauges:
        ax.plot(
            xs,
            d.gauges["hit_rate_gauge"].to_numpy() * 100,
            color="#17becf",
            label="prefix-cache hit rate (%)",
        )
    ax.set_ylim(0, 105)
    ax.set_ylabel("%")
    ax.set_title("KV-cache usage and prefix-cache hit rate")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8, loc="upper left")


def _legend2(ax, ax2) -> None:
    h1, l1 = ax.get_legend_handles_labels()
    h2, l2 = ax2.get_legend_handles_labels()
    if h1 or h2:
        ax.legend(h1 + h2, l1 + l2, fontsize=8, loc="upper left")
