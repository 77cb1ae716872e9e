"""The arena's Pareto and interference views: what a comparison section and a leaderboard cell add.

- **interference**: each mix cell against the alone cells of its classes (same configuration, mix and
  shape; arena/mixes.py), paired here by cell rather than by URL (every launched server listens on a
  fresh port), through `api.interference`; the comparison shows the deltas, the leaderboard entry of
  the mix carries their phrases (`interference`).
- **Pareto**: each entry carries its configuration's load levels (`pareto`: [load, output tok/s,
  per-user tok/s, met the SLO, on the frontier], from `api.pareto_of`, per dataset × SLO × shape as a
  leaderboard cell), and each leaderboard cell draws them as an inline SVG (no network, no
  matplotlib) with the frontier marked and says who holds it.
"""

from __future__ import annotations

import html
from typing import Any

from analysis import api
from arena.matrix import Cell

W, H, PAD = 520, 300, 44
COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f")


def interference(runs: list[tuple[Cell, Any]], slo: Any, config_key: Any) -> dict[str, list]:
    """Per configuration key (arena/tables.py): the interference of its mix runs' classes, from the
    alone cells of the same configuration, mix and shape among `runs` (cells of one shape)."""
    out: dict[str, list] = {}
    for cell, run in runs:
        if not cell.mix or cell.alone:
            continue
        alone = [r for c, r in runs if c.alone and (c.mix, c.dataset, c.target.label) == (cell.mix, cell.dataset,
                                                                                         cell.target.label)]  # fmt: skip
        if not alone:
            continue
        try:
            mixed = api.analyze(run, slo).summary
            refs = [api.analyze(r, slo).summary for r in alone]
        except api.AnalysisError:
            continue
        out.setdefault(config_key(cell), []).extend(api.interference(cell.target.label, mixed, refs))
    return out


def pareto_points(comparison: Any) -> dict[tuple[str, str], list[list]]:
    """(row label, dataset) → its levels as [load, output tok/s, per-user tok/s, met SLO, on the frontier]."""
    out: dict[tuple[str, str], list[list]] = {}
    for view in api.pareto_of(comparison):
        for label in view.labels:
            out[(label, view.dataset)] = [
                [p.load, p.output_tok_per_s, p.per_user_tok_per_s, p.meets_slo, p.frontier]
                for p in view.of(label)
            ]
    return out


def owners(items: list[dict]) -> str:
    """Who holds a leaderboard cell's frontier, in one sentence ("" without points)."""
    if not any(e.get("pareto") for e in items):
        return ""
    held = [e["config"] for e in items if any(p[4] for p in e.get("pareto") or [])]
    if not held:
        return "Pareto frontier: no load level met the SLO."
    if len(held) == 1:
        return f"Pareto frontier: {held[0]} holds all of it."
    return f"Pareto frontier: no single best — {', '.join(held)} each hold part of it (the load decides)."


def cell_markdown(items: list[dict]) -> list[str]:
    """Lines under a leaderboard cell's table: the frontier's holders and each mix's interference."""
    lines = [text] if (text := owners(items)) else []
    lines += [f"- interference, {e['config']}: {e['interference']}" for e in items if e.get("interference")]
    return [*lines, ""] if lines else []


def cell_html(items: list[dict]) -> str:
    esc = html.escape
    parts = []
    if text := owners(items):
        parts.append(f"<p class=muted>{esc(text)}</p>{svg(items)}")
    notes = [e for e in items if e.get("interference")]
    if notes:
        parts.append("<ul>" + "".join(f"<li>interference, <b>{esc(e['config'])}</b>: {esc(e['interference'])}</li>"
                                      for e in notes) + "</ul>")  # fmt: skip
    return "".join(parts)


def svg(items: list[dict]) -> str:
    """Per-user tok/s against output tok/s, one line per configuration; hollow: missed the SLO; ringed:
    the frontier."""
    pts = [(p[1], p[2]) for e in items for p in e.get("pareto") or [] if p[1] is not None and p[2]]
    if not pts:
        return ""
    xmax, ymax = max(x for x, _ in pts) * 1.08 or 1.0, max(y for _, y in pts) * 1.08 or 1.0

    def at(x: float, y: float) -> tuple[float, float]:
        return PAD + x / xmax * (W - PAD - 10), H - PAD - y / ymax * (H - PAD - 10)

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" role="img" class="pareto">',
           f'<line x1="{PAD}" y1="{H - PAD}" x2="{W - 10}" y2="{H - PAD}" stroke="#889"/>',
           f'<line x1="{PAD}" y1="10" x2="{PAD}" y2="{H - PAD}" stroke="#889"/>',
           f'<text x="{W / 2}" y="{H - 8}" font-size="11" text-anchor="middle">output tok/s (0–{xmax:.0f})</text>',
           f'<text x="12" y="{H / 2}" font-size="11" transform="rotate(-90 12 {H / 2})" text-anchor="middle">'
           f"per-user tok/s (0–{ymax:.0f})</text>"]  # fmt: skip
    for i, e in enumerate(items):
        color, name = COLORS[i % len(COLORS)], html.escape(e["config"])
        xy = [(*at(p[1], p[2]), p) for p in e.get("pareto") or [] if p[1] is not None and p[2]]
        if not xy:
            continue
        out.append(
            f'<polyline fill="none" stroke="{color}" points="{" ".join(f"{x:.1f},{y:.1f}" for x, y, _ in xy)}"/>'
        )
        for x, y, p in xy:
            out.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="4" fill="{color if p[3] else "none"}" stroke="{color}">'
                       f"<title>{name}: {p[0]:g}</title></circle>")  # fmt: skip
            if p[4]:
                out.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="8" fill="none" stroke="#000"/>')
        x, y, _ = xy[-1]
        anchor, dx = ("end", -8) if x > W * 0.7 else ("start", 8)  # the label stays inside the picture
        out.append(f'<text x="{x + dx:.1f}" y="{y - 8:.1f}" font-size="11" fill="{color}" text-anchor="{anchor}">'
                   f"{name}</text>")  # fmt: skip
    return "".join([*out, "</svg>"])
