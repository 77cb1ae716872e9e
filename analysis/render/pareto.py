"""The Pareto view of a comparison (analysis/pareto.py): a plot and the frontier as a table.

Left: per-user output tok/s (1 / median TPOT) against total output tok/s, one line per configuration
through its load levels; filled markers met the SLO, hollow ones missed it; the frontier of the levels
that met it is ringed and joined. Right: goodput against load, the best configuration at each load ringed.
"""

from __future__ import annotations

from pathlib import Path

from analysis import fmt
from analysis.pareto import Pareto, ParetoPoint
from analysis.render.page import esc, table

FIGURE = "pareto.png"  # pareto-<n>.png when the comparison holds several datasets
HEADERS = ["configuration", "load", "output tok/s", "per-user tok/s", "goodput req/s", "SLO attainment"]
CAPTION = (
    "Pareto view under SLO {slo}, dataset {dataset}: per-user output tok/s (1 / median TPOT) against total output tok/s, one "
    "line per configuration through its load levels (hollow: the level missed the SLO); ringed and joined: "
    "the frontier of the levels within the SLO. Right: goodput against load, the best at each load ringed."
)


def plot(p: Pareto, path: Path) -> Path:
    """pareto.png (matplotlib loads here: the tables of this module are rendered without it)."""
    from analysis.render import plots  # selects the Agg backend, then pyplot

    plt, save = plots.plt, plots.save

    fig, (left, right) = plt.subplots(1, 2, figsize=(14, 5.2))
    units = sorted({pt.unit for pt in p.points}) or ["users"]
    for i, label in enumerate(p.labels):
        color = f"C{i % 10}"
        mine = p.of(label)
        xy = [
            (pt.output_tok_per_s, pt.per_user_tok_per_s, pt.meets_slo) for pt in mine if pt.per_user_tok_per_s
        ]
        left.plot([x for x, _, _ in xy], [y for _, y, _ in xy], color=color, linewidth=1, label=label)
        for x, y, met in xy:
            left.scatter([x], [y], s=28, color=color, facecolors=color if met else "none", zorder=3)
        same = [pt for pt in mine if pt.unit == units[0]]
        right.plot([pt.load for pt in same], [pt.goodput_req_per_s or 0.0 for pt in same], color=color,
                   marker="o", markersize=3, linewidth=1, label=label)  # fmt: skip
        best = [pt for pt in same if pt.best_goodput]
        right.scatter([pt.load for pt in best], [pt.goodput_req_per_s or 0.0 for pt in best], s=110,
                      facecolors="none", edgecolors="black", linewidths=1.2, zorder=4)  # fmt: skip
    front = sorted((pt for pt in p.points if pt.frontier), key=lambda pt: pt.output_tok_per_s or 0.0)
    if front:
        left.plot([pt.output_tok_per_s for pt in front], [pt.per_user_tok_per_s for pt in front], color="black",
                  linestyle="--", linewidth=1, label="frontier (within SLO)")  # fmt: skip
        left.scatter([pt.output_tok_per_s for pt in front], [pt.per_user_tok_per_s for pt in front], s=120,
                     facecolors="none", edgecolors="black", linewidths=1.2, zorder=4)  # fmt: skip
    left.set_xlabel("throughput: output tok/s")
    left.set_ylabel("interactivity: per-user output tok/s (1 / TPOT p50)")
    left.set_title(f"Throughput vs interactivity [{p.slo.name}]" + (f" — {p.dataset}" if p.dataset else ""))
    right.set_xlabel(f"load ({units[0]})")
    right.set_ylabel("goodput (req/s)")
    right.set_title(
        f"Goodput vs load [{p.slo.name}]" + (f" — {units[0]} runs only" if len(units) > 1 else "")
    )
    for ax in (left, right):
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    fig.subplots_adjust(left=0.06, right=0.98, bottom=0.11, top=0.92, wspace=0.22)
    return save(fig, path)


def rows(p: Pareto) -> list[list[str]]:
    """The frontier's points, highest throughput first."""
    front = sorted((pt for pt in p.points if pt.frontier), key=lambda pt: -(pt.output_tok_per_s or 0.0))
    return [_row(pt) for pt in front]


def _row(pt: ParetoPoint) -> list[str]:
    return [pt.label, f"{fmt.level(pt.load)} {pt.unit}", fmt.num(pt.output_tok_per_s, 1),
            fmt.num(pt.per_user_tok_per_s, 1), fmt.num(pt.goodput_req_per_s), fmt.pct(pt.slo_attainment)]  # fmt: skip


def verdict(p: Pareto) -> str:
    """One sentence: who owns the frontier."""
    owners = p.owners
    if not owners:
        return f"No load level met SLO {p.slo.name}: no frontier."
    if len(owners) == 1:
        return f"{owners[0]} holds the whole frontier under SLO {p.slo.name}."
    return (
        f"No single best under SLO {p.slo.name}: {', '.join(owners)} each hold part of the frontier "
        "(the load decides which trade-off is best)."
    )


def figure_name(i: int, n: int) -> str:
    return FIGURE if n == 1 else f"pareto-{i + 1}.png"


def heading(p: Pareto, several: bool) -> str:
    return "Pareto frontier" + (f" — {p.dataset}" if several and p.dataset else "")


def markdown(views: list[Pareto]) -> list[str]:
    out: list[str] = []
    for p in views:
        out += _markdown(p, len(views) > 1)
    return out


def html(views: list[Pareto]) -> str:
    return "".join(_html(p, len(views) > 1) for p in views)


def _markdown(p: Pareto, several: bool) -> list[str]:
    if not p.points:
        return []
    lines = [f"## {heading(p, several)}", "", verdict(p), ""]
    if body := rows(p):
        lines += [fmt.md_table(HEADERS, body, right=set(range(1, 6))), ""]
    return [
        *lines,
        "Interactivity: 1 / median TPOT of the level; the frontier holds only levels within the SLO.",
        "",
    ]


def _html(p: Pareto, several: bool) -> str:
    if not p.points:
        return ""
    body = rows(p)
    return f"<h2>{esc(heading(p, several))}</h2><p><b>{esc(verdict(p))}</b></p>" + (
        table(HEADERS, body) if body else ""
    )
