"""One run → every figure (`Analysis`), and its two written forms: summary.json and summary.md.

summary.json is the machine-readable twin of summary.md (DESIGN.md): the contract's keys
(`requests, ok, errors, duration_s, req_per_s, output_tok_per_s, goodput_req_per_s,
slo_attainment, slo`, the four latency objects, `steps`) plus what the report needs
(`input_tok_per_s`, `capacity_at_slo`, verdicts per SLO profile, open-loop figures, warnings).
Every number comes from requests.csv through analysis/metrics.py and analysis/steps.py.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from analysis import server
from analysis.itl import Distribution, PendingDistribution
from analysis.load import AnalysisError, Run
from analysis.metrics import (
    dist,
    dist_itl,
    errors_by_category,
    good_mask,
    latency_values,
    open_loop,
    percentile_checks,
    throughput,
    verdict,
)
from analysis.render import fmt
from analysis.render import server as server_report
from analysis.steps import capacity_at_slo, step_table
from core.slo import PROFILES, Slo


@dataclass
class Analysis:
    """A run and everything computed from it under one primary SLO."""

    run: Run
    slo: Slo
    summary: dict
    good: np.ndarray
    itl: Distribution | PendingDistribution
    server_series: server.ServerData | None = None

    @property
    def steps(self) -> list[dict]:
        return self.summary["steps"]

    def finish(self) -> Analysis:
        """Wait for the ITL figures (parsed in the background) and put them in the summary."""
        if isinstance(self.itl, PendingDistribution):
            self.itl = self.itl.result()
            self.summary["itl_s"] = dist_itl(self.itl)
            self.summary["samples"]["itl_s"] = self.itl.n
        return self


def saturation_warnings(meta: dict) -> tuple[list[list[float]], list[str]]:
    """run.json `loadgen.saturated_windows` → the windows and the report's one-line flags."""
    loadgen = meta.get("loadgen") if isinstance(meta.get("loadgen"), dict) else {}
    windows = []
    for w in loadgen.get("saturated_windows") or []:
        if isinstance(w, list | tuple) and len(w) == 2 and all(isinstance(x, int | float) for x in w):
            windows.append([float(w[0]), float(w[1])])
    t0 = meta.get("t_start_unix")
    out = []
    for a, b in windows:
        rel = f" (+{a - t0:.0f} s to +{b - t0:.0f} s into the run)" if isinstance(t0, int | float) else ""
        out.append(f"load generator saturated from {fmt.utc(a)} to {fmt.utc(b)}{rel}: add workers")
    return windows, out


