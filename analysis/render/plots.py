"""Matplotlib (Agg) PNGs: latency vs load, CDFs, time series, goodput vs throughput, comparison bars.

Each plot answers one question at a glance — titles say which, axes carry units, the SLO limit
is drawn where it applies. Big runs are summarised before plotting (quantile curves, per-bin
statistics), so a 1M-row run plots in about the time a small one does.
"""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from analysis.compare import ComparisonRow
from analysis.itl import Distribution
from analysis.results import Capacity, Step
from core.slo import Slo

DPI = 100
# Fixed margins instead of tight_layout: the layout pass costs a third of the drawing time.
C = {
    "p50": "#1f77b4",
    "p95": "#ff7f0e",
    "p99": "#d62728",
    "good": "#2ca02c",
    "all": "#1f77b4",
    "err": "#d62728",
}
CDF_POINTS = 600


def save(fig: plt.Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return path


def _legend(ax: plt.Axes, **kw: object) -> None:
    """A legend only when something is labelled (empty runs have nothing to label)."""
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8, **kw)


def _limit_line(ax: plt.Axes, limit_s: float | None, slo: Slo, horizontal: bool = True) -> None:
    if limit_s is None:
        return
    draw = ax.axhline if horizontal else ax.axvline
    draw(
        limit_s * 1000,
        color="black",
        linestyle="--",
        linewidth=1,
        label=f"SLO {slo.name}: {limit_s * 1000:g} ms",
    )


def _ms(values: list[float | None]) -> np.ndarray:
    """Seconds → ms, None → NaN (a gap in the line)."""
    return np.array([np.nan if v is None else v * 1000 for v in values], dtype=float)


