"""The "Where the time went" section of summary.md and report.html, and its stacked-bar plot per load step.

Nothing here computes a figure (analysis/spans.py does; the types are analysis/timing.py's): it
lays out summary.json `server_timing`, from engine spans or from the timing the server's own stream
stated (its `source`). A run with neither gets the section too, saying how to get them, since the
answer "is it the network, the queue or the model?" needs them.
"""

from __future__ import annotations

import html as _html
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from analysis import fmt
from analysis.render.page import figure, table
from analysis.render.timingtext import headline, label, short
from analysis.results import Summary
from analysis.timing import Decomposition, Misses, ServerTiming

TITLE = "Where the time went (engine spans)"
STREAM_TITLE = "Where the time went (the server's own timing)"
FIGURE = "server_timing.png"
COLORS = {
    "client": "#7f7f7f",
    "engine_other": "#bcbd22",
    "queue": "#d62728",
    "prefill": "#ff7f0e",
    "decode": "#1f77b4",
    "waiting": "#9467bd",
    "other": "#9467bd",
    "load": "#8c564b",
}
HOW_TO = (
    "No engine spans in this run, and no server timing in its streams. To split each request's latency "
    "into network/API, queue, prefill and decode, run Goodput with --otlp-listen 127.0.0.1:4318 and start "
    "vLLM with OTEL_EXPORTER_OTLP_TRACES_PROTOCOL=http/protobuf vllm serve MODEL --otlp-traces-endpoint "
    "http://127.0.0.1:4318/v1/traces (the address the load generator's master can be reached at). "
    "llama-server, Ollama's own route (--api ollama), SGLang's (--api sglang, the server started with "
    "--enable-metrics) and vLLM started with --enable-per-request-metrics state their prefill and decode "
    "times in the stream, which this section then uses with no setup on the load generator's side "
    "(README.md § Where the time went)."
)
EXPLAIN = (
    "Each completed request joined with the engine's own span by X-Request-Id (server_spans.csv). "
    "queue, prefill, decode: the engine's timing; engine other: the rest of its span (input processing, "
    "output hand-off); client: client latency − the engine's (network, HTTP server, API layer). The parts add "
    "up to the client's latency. A missed SLO limit is put on the component that exceeded its share of the "
    "limit by the most (shares: each part's fraction of the latency of requests within the limit)."
)
EXPLAIN_STREAM = (
    "Each completed request's own prefill and decode times as the server's stream stated them "
    "(requests.csv engine_prefill_s, engine_decode_s, engine_load_s, engine_queue_s: llama-server's "
    "timings.prompt_ms and predicted_ms, Ollama's prompt_eval_duration, eval_duration and load_duration, "
    "SGLang's meta_info stamps (first token − forward entry, finish − first token, queue_time), vLLM's "
    "metrics (time_to_first_token_ms from its first scheduling, generation_time_ms, queue_time_ms)). "
    "waiting: the client's latency minus those — queueing for a slot, tokenization, network and HTTP, "
    "which these servers do not state apart (Ollama's prompt_eval_duration starts before its runner waits "
    "for a free slot, so there prefill holds that queue too); where the server states its queue, the rest "
    "is other (tokenization, network, HTTP). The parts add up to the client's latency. A missed SLO limit is put "
    "on the component that exceeded its share of the limit by the most (shares: each part's fraction of "
    "the latency of requests within the limit)."
)


def title(t: ServerTiming | None) -> str:
    return STREAM_TITLE if t is not None and t.source == "stream" else TITLE


def explain(t: ServerTiming) -> str:
    return EXPLAIN_STREAM if t.source == "stream" else EXPLAIN


