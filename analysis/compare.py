"""Several runs side by side: the research's Table 4.2 (+ goodput, capacity), repeats, best-run selection.

The request distribution decides the ranking (DESIGN.md), so the best value per column is marked
*within each dataset*, never across datasets. Runs of one configuration (same name, target,
model, dataset, user class, transport and shape) are repeats: by default they collapse into one
row of medians with their min–max spread; `--repeats best` keeps each configuration's best run
(highest goodput, then lowest p95 latency — "ran 10 minutes and chose the best run"), `all`
lists every run.
"""

from __future__ import annotations

import csv
import json
import statistics
from pathlib import Path

from analysis.render import fmt
from analysis.summary import Analysis
from core.slo import Slo

# key, header, direction (+1: higher is better, -1: lower is better), formatter
METRICS: list[tuple[str, str, int, str]] = [
    ("latency_p95_s", "Latency p95 (ms)", -1, "ms"),
    ("tpot_p95_s", "TPOT p95 (ms)", -1, "ms"),
    ("ttft_p50_s", "TTFT p50 (ms)", -1, "ms"),
    ("ttft_p95_s", "TTFT p95 (ms)", -1, "ms"),
    ("req_per_s", "req/s", 1, "num"),
    ("output_tok_per_s", "output tok/s", 1, "num"),
    ("goodput_req_per_s", "goodput req/s", 1, "num"),
    ("slo_attainment", "SLO attainment", 1, "pct"),
    ("capacity_at_slo", "capacity at SLO", 1, "num"),
]
REPEAT_MODES = ("median", "best", "all")


def run_row(a: Analysis) -> dict:
    """The comparison figures of one analyzed run (seconds, req/s; None when not measured)."""
    s, r = a.summary, a.summary["run"]
    return {
        "label": r["name"],
        "dir": r["dir"],
        "name": r["name"],
        "target": r["target"],
        "model": r["model"],
        "dataset": r["dataset"] or "",
        "shape": r["shape"],
        "config": config_key(r),
        "runs": 1,
        "latency_p95_s": s["e2e_s"]["p95"],
        "tpot_p95_s": s["tpot_s"]["p95"],
        "ttft_p50_s": s["ttft_s"]["p50"],
        "ttft_p95_s": s["ttft_s"]["p95"],
        "req_per_s": s["req_per_s"],
        "output_tok_per_s": s["output_tok_per_s"],
        "goodput_req_per_s": s["goodput_req_per_s"],
        "slo_attainment": s["slo_attainment"],
        "capacity_at_slo": s["capacity_at_slo"],
        "capacity_unit": s["load_unit"],
        "requests": s["requests"],
        "errors": sum(s["errors"].values()),
        "best_run": r["dir"],
    }


def config_key(r: dict) -> str:
    """What makes two runs repeats of one configuration (run.json facts, not the folder name)."""
    keys = ("name", "target", "model", "dataset", "user_class", "transport", "shape", "shape_params")
    return json.dumps([r.get(k) for k in keys], sort_keys=True, default=str)


def _better(a: dict, b: dict) -> bool:
    """Best-run order: higher goodput, then lower p95 latency."""
    ga, gb = a["goodput_req_per_s"] or 0.0, b["goodput_req_per_s"] or 0.0
    if ga != gb:
        return ga > gb
    return (a["latency_p95_s"] or float("inf")) < (b["latency_p95_s"] or float("inf"))


def group(rows: list[dict], mode: str = "median") -> list[dict]:
    """Collapse repeats per `mode` (see module doc); order of first appearance is kept."""
    if mode == "all":
        return _unique_labels([dict(r) for r in rows], by_dir=True)
    groups: dict[str, list[dict]] = {}
    for r in rows:
        groups.setdefault(r["config"], []).append(r)
    out = []
    for runs in groups.values():
        best = runs[0]
        for r in runs[1:]:
            if _better(r, best):
                best = r
        row = dict(best)
        row["runs"] = len(runs)
        row["best_run"] = best["dir"]
        row["run_dirs"] = [r["dir"] for r in runs]
        for key, *_ in METRICS:
            vals = [r[key] for r in runs if r[key] is not None]
            if mode == "median":
                row[key] = statistics.median(vals) if vals else None
            if len(runs) > 1 and vals:
                row[f"{key}_min"], row[f"{key}_max"] = min(vals), max(vals)
        out.append(row)
    return _unique_labels(out, by_dir=False)


def _unique_labels(rows: list[dict], by_dir: bool) -> list[dict]:
    """Run names may collide (the default name is `run`): add what tells the rows apart."""
    names = [r["label"] for r in rows]
    for r in rows:
        if names.count(r["label"]) > 1:
            if by_dir:
                r["label"] = f"{r['label']} ({Path(r['dir']).name})"
            else:
                same = [o for o in rows if o["name"] == r["name"]]
                extra = [
                    k for k in ("target", "model", "dataset", "shape") if len({str(o[k]) for o in same}) > 1
                ]
                r["label"] = f"{r['name']} [" + ", ".join(str(r[k]) for k in extra or ["dir"]) + "]"
    return rows