def latency_vs_load(steps: list[Step], unit: str, slo: Slo, capacity: Capacity, path: Path) -> Path:
    """2×2: TTFT, TPOT, E2E percentiles per load level; throughput, goodput and attainment per level.

    Complete levels are joined by lines; truncated ones (left out of capacity) are hollow markers.
    """
    steps = sorted(steps, key=lambda s: s.load)
    full = [s for s in steps if not s.truncated]
    cut = [s for s in steps if s.truncated]
    fig, axes = plt.subplots(2, 2, figsize=(12, 8), sharex=True)
    for ax, (m, title, limit) in zip(
        axes.flat[:3],
        [("ttft", "TTFT", slo.ttft_s), ("tpot", "TPOT", slo.tpot_s), ("e2e", "E2E latency", slo.e2e_s)],
        strict=True,
    ):
        for q in ("p50", "p95", "p99"):
            _levels(ax, full, cut, lambda s, m=m, q=q: _ms([getattr(getattr(s, m), q)])[0], C[q], q)
        _limit_line(ax, limit, slo)
        ax.set_title(f"{title} vs load")
        ax.set_ylabel(f"{title} (ms)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    ax = axes[1, 1]
    _levels(ax, full, cut, lambda s: s.req_per_s or 0.0, C["all"], "throughput (completed req/s)")
    _levels(ax, full, cut, lambda s: s.goodput_req_per_s or 0.0, C["good"], f"goodput [{slo.name}] (req/s)")
    ax.set_ylabel("requests/s")
    ax.set_title("Throughput, goodput and SLO attainment vs load")
    ax.grid(alpha=0.3)
    ax2 = ax.twinx()
    att = lambda s: np.nan if s.slo_attainment is None else s.slo_attainment * 100  # noqa: E731
    _levels(ax2, full, cut, att, "gray", "SLO attainment (%)", linestyle=":")
    ax2.axhline(slo.attain_target * 100, color="gray", linewidth=0.8, linestyle="--")
    ax2.set_ylim(0, 105)
    ax2.set_ylabel("SLO attainment (%)")
    if capacity.value is not None:
        ax.axvline(capacity.value, color=C["good"], linestyle="--", linewidth=1)
        ax.annotate(
            f"capacity {'≥ ' if not capacity.bounded else ''}{capacity.value:.3g} {capacity.unit}",
            (capacity.value, ax.get_ylim()[1] * 0.95),
            fontsize=8,
            color=C["good"],
            ha="right",
        )
    lines = ax.get_legend_handles_labels()
    lines2 = ax2.get_legend_handles_labels()
    ax.legend(lines[0] + lines2[0], lines[1] + lines2[1], fontsize=8, loc="lower left")
    for a in axes[1]:
        a.set_xlabel(f"load ({unit})")
    hollow = "; hollow: truncated levels, left out of capacity" if cut else ""
    fig.suptitle(f"Latency and goodput vs load (per level over its own window, warm-up excluded{hollow})")
    fig.subplots_adjust(left=0.07, right=0.93, bottom=0.08, top=0.91, wspace=0.32, hspace=0.25)
    return save(fig, path)


def _levels(
    ax: plt.Axes, full: list[Step], cut: list[Step], y, color: str, label: str, linestyle: str = "-"
) -> None:
    """Complete levels as a line with markers; truncated ones as hollow markers of the same colour."""
    ax.plot([s.load for s in full], [y(s) for s in full], marker="o", markersize=3, color=color, label=label,
            linestyle=linestyle)  # fmt: skip
    if cut:
        ax.plot([s.load for s in cut], [y(s) for s in cut], marker="o", markersize=6, linestyle="none",
                markerfacecolor="none", color=color)  # fmt: skip


def _cdf_xy(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    v = np.sort(values[~np.isnan(values)])
    if v.size == 0:
        return v, v
    idx = np.unique(np.linspace(0, v.size - 1, min(CDF_POINTS, v.size)).round().astype(np.int64))
    return v[idx], (idx + 1) / v.size


def cdfs(
    ttft: np.ndarray, tpot: np.ndarray, itl: Distribution, e2e: np.ndarray, slo: Slo, path: Path
) -> Path:
    """CDFs of TTFT, TPOT, ITL and E2E over completed requests, SLO limits marked."""
    fig, axes = plt.subplots(2, 2, figsize=(12, 8))
    itl_x, itl_y = itl.quantile_curve_s(CDF_POINTS)
    series = [
        ("TTFT", *_cdf_xy(ttft), slo.ttft_s),
        ("TPOT", *_cdf_xy(tpot), slo.tpot_s),
        ("ITL", itl_x, itl_y, None),
        ("E2E latency", *_cdf_xy(e2e), slo.e2e_s),
    ]
    for ax, (name, xs, ys, limit) in zip(axes.flat, series, strict=True):
        if xs.size:
            ax.plot(xs * 1000, ys * 100, color=C["all"], label=name)
            if xs[-1] > 0 and xs[0] > 0 and xs[-1] / xs[0] > 200:
                ax.set_xscale("log")
        else:
            ax.text(0.5, 0.5, "no samples", transform=ax.transAxes, ha="center")
        _limit_line(ax, limit, slo, horizontal=False)
        for q in (50, 95, 99):
            ax.axhline(q, color="gray", linewidth=0.5, linestyle=":")
        ax.set_title(f"{name} CDF")
        ax.set_xlabel(f"{name} (ms)")
        ax.set_ylabel("requests ≤ x (%)" if name != "ITL" else "gaps ≤ x (%)")
        ax.set_ylim(0, 101)
        ax.grid(alpha=0.3)
        _legend(ax, loc="lower right")
    fig.suptitle("Latency distributions (completed requests; dotted lines: p50, p95, p99)")
    fig.subplots_adjust(left=0.07, right=0.97, bottom=0.08, top=0.91, wspace=0.2, hspace=0.32)
    return save(fig, path)


def bin_width(span_s: float) -> float:
    for w in (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 1800, 3600):
        if span_s / w <= 300:
            return float(w)
    return float(math.ceil(span_s / 300))


def rate_bins(t: np.ndarray, span: float, w: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Bins of `w` seconds over [0, span]: each bin's start, its real width and the bin of each `t`.

    A rate is a count over the bin's real width, so a partial last bin is not a full one: it keeps
    its real width, or joins the bin before when shorter than half a bin (a sliver of a second
    would turn the few requests ending at the stop into a spike).
    """
    nbins = max(1, math.ceil(span / w))
    if nbins > 1 and span - (nbins - 1) * w < w / 2:
        nbins -= 1
    lo = np.arange(nbins) * w
    width = np.full(nbins, w)
    width[-1] = max(span - lo[-1], 1e-9)
    return lo, width, np.clip((t // w).astype(np.int64), 0, nbins - 1)


def completion_rates(
    df: pd.DataFrame, good: np.ndarray, t0: float
) -> tuple[float, np.ndarray, dict[str, np.ndarray]]:
    """By completion time, per bin: completed, good and failed req/s over each bin's real width (and the
    bin width and centres). A request the load generator cancelled is no failure: `cancelled` counts them apart."""
    t_end = df["t_start_unix"].to_numpy() - t0 + np.nan_to_num(df["e2e_s"].to_numpy(), nan=0.0)
    span = max(float(t_end.max()), 1.0)
    w = bin_width(span)
    lo, width, end_bin = rate_bins(t_end, span, w)
    ok = df["ok"].to_numpy(dtype=bool)
    cancelled = (df["error"].astype(object) == "cancelled").to_numpy()

    def count(mask: np.ndarray) -> np.ndarray:
        return np.bincount(end_bin[mask], minlength=len(lo)).astype(float)

    rates = {"completed": count(ok) / width, "good": count(good) / width, "failed": count(~ok & ~cancelled) / width,
             "cancelled": count(cancelled)}  # fmt: skip
    return w, lo + width / 2, rates


def timeseries(
    df: pd.DataFrame,
    good: np.ndarray,
    t0: float,
    saturated: list[list[float]],
    path: Path,
    level: dict[int, float] | None = None,
    unit: str = "users",
    late: list[list[float]] | None = None,
) -> Path:
    """Throughput, goodput, errors, TTFT and TPOT over run time, with the load level, the windows
    where the load generator was saturated (red) and where it read late (orange).

    `level` maps step → load level (users or req/s); without it the rows' `target_users` is drawn.
    """
    t_send = df["t_start_unix"].to_numpy() - t0
    w, centers, rates = completion_rates(df, good, t0)
    done, good_r, errs = rates["completed"], rates["good"], rates["failed"]
    nbins = len(centers)
    send_bin = np.minimum((t_send // w).astype(np.int64), nbins - 1)
    ok = df["ok"].to_numpy(dtype=bool)
    if level:
        load = df["step"].map(level).fillna(df["target_users"]).to_numpy(dtype=float)
    else:
        load, unit = df["target_users"].to_numpy(dtype=float), "users"
    users = pd.Series(load).groupby(send_bin).max().reindex(range(nbins)).ffill()
    lat = pd.DataFrame(
        {"bin": send_bin[ok], "ttft": df["ttft_s"].to_numpy()[ok], "tpot": df["tpot_s"].to_numpy()[ok]}
    )
    q = lat.groupby("bin")[["ttft", "tpot"]].quantile([0.5, 0.95]).unstack() * 1000
    fig, axes = plt.subplots(3, 1, figsize=(12, 9), sharex=True)
    ax = axes[0]
    ax.plot(centers, done, color=C["all"], label="completed req/s")
    ax.plot(centers, good_r, color=C["good"], label="good req/s (goodput)")
    if errs.any():
        ax.plot(centers, errs, color=C["err"], label="failed req/s")
    ax.set_ylabel("requests/s")
    n_cut = int(rates["cancelled"].sum())
    cut = f"; {n_cut:,} requests cancelled by the load generator not shown" if n_cut else ""
    ax.set_title(f"Throughput over time ({w:g} s bins, by completion time{cut})")
    ax2 = ax.twinx()
    ax2.step(centers, users.to_numpy(), where="mid", color="gray", linestyle="--", label=f"load ({unit})")
    ax2.set_ylabel(f"load ({unit})")
    ax2.set_ylim(bottom=0)
    h1, l1 = ax.get_legend_handles_labels()
    h2, l2 = ax2.get_legend_handles_labels()
    ax.legend(h1 + h2, l1 + l2, fontsize=8, loc="upper left")
    for ax, m, name in ((axes[1], "ttft", "TTFT"), (axes[2], "tpot", "TPOT")):
        for p, color in ((0.5, C["p50"]), (0.95, C["p95"])):
            if (m, p) in q:
                ax.plot(q.index * w + w / 2, q[(m, p)], color=color, label=f"{name} p{round(p * 100)}")
        ax.set_ylabel(f"{name} (ms)")
        ax.set_title(f"{name} over time (by send time)")
        _legend(ax, loc="upper left")
    _shade_loadgen(axes, saturated, late or [], t0)
    axes[-1].set_xlabel("time since first request (s)")
    fig.subplots_adjust(left=0.07, right=0.93, bottom=0.07, top=0.96, hspace=0.3)
    return save(fig, path)


def _shade_loadgen(
    axes: np.ndarray, saturated: list[list[float]], late: list[list[float]], t0: float
) -> None:
    """Grid lines, and bands where the load generator's own timings are suspect: red where it was
    saturated, orange where it read late (drawn under the red where both)."""
    for a in axes:
        a.grid(alpha=0.3)
        for s0, s1 in late:
            a.axvspan(s0 - t0, s1 - t0, color="orange", alpha=0.15, label="_late")
        for s0, s1 in saturated:
            a.axvspan(s0 - t0, s1 - t0, color="red", alpha=0.15, label="_sat")
    keys = [
        k
        for k, on in (("red: load generator saturated", saturated), ("orange: client read late", late))
        if on
    ]
    if keys:
        axes[0].text(0.99, 0.95, "; ".join(keys), transform=axes[0].transAxes, ha="right", va="top",
                     color="red" if saturated else "darkorange", fontsize=8)  # fmt: skip


def goodput_vs_throughput(steps: list[Step], unit: str, slo: Slo, path: Path) -> Path:
    """Per step: completed req/s vs good req/s; the gap to the diagonal is throughput that missed the SLO."""
    fig, ax = plt.subplots(figsize=(7.5, 5.5))
    x = np.array([s.req_per_s or 0.0 for s in steps])
    y = np.array([s.goodput_req_per_s or 0.0 for s in steps])
    top = max(float(x.max(initial=0)), float(y.max(initial=0)), 1e-9) * 1.05
    ax.plot([0, top], [0, top], color="gray", linestyle="--", linewidth=1, label="every request good")
    sc = ax.scatter(x, y, c=[s.load for s in steps], cmap="viridis", zorder=3)
    fig.colorbar(sc, ax=ax, label=f"load ({unit})")
    for s, xi, yi in list(zip(steps, x, y, strict=True))[:: max(1, len(steps) // 12)]:
        ax.annotate(f"{s.load:.3g}", (xi, yi), textcoords="offset points", xytext=(4, 4), fontsize=7)
    ax.set_xlim(0, top)
    ax.set_ylim(0, top)
    ax.set_xlabel("throughput (completed req/s)")
    ax.set_ylabel(f"goodput [{slo.name}] (req/s)")
    ax.set_title("Goodput vs throughput per step (high throughput ≠ high goodput)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper left")
    fig.subplots_adjust(left=0.11, right=0.97, bottom=0.11, top=0.92)
    return save(fig, path)


COMPARE_METRICS = [
    ("latency_p95_s", "Latency p95 (ms)", 1000.0),
    ("tpot_p95_s", "TPOT p95 (ms)", 1000.0),
    ("ttft_p50_s", "TTFT p50 (ms)", 1000.0),
    ("ttft_p95_s", "TTFT p95 (ms)", 1000.0),
    ("req_per_s", "throughput (req/s)", 1.0),
    ("goodput_req_per_s", "goodput (req/s)", 1.0),
]


def compare_bars(rows: list[ComparisonRow], path: Path, title: str) -> Path:
    """One bar per configuration for each headline metric; whiskers = min–max over repeated runs."""
    fig, axes = plt.subplots(2, 3, figsize=(14, 7.5))
    labels = [r.label for r in rows]
    pos = np.arange(len(rows))
    colors = plt.get_cmap("tab10")(np.arange(len(rows)) % 10)
    for ax, (key, name, scale) in zip(axes.flat, COMPARE_METRICS, strict=True):
        vals = np.array([np.nan if r.value(key) is None else r.value(key) * scale for r in rows])
        ax.bar(pos, np.nan_to_num(vals), color=colors)
        lo = np.array([r.spread(key)[0] for r in rows], dtype=float) * scale
        hi = np.array([r.spread(key)[1] for r in rows], dtype=float) * scale
        if np.any(np.nan_to_num(hi - lo) > 0):
            ax.errorbar(
                pos,
                np.nan_to_num(vals),
                yerr=[np.nan_to_num(vals - lo), np.nan_to_num(hi - vals)],
                fmt="none",
                ecolor="black",
                capsize=3,
            )
        ax.set_title(name + (" — lower is better" if "ms" in name else " — higher is better"), fontsize=10)
        ax.set_xticks(pos)
        ax.set_xticklabels(labels, rotation=30, ha="right", fontsize=8)
        ax.grid(axis="y", alpha=0.3)
    fig.suptitle(title)
    fig.subplots_adjust(left=0.05, right=0.98, bottom=0.14, top=0.9, wspace=0.22, hspace=0.6)
    return save(fig, path)


def compare_load_curves(runs: list[tuple[str, list[Step], str]], slo: Slo, path: Path) -> Path:
    """Per configuration: SLO attainment, goodput and p95 latency against load — where each one gives out.

    One row of panels per load unit: runs in users and runs in req/s are never drawn on one axis.
    Truncated levels are left out (as they are of capacity).
    """
    units = sorted({u for _, steps, u in runs if steps}) or ["users"]
    fig, grid = plt.subplots(len(units), 3, figsize=(15, 4.8 * len(units)), squeeze=False)
    titles = [
        ("SLO attainment (%)", f"SLO attainment [{slo.name}]"),
        ("goodput (req/s)", "Goodput"),
        ("E2E p95 (ms)", "Latency p95"),
    ]
    for axes, unit in zip(grid, units, strict=True):
        for label, steps, u in runs:
            ordered = sorted((s for s in steps if not s.truncated), key=lambda s: s.load)
            if u != unit or not ordered:
                continue
            x = [s.load for s in ordered]
            att = [np.nan if s.slo_attainment is None else s.slo_attainment * 100 for s in ordered]
            axes[0].plot(x, att, marker="o", markersize=3, label=label)
            axes[1].plot(
                x, [s.goodput_req_per_s or 0.0 for s in ordered], marker="o", markersize=3, label=label
            )
            axes[2].plot(x, _ms([s.e2e.p95 for s in ordered]), marker="o", markersize=3, label=label)
        axes[0].axhline(slo.attain_target * 100, color="black", linestyle="--", linewidth=1,
                        label=f"target {slo.attain_target:.0%}")  # fmt: skip
        axes[0].set_ylim(0, 105)
        for ax, (ylabel, title) in zip(axes, titles, strict=True):
            ax.set_xlabel(f"load ({unit})")
            ax.set_ylabel(ylabel)
            ax.set_title(f"{title} vs load ({unit})")
            ax.grid(alpha=0.3)
            _legend(ax)
    fig.subplots_adjust(left=0.05, right=0.98, bottom=0.13 / len(units), top=1 - 0.09 / len(units), wspace=0.25,
                        hspace=0.35)  # fmt: skip
    return save(fig, path)