def join_text(t: ServerTiming) -> str:
    if t.source == "stream":
        return (
            f"{t.joined:,} of {t.ok:,} completed requests carried the server's own timing "
            f"({fmt.pct(t.joined_share)}); {t.unjoined:,} without it."
        )
    text = (
        f"{t.joined:,} of {t.ok:,} completed requests joined their engine span ({fmt.pct(t.joined_share)}); "
        f"{t.spans:,} spans received, {t.unjoined:,} completed requests without one"
    )
    extra = [
        f"{n:,} {what}"
        for n, what in (
            (t.ambiguous, "with several (not joined)"),
            (t.failed_with_span, "failed or cancelled requests the engine still reported"),
            (t.spans_without_row, "spans of requests not in this run"),
        )
        if n
    ]
    return text + ("; " + ", ".join(extra) if extra else "") + "."


def _parts(d: Decomposition | None, names: tuple[str, ...]) -> list[str]:
    if d is None:
        return [fmt.DASH] * (len(names) + 1)
    return [fmt.ms(d.total_s)] + [fmt.ms(d.parts_s[c]) if c in d.parts_s else fmt.DASH for c in names]


def run_rows(t: ServerTiming) -> list[list[str]]:
    """The run's mean decomposition: one row per latency."""
    return [[name, *_parts(d, t.components)] for name, d in (("TTFT", t.ttft), ("E2E", t.e2e))]


def headers(t: ServerTiming) -> list[str]:
    return ["total (ms)", *(f"{label(t, c)} (ms)" for c in t.components)]


def step_headers(t: ServerTiming, key: str) -> list[str]:
    return ["load", "joined / ok", "total (ms)", *(f"{label(t, c)} (ms)" for c in t.parts_of(key))]


def step_rows(t: ServerTiming, key: str) -> list[list[str]]:
    names = t.parts_of(key)
    return [[s.label, f"{s.joined:,} / {s.ok:,}", *_parts(getattr(s, key), names)] for s in t.steps]


def miss_text(m: Misses) -> str:
    if not m.missed:
        return f"0 of {m.judged:,}"
    if not m.by_component:
        return f"{m.missed:,} of {m.judged:,} (no reference to share the limit)"
    top = ", ".join(f"{short(c)} {n / m.missed:.0%}" for c, n in m.by_component.items())
    return f"{m.missed:,} of {m.judged:,}: {top}"


def miss_headers(t: ServerTiming) -> list[str]:
    return ["load"] + [f"{m.metric.upper()} > {fmt.ms(m.limit_s)} ms" for m in t.misses]


def miss_rows(t: ServerTiming) -> list[list[str]]:
    rows = [["run", *(miss_text(m) for m in t.misses)]]
    return rows + [[s.label, *(miss_text(m) for m in s.misses)] for s in t.steps]


def console_line(t: ServerTiming | None) -> str | None:
    """The console's one line: the run's mean TTFT split into its parts, then the worst step's misses."""
    if t is None or t.ttft is None:
        return None
    parts = " + ".join(f"{short(c)} {fmt.ms(t.ttft.parts_s[c])}" for c in t.parts_of("ttft"))
    by = "engine spans" if t.source == "spans" else "the server's own timing"
    line = f"where the time went ({by}): TTFT {fmt.ms(t.ttft.total_s)} ms = {parts} ms"
    return f"{line}; {h}" if (h := headline(t)) else line


def markdown(s: Summary) -> list[str]:
    """The section of summary.md."""
    t = s.server_timing
    lines = ["", f"## {title(t)}", ""]
    if t is not None:
        lines += [x for w in t.warnings for x in (f"> **Warning**: {w}", "")]
    if t is None or not t.spans:
        return [*lines, HOW_TO]
    lines += [join_text(t), ""]
    if t.e2e is None:
        return [*lines, "No completed request joined a span with timing attributes."]
    if h := headline(t):
        lines += [f"**{h}**", ""]
    lines += [fmt.md_table(["latency (mean)", *headers(t)], run_rows(t)), ""]
    for key in ("e2e", "ttft"):
        lines += [f"Per step, mean {key.upper()}:", ""]
        lines += [fmt.md_table(step_headers(t, key), step_rows(t, key)), ""]
    if t.misses:
        lines += ["SLO misses by the component that exceeded its share:", ""]
        lines.append(fmt.md_table(miss_headers(t), miss_rows(t)))
    return [*lines, "", explain(t)]