def analyze(run: Run, slo: Slo, extra: list[Slo] | None = None, wait: bool = True) -> Analysis:
    """All figures of `run` under `slo` (goodput, attainment, capacity) + verdicts for `extra` and every profile.

    With `wait=False` the ITL figures may still be parsing: call `Analysis.finish()` before
    reading `summary["itl_s"]` (the CLI draws the other plots meanwhile).
    """
    df = run.df
    in_run = df["in_run_stats"].to_numpy()
    ok = df["ok"].to_numpy(dtype=bool)
    good = good_mask(df, slo)
    sel = df[in_run]
    if sel.empty:
        raise AnalysisError(f"{run.path}: every request fell in the warm-up period; nothing to analyze")
    itl = PendingDistribution(run.itl, in_run & ok, where=str(run.path / "requests.csv"))
    tp = throughput(sel, good[in_run])
    steps, unit = step_table(df, good, run.meta)
    capacity = capacity_at_slo(steps, slo.attain_target, unit)
    windows, sat_warnings = saturation_warnings(run.meta)
    samples, server_warnings = server.load_server_metrics(run.path)
    series, more = server.build(samples) if samples is not None else (None, [])
    server_warnings += more
    slos = [slo] + [s for s in (extra or []) if s.name != slo.name]
    slos += [p for name, p in PROFILES.items() if name not in {s.name for s in slos}]
    summary: dict = {
        "run": run_info(run),
        "requests": tp["requests"],
        "ok": tp["ok"],
        "cancelled": tp["cancelled"],
        "errors": errors_by_category(sel),
        "duration_s": tp["duration_s"],
        "req_per_s": tp["req_per_s"],
        "output_tok_per_s": tp["output_tok_per_s"],
        "input_tok_per_s": tp["input_tok_per_s"],
        "total_tok_per_s": tp["total_tok_per_s"],
        "goodput_req_per_s": tp["goodput_req_per_s"],
        "slo_attainment": tp["slo_attainment"],
        "good": tp["good"],
        "slo": {**slo.to_dict(), "describe": slo.describe()},
        "ttft_s": dist(latency_values(sel, "ttft_s")),
        "tpot_s": dist(latency_values(sel, "tpot_s")),
        "itl_s": None,  # filled by finish()
        "e2e_s": dist(latency_values(sel, "e2e_s")),
        "samples": {
            "ttft_s": int(np.count_nonzero(~np.isnan(latency_values(sel, "ttft_s")))),
            "tpot_s": int(np.count_nonzero(~np.isnan(latency_values(sel, "tpot_s")))),
            "itl_s": None,
            "e2e_s": int(np.count_nonzero(~np.isnan(latency_values(sel, "e2e_s")))),
        },
        "percentile_checks": percentile_checks(sel, itl, slo),
        "verdicts": [verdict(sel, itl, s) for s in slos],
        "window": {"t_start_unix": tp["t_start_unix"], "t_end_unix": tp["t_end_unix"]},
        "load_unit": unit,
        "steps": steps,
        "capacity_at_slo": capacity["value"],
        "capacity": capacity,
        "open_loop": open_loop(sel, slo),
        "excluded_warmup_rows": int((~in_run).sum()),
        "loadgen_saturated_windows": windows,
        "server": None,
        "warnings": sat_warnings + list(run.warnings) + server_warnings,
    }
    if series is not None:  # engine metrics over the run's window and each step's stage
        window = (tp["t_start_unix"], tp["t_end_unix"])
        summary["server"] = server.summarize(series, window, df, run.path)
        server.add_to_steps(series, steps, df, run.meta, run.path)
    a = Analysis(run, slo, summary, good, itl, series)
    return a.finish() if wait else a


def run_info(run: Run) -> dict:
    """The run.json facts a reader needs beside the numbers (never a key: run.json holds none)."""
    m = run.meta
    shape = m.get("shape") if isinstance(m.get("shape"), dict) else {}
    return {
        "dir": str(run.path),
        "name": run.name,
        "run_id": m.get("run_id"),
        "target": m.get("target"),
        "model": m.get("model"),
        "dataset": m.get("dataset") or _first(run.df, "dataset"),
        "user_class": m.get("user_class"),
        "transport": m.get("transport"),
        "shape": shape.get("name"),
        "shape_params": shape.get("params"),
        "seed": m.get("seed"),
        "workers": m.get("workers"),
        "git_commit": m.get("git_commit"),
        "locust_version": m.get("locust_version"),
    }


def _first(df, col: str) -> str | None:
    if col not in df or df[col].dropna().empty:
        return None
    return str(df[col].dropna().iloc[0])


def write_json(a: Analysis, path: Path) -> None:
    path.write_text(json.dumps(a.summary, indent=2, allow_nan=False, default=_json_default) + "\n")


def _json_default(o: object) -> object:
    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        return float(o)
    raise TypeError(f"not JSON serializable: {type(o).__name__}")


# -- tables shared by summary.md, the console and the report ---------------------------------------
HEADLINE = ["Latency p95 (ms)", "TPOT p95 (ms)", "TTFT p50 (ms)", "TTFT p95 (ms)", "req/s", "output tok/s"]


def headline_row(s: dict) -> list[str]:
    """The research's Table 4.2 columns (+ throughput, goodput, attainment)."""
    return [
        fmt.ms(s["e2e_s"]["p95"]),
        fmt.ms(s["tpot_s"]["p95"]),
        fmt.ms(s["ttft_s"]["p50"]),
        fmt.ms(s["ttft_s"]["p95"]),
        fmt.num(s["req_per_s"]),
        fmt.num(s["output_tok_per_s"], 1),
        fmt.num(s["goodput_req_per_s"]),
        fmt.pct(s["slo_attainment"]),
    ]