def best_cells(rows: list[dict]) -> dict[int, set[str]]:
    """Row index → metric keys where it is the best of its dataset (ties all marked)."""
    out: dict[int, set[str]] = {i: set() for i in range(len(rows))}
    datasets = {r["dataset"] for r in rows}
    for ds in datasets:
        idx = [i for i, r in enumerate(rows) if r["dataset"] == ds]
        if len(idx) < 2:
            continue
        for key, _, direction, _ in METRICS:
            vals = [(rows[i][key], i) for i in idx if rows[i][key] is not None]
            if not vals:
                continue
            top = max(v for v, _ in vals) if direction > 0 else min(v for v, _ in vals)
            for v, i in vals:
                if v == top:
                    out[i].add(key)
    return out


def _cell(row: dict, key: str, kind: str) -> str:
    v = row[key]
    text = fmt.ms(v) if kind == "ms" else fmt.pct(v) if kind == "pct" else fmt.num(v)
    if key == "capacity_at_slo" and v is not None:
        text = f"{v:.3g} {row['capacity_unit']}"
    if row.get(f"{key}_min") is not None and row["runs"] > 1:
        lo, hi = row[f"{key}_min"], row[f"{key}_max"]
        rng = (
            f"{fmt.ms(lo)}–{fmt.ms(hi)}"
            if kind == "ms"
            else f"{fmt.pct(lo)}–{fmt.pct(hi)}"
            if kind == "pct"
            else f"{fmt.num(lo)}–{fmt.num(hi)}"
        )
        text += f" ({rng})"
    return text


def table_rows(rows: list[dict]) -> tuple[list[str], list[list[str]], dict[int, set[str]]]:
    headers = ["configuration", "dataset", "runs", *(h for _, h, _, _ in METRICS)]
    best = best_cells(rows)
    body = [
        [r["label"], r["dataset"], str(r["runs"]), *(_cell(r, k, kind) for k, _, _, kind in METRICS)]
        for r in rows
    ]
    return headers, body, best


def render_markdown(rows: list[dict], slo_text: str, mode: str, n_runs: int) -> str:
    headers, body, best = table_rows(rows)
    marked = []
    for i, r in enumerate(body):
        cells = list(r)
        for j, (key, *_) in enumerate(METRICS):
            if key in best[i]:
                cells[3 + j] = f"**{cells[3 + j]}** ★"
        marked.append(cells)
    lines = [
        "# Comparison",
        "",
        f"- **SLO**: {slo_text}",
        f"- **runs**: {n_runs} in {len(rows)} rows (repeats: {mode}; ranges are min–max over repeats)",
        "- ★ best in its dataset (lowest latency; highest throughput, goodput, attainment, capacity)",
        "",
        fmt.md_table(headers, marked, right=set(range(2, len(headers)))),
        "",
    ]
    multi = [r for r in rows if r["runs"] > 1]
    if multi:
        lines += [
            "## Repeats",
            "",
            fmt.md_table(
                ["configuration", "runs", "best run (highest goodput)"],
                [[r["label"], str(r["runs"]), r["best_run"]] for r in multi],
            ),
            "",
        ]
    lines += [
        "Definitions: README.md § Analysis. Every figure is recomputed from each run's requests.csv.",
        "",
    ]
    return "\n".join(lines)


def write_csv(rows: list[dict], path: Path) -> None:
    """Numbers in SI units (seconds, req/s, fractions) for spreadsheets; `best_in` lists the ★ columns."""
    best = best_cells(rows)
    keys = [k for k, *_ in METRICS]
    fields = ["configuration", "dataset", "target", "model", "runs", *keys]
    fields += [f"{k}_{e}" for k in keys for e in ("min", "max")] + ["capacity_unit", "best_run", "best_in"]
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=fields, extrasaction="ignore")
        w.writeheader()
        for i, r in enumerate(rows):
            w.writerow(
                {**r, "configuration": r["label"], "best_in": ";".join(k for k in keys if k in best[i])}
            )


def write_outputs(
    out: Path,
    rows: list[dict],
    per_run: list[dict],
    analyses: list[Analysis],
    slo: Slo,
    mode: str,
    with_plots: bool = True,
) -> None:
    """comparison.md, comparison.csv, report.html and plots/compare_*.png under `out`."""
    from analysis.render import html as report
    from analysis.render import plots  # matplotlib only when writing

    out.mkdir(parents=True, exist_ok=True)
    slo_text = f"{slo.name}: {slo.describe()}"
    figs = []
    if with_plots:
        bars = plots.compare_bars(
            rows, out / "plots" / "compare_bars.png", f"Comparison under SLO {slo.name}"
        )
        figs.append((bars, "Headline metrics per configuration (whiskers: min–max over repeats)."))
        labels = [r["label"] for r in _unique_labels([dict(r) for r in per_run], by_dir=True)]
        curves = [(label, a.steps, a.summary["load_unit"]) for label, a in zip(labels, analyses, strict=True)]
        load = plots.compare_load_curves(curves, slo, out / "plots" / "compare_load.png")
        figs.append((load, "SLO attainment, goodput and p95 latency per load level, one line per run."))
    n_runs = len(analyses)
    (out / "comparison.md").write_text(render_markdown(rows, slo_text, mode, n_runs))
    write_csv(rows, out / "comparison.csv")
    html = report.render_comparison(rows, slo_text, mode, n_runs, figs)
    (out / "report.html").write_text(html, encoding="utf-8")