def owns(path: Path) -> bool:
    """True for this section's figure (report.html places it here, not with the other plots)."""
    return path.name == FIGURE


def html(s: Summary, figs: list[tuple[Path, str]]) -> str:
    """The section of report.html, with its figure when one was drawn."""
    t = s.server_timing
    parts = [f"<h2>{_html.escape(title(t))}</h2>"]
    if t is not None:
        parts += [f'<div class="warn">⚠ {_html.escape(w)}</div>' for w in t.warnings]
    if t is None or not t.spans:
        return "\n".join([*parts, f"<p>{_html.escape(HOW_TO)}</p>"])
    parts.append(f"<p>{_html.escape(join_text(t))}</p>")
    if t.e2e is None:
        return "\n".join([*parts, "<p>No completed request joined a span with timing attributes.</p>"])
    if h := headline(t):
        parts.append(f"<p><b>{_html.escape(h)}</b></p>")
    parts += [figure(p, c) for p, c in figs if owns(p)]
    parts.append(table(["latency (mean)", *headers(t)], run_rows(t), cls="meta"))
    for key in ("e2e", "ttft"):
        parts.append(f"<h3>Per step, mean {key.upper()}</h3>")
        parts.append(f'<div class="scroll">{table(step_headers(t, key), step_rows(t, key))}</div>')
    if t.misses:
        parts.append("<h3>SLO misses by the component that exceeded its share</h3>")
        parts.append(f'<div class="scroll">{table(miss_headers(t), miss_rows(t))}</div>')
    parts.append(f"<p>{_html.escape(explain(t))}</p>")
    return "\n".join(parts)


def plot(t: ServerTiming, path: Path) -> Path | None:
    """Two panels of stacked bars per load step: mean TTFT and mean E2E split into their parts (ms)."""
    steps = [s for s in t.steps if s.e2e is not None]
    if not steps:
        return None
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.2))
    fig.subplots_adjust(left=0.07, right=0.98, top=0.85, bottom=0.2, wspace=0.22)
    x = np.arange(len(steps))
    for ax, key in zip(axes, ("ttft", "e2e"), strict=True):
        bottom_pos = np.zeros(len(steps))
        bottom_neg = np.zeros(len(steps))
        for c in t.components:
            v = np.array(
                [(getattr(s, key).parts_s.get(c, 0.0) if getattr(s, key) else 0.0) * 1000 for s in steps]
            )
            if not np.any(v):
                continue
            base = np.where(v >= 0, bottom_pos, bottom_neg)  # a negative remainder (noise) hangs below 0
            ax.bar(x, v, 0.7, bottom=base, color=COLORS[c], label=label(t, c))
            bottom_pos += np.where(v >= 0, v, 0)
            bottom_neg += np.where(v < 0, v, 0)
        limit = next((m.limit_s for m in t.misses if m.metric == key), None)
        if limit is not None:
            ax.axhline(
                limit * 1000,
                color="black",
                linestyle="--",
                linewidth=1,
                label=f"SLO limit {limit * 1000:g} ms",
            )
        ax.set_xticks(x, [s.label for s in steps], rotation=30 if len(steps) > 6 else 0, fontsize=8)
        ax.set_ylabel(f"mean {key.upper()} (ms)")
        ax.set_title(f"{key.upper()}: where the time went", fontsize=10)
        ax.grid(axis="y", alpha=0.3)
    axes[1].legend(fontsize=8, loc="upper left")
    by = (
        "the engine's spans (server_spans.csv)"
        if t.source == "spans"
        else "the server's own timing (its stream)"
    )
    fig.suptitle(f"Per load step: client latency split by {by}", fontsize=11)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