def headline_headers(s: dict) -> list[str]:
    return [*HEADLINE, f"goodput req/s [{s['slo']['profile']}]", "SLO attainment"]


def latency_rows(s: dict) -> list[list[str]]:
    names = {"ttft_s": "TTFT", "tpot_s": "TPOT", "itl_s": "ITL", "e2e_s": "E2E latency"}
    return [
        [
            names[k],
            *(fmt.ms(s[k][q]) for q in ("mean", "p50", "p90", "p95", "p99", "max")),
            f"{s['samples'][k]:,}",
        ]
        for k in names
    ]


LATENCY_HEADERS = ["metric (ms)", "mean", "p50", "p90", "p95", "p99", "max", "samples"]


def step_headers(unit: str) -> list[str]:
    return [
        "step",
        f"load ({unit})",
        "requests",
        "ok",
        "req/s",
        "out tok/s",
        "goodput/s",
        "attainment",
        "TTFT p50/p95/p99 (ms)",
        "TPOT p50/p95/p99 (ms)",
        "E2E p50/p95/p99 (ms)",
    ]


def step_rows(steps: list[dict]) -> list[list[str]]:
    def trio(s: dict, m: str) -> str:
        return " / ".join(fmt.ms(s[f"{m}_p{q}_s"]) for q in (50, 95, 99))

    return [
        [
            str(s["step"]),
            fmt.level(s["load"]),
            f"{s['requests']:,}",
            f"{s['ok']:,}",
            fmt.num(s["req_per_s"]),
            fmt.num(s["output_tok_per_s"], 1),
            fmt.num(s["goodput_req_per_s"]),
            fmt.pct(s["slo_attainment"]),
            trio(s, "ttft"),
            trio(s, "tpot"),
            trio(s, "e2e"),
        ]
        for s in steps
    ]


def verdict_rows(s: dict) -> list[list[str]]:
    rows = []
    for v in s["verdicts"]:
        checks = "; ".join(
            f"{c['check']}: {fmt.ms(c['value_s'])} ms {'✓' if c['pass'] else '✗'}" for c in v["checks"]
        )
        rows.append(
            [
                v["slo"],
                v["describe"],
                fmt.pct(v["slo_attainment"]),
                fmt.num(v["goodput_req_per_s"]),
                checks or fmt.DASH,
                "PASS" if v["pass"] else "FAIL",
            ]
        )
    return rows


VERDICT_HEADERS = ["SLO", "limits", "attainment", "goodput req/s", "percentile checks", "verdict"]


def capacity_text(s: dict) -> str:
    c = s["capacity"]
    target = fmt.pct(c["target"], 0)
    if c["value"] is None:
        return f"Capacity at SLO ({s['slo']['profile']}, attainment ≥ {target}): none — {c['note']}"
    how = (
        f"interpolated between {fmt.level(c['between'][0])} and {fmt.level(c['between'][1])}"
        if c["between"]
        else ""
    )
    text = (
        f"Capacity at SLO ({s['slo']['profile']}, attainment ≥ {target}): {'≥ ' if not c['bounded'] else ''}"
    )
    text += f"{c['value']:.3g} {c['unit']}"
    notes = [x for x in (how, c["note"]) if x]
    return text + (f" ({'; '.join(notes)})" if notes else "")


def render_markdown(a: Analysis) -> str:
    s = a.summary
    r = s["run"]
    lines = [f"# {r['name']} — summary", ""]
    facts = [
        ("target", r["target"]),
        ("model", r["model"]),
        ("dataset", r["dataset"]),
        ("shape", r["shape"]),
        ("window", f"{fmt.utc(s['window']['t_start_unix'])} + {fmt.duration(s['duration_s'])}"),
        ("SLO", f"{s['slo']['profile']}: {s['slo']['describe']}"),
    ]
    lines += [f"- **{k}**: {v}" for k, v in facts if v]
    for w in s["warnings"]:
        lines.append(f"\n> **Warning**: {w}")
    lines += ["", "## Headline", "", md_headline(s), ""]
    lines += ["## Latency", "", fmt.md_table(LATENCY_HEADERS, latency_rows(s)), ""]
    cancelled = (
        f" {s['cancelled']:,} were cancelled by the load generator (in flight at the end or when users stopped): "
        "listed as errors, not counted in SLO attainment."
        if s["cancelled"]
        else ""
    )
    tput = (
        f"{s['requests']:,} requests sent, {s['ok']:,} completed; "
        f"{fmt.num(s['req_per_s'])} req/s, {fmt.num(s['output_tok_per_s'], 1)} output tok/s, "
        f"{fmt.num(s['input_tok_per_s'], 1)} input tok/s over {fmt.duration(s['duration_s'])}.{cancelled}"
    )
    lines += ["## Throughput", "", tput, ""]
    lines += ["## Errors", ""]
    if s["errors"]:
        rows = [[k, f"{v:,}", fmt.pct(v / s["requests"])] for k, v in s["errors"].items()]
        lines.append(fmt.md_table(["category", "count", "share of sent"], rows))
    else:
        lines.append("None.")
    lines += ["", "## SLO verdicts", "", fmt.md_table(VERDICT_HEADERS, verdict_rows(s), right={2, 3}), ""]
    lines += ["## Per step", "", capacity_text(s), ""]
    if s["steps"]:
        lines.append(fmt.md_table(step_headers(s["load_unit"]), step_rows(s["steps"])))
    if ol := s["open_loop"]:
        lines += ["", "## Open loop (latency from the intended send time)", ""]
        lines.append(
            f"Scheduled {fmt.num(ol['scheduled_rate_rps'])} req/s, achieved {fmt.num(ol['achieved_rate_rps'])} req/s; "
            f"goodput from scheduled time {fmt.num(ol['goodput_from_scheduled_req_per_s'])} req/s "
            f"(attainment {fmt.pct(ol['slo_attainment_from_scheduled'])})."
        )
        lines += ["", fmt.md_table(LATENCY_HEADERS[:-1], open_loop_rows(ol))]
    lines += server_report.markdown(s)
    lines += ["", "Definitions: README.md § Analysis. Every figure is recomputed from requests.csv.", ""]
    return "\n".join(lines)


def open_loop_rows(ol: dict) -> list[list[str]]:
    names = {
        "send_lag_s": "send lag",
        "ttft_from_scheduled_s": "TTFT from scheduled",
        "e2e_from_scheduled_s": "E2E from scheduled",
    }
    return [
        [label, *(fmt.ms(ol[k][q]) for q in ("mean", "p50", "p90", "p95", "p99", "max"))]
        for k, label in names.items()
    ]


def md_headline(s: dict) -> str:
    return fmt.md_table(headline_headers(s), [headline_row(s)], right=set(range(8)))


def console_text(a: Analysis, report: Path | None) -> str:
    """What the CLI prints: the headline, latencies, errors, capacity, verdict, where the report is."""
    s = a.summary
    out = [f"== {s['run']['name']}  ({s['requests']:,} requests, {fmt.duration(s['duration_s'])})"]
    out += [f"WARNING: {w}" for w in s["warnings"]]
    out += [fmt.text_table(headline_headers(s), [headline_row(s)]), ""]
    out += [fmt.text_table(LATENCY_HEADERS, latency_rows(s)), ""]
    if s["errors"]:
        note = " (cancelled: cut by the load generator, not counted in attainment)" if s["cancelled"] else ""
        out.append("errors: " + ", ".join(f"{k} {v:,}" for k, v in s["errors"].items()) + note)
    out.append(capacity_text(s))
    v = s["verdicts"][0]
    out.append(
        f"SLO {v['slo']}: {'PASS' if v['pass'] else 'FAIL'} (attainment {fmt.pct(v['slo_attainment'])}, target {fmt.pct(v['attain_target'], 0)})"
    )
    if sv := s["server"]:
        out.append(
            f"server ({sv['engine']}): prefix-cache hit {fmt.pct(sv['prefix_cache_hit_rate'])}, running mean "
            f"{fmt.num(sv['running_mean'], 1)}, waiting mean {fmt.num(sv['waiting_mean'], 1)}, KV max "
            f"{fmt.pct(sv['kv_cache_usage_max'])}, client − server TTFT {server_report.signed_ms(sv['client_minus_server_ttft_s'])} ms"
        )
    if report is not None:
        out.append(f"report: {report}")
    return "\n".join(out)
