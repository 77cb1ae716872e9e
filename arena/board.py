"""The leaderboard: per (dataset × SLO profile × load shape), configurations ranked by capacity at SLO, then goodput.

Capacity at SLO (the highest load whose attainment ≥ target) ranks first because it answers the
product's question — how much load does it take within the SLO — and does not depend on how far
past saturation the ramp went; goodput breaks ties (e.g. two servers that both held the SLO up to
the highest tested load). Both rank only what separates (`beats`): one configuration is above
another when its 95 % interval (analysis/intervals.py, repeats merged) lies wholly above the other's;
when the capacity intervals overlap, goodput's decide; when those overlap too, the two are tied
within noise. The winners are the entries nothing beats; several winners are a tie, said so, and
no cell is given to one of them. A cell in which no configuration met the SLO at any level and none
served a good request has no winner. Rendered as markdown and as one self-contained HTML page.
"""

from __future__ import annotations

import html
from collections.abc import Iterable
from typing import Any

from analysis.api import fmt
from arena import mixview

WINNER = "🏆"
WINNER_HTML = "★"  # the page must read right without an emoji font (headless browsers, servers)


def cell_key(e: dict) -> tuple:
    return (e["dataset"], e["slo"], e.get("slo_text") or "", e["shape"], e.get("shape_args") or "")


def rank_key(e: dict) -> tuple:
    cap = e.get("capacity")
    return (cap is None, -(cap or 0.0), -(e.get("goodput") or 0.0))


def _interval(e: dict, name: str) -> tuple[float, float]:
    """An entry's 95 % interval of `capacity` or `goodput` (store columns `<name>_low/_high`): an open
    upper end is +∞; an entry stored without one (older stores) is its point; none measured is 0."""
    v = e.get(name)
    lo, hi = e.get(f"{name}_low"), e.get(f"{name}_high")
    if lo is None and hi is None:
        return (v or 0.0, v or 0.0)
    return (0.0 if lo is None else lo, float("inf") if hi is None else hi)


def beats(a: dict, b: dict) -> bool:
    """`a` ranks above `b` beyond noise: its capacity interval lies wholly above b's, or the two
    capacities do not separate (their intervals overlap) and its goodput interval lies wholly above."""
    (ca_lo, ca_hi), (cb_lo, cb_hi) = _interval(a, "capacity"), _interval(b, "capacity")
    if ca_lo > cb_hi:
        return True
    if cb_lo > ca_hi:
        return False
    return _interval(a, "goodput")[0] > _interval(b, "goodput")[1]


def ranked(entries: Iterable[dict]) -> list[tuple[tuple, list[dict]]]:
    """Cells by dataset, then SLO, then shape (each in first-seen order), entries best first, with
    `rank` (1 + the entries that beat it beyond noise: `beats`), `winner` (rank 1, when anyone met the
    SLO) and `tied` (the cell's winners are several: tied within noise)."""
    cells: dict[tuple, list[dict]] = {}
    seen: list[dict] = [{}, {}, {}]
    for e in entries:
        key = cell_key(e)
        cells.setdefault(key, []).append(dict(e))
        for i, part in enumerate((key[0], key[1:3], key[3:])):
            seen[i].setdefault(part, len(seen[i]))
    order = sorted(cells, key=lambda k: (seen[0][k[0]], seen[1][k[1:3]], seen[2][k[3:]]))
    out = []
    for key in order:
        items = cells[key]
        for e in items:
            e["rank"] = 1 + sum(1 for o in items if o is not e and beats(o, e))
        items.sort(key=lambda e: (e["rank"], rank_key(e)))
        has_winner = any(e.get("capacity") is not None or (e.get("goodput") or 0) > 0 for e in items)
        top = [e for e in items if e["rank"] == 1]
        for e in items:
            e["winner"] = has_winner and e["rank"] == 1
            e["tied"] = e["winner"] and len(top) > 1
        out.append((key, items))
    return out


def _span(lo: float | None, hi: float | None) -> str:
    return f"[{'…' if lo is None else f'{lo:.3g}'}–{'…' if hi is None else f'{hi:.3g}'}]"


def capacity_text(e: dict, spread: bool = False) -> str:
    """`7.4 users`, `≥ 16 users` (held up to the highest level tested), `none`; with `spread`, its 95 %
    interval — `7.9 users [7.1–8.6]` — and the repeats' range — `(7.4–8.4)` — so a near-tie shows."""
    if e.get("capacity") is None:
        text = "none"
    else:
        ge = "≥ " if e.get("capacity_lower_bound") else ""
        text = f"{ge}{e['capacity']:.3g} {e.get('capacity_unit') or ''}".strip()
    if spread and (e.get("capacity_low") is not None or e.get("capacity_high") is not None):
        text += f" {_span(e.get('capacity_low'), e.get('capacity_high'))}"
    runs = e.get("capacity_runs") or []
    if spread and len(runs) > 1 and len(set(runs)) > 1:
        nums = [v for v in runs if v is not None]
        lo = "none" if len(nums) < len(runs) else f"{min(nums):.3g}"
        hi = f"{max(nums):.3g}" if nums else "none"
        text += f" ({lo}–{hi})"
    return text


def winner_names(winners: list[dict]) -> str:
    """`A`, `A = B (tied within noise)`, or `— (none met the SLO)`."""
    names = " = ".join(e["config"] for e in winners) or "— (none met the SLO)"
    return names + (" (tied within noise)" if len(winners) > 1 else "")


def _winners(cells: list[tuple[tuple, list[dict]]]) -> list[tuple[tuple, list[dict]]]:
    return [(key, [e for e in items if e["winner"]]) for key, items in cells]


def verdict(cells: list[tuple[tuple, list[dict]]]) -> str:
    decided = [w for _, w in _winners(cells) if len(w) == 1]
    tied = [w for _, w in _winners(cells) if len(w) > 1]
    names = {w[0]["config"] for w in decided}
    ties = (
        f" {len(tied)} of {len(cells)} cells {'is a tie' if len(tied) == 1 else 'are ties'} within noise "
        "(the winners' 95 % intervals overlap): no winner there."
        if tied
        else ""
    )
    if not decided:
        return ties.strip() if tied else "No configuration met its SLO in any cell."
    if len(names) == 1:
        return f"**{next(iter(names))}** wins every cell that has a winner ({len(decided)} of {len(cells)}).{ties}"
    return (
        f"**No single best:** {len(names)} configurations ({', '.join(sorted(names))}) each win at least "
        f"one of {len(cells)} cells — the dataset and the SLO decide.{ties}"
    )


COLUMNS = [
    ("rank", "rank"),
    ("config", "configuration"),
    ("capacity", "capacity at SLO"),
    ("goodput", "goodput req/s"),
    ("attainment", "SLO attainment"),
    ("req_per_s", "req/s"),
    ("latency_p95_s", "latency p95"),
    ("ttft_p95_s", "TTFT p95"),
    ("tpot_p95_s", "TPOT p95"),
    ("ttfo_p50_s", "TTFO p50"),
    ("ttfo_p95_s", "TTFO p95"),
    ("reasoning_tokens", "reasoning tokens"),
    ("runs", "runs"),
    ("engine", "engine"),
    ("model", "model"),
    ("hardware", "hardware"),
    ("matrix", "matrix"),
    ("date", "date"),
]


REASONING_KEYS = ("ttfo_p50_s", "ttfo_p95_s", "reasoning_tokens")  # shown where a cell has a reasoning run
NUMERIC = frozenset(("capacity", "goodput", "attainment", "req_per_s", "latency_p95_s", "ttft_p95_s",
                     "tpot_p95_s", *REASONING_KEYS, "runs"))  # fmt: skip


def columns(items: list[dict]) -> list[tuple[str, str]]:
    """COLUMNS for one cell's entries: the reasoning ones only when some entry has them."""
    reasoned = any(e.get("ttfo_p95_s") is not None for e in items)
    return [(k, h) for k, h in COLUMNS if reasoned or k not in REASONING_KEYS]


def _value(e: dict, key: str, mark: str = WINNER) -> str:
    v = e.get(key)
    if key == "rank":
        if e.get("tied"):
            return f"{mark} {v} (tied)"
        return f"{mark} {v}" if e.get("winner") else str(v)
    if key == "capacity":
        return capacity_text(e, spread=True)
    if key == "goodput":
        lo, hi = e.get("goodput_low"), e.get("goodput_high")
        return fmt.num(v) + (f" [{fmt.num(lo)}–{fmt.num(hi)}]" if v is not None and lo is not None else "")
    if key == "req_per_s":
        return fmt.num(v)
    if key == "reasoning_tokens":
        return fmt.num(v, 0)
    if key == "attainment":
        return fmt.pct(v)
    if key.endswith("_s"):
        return fmt.ms(v) + (" ms" if v is not None else "")
    return "" if v is None else str(v)


def _cell_title(key: tuple) -> str:
    dataset, slo, slo_text, shape, _ = key
    return f"{dataset} × {slo} ({slo_text}) · {shape}"


def render_markdown(entries: list[dict], title: str) -> str:
    cells = ranked(entries)
    lines = [f"# {title}", ""]
    if not cells:
        return "\n".join([*lines, "No entries yet: run a matrix with `python -m arena run MATRIX.yaml`.", ""])
    matrices = sorted({e["matrix"] for e in entries})
    lines += [
        f"{len(entries)} entries from {len(matrices)} {'matrices' if len(matrices) > 1 else 'matrix'} "
        f"({', '.join(matrices)}). Each cell ranks configurations by **capacity at SLO** (the highest load "
        "whose SLO attainment stays ≥ the target; ≥ = held up to the highest tested load), then by "
        f"**goodput**, each only where it separates: a configuration ranks above another when its 95 % "
        "interval lies wholly above the other's (README.md § Intervals); overlapping intervals are tied "
        f"within noise. {WINNER} marks the winner — several, marked (tied), when the best are tied. "
        "Figures are medians over repeats; [low–high]: the 95 % interval, repeats merged; (low–high): the "
        "repeats' own range.",
        "",
        verdict(cells),
        "",
        "## Winners",
        "",
    ]
    rows = []
    for key, winners in _winners(cells):
        w = winners[0] if winners else None
        rows.append(
            [
                key[0],
                f"{key[1]} ({key[2]})",
                key[3],
                winner_names(winners),
                capacity_text(w) if w else "",
                fmt.num(w["goodput"]) if w else "",
            ]
        )
    lines += [
        fmt.md_table(
            ["dataset", "SLO", "shape", "winner", "capacity at SLO", "goodput req/s"], rows, right={4, 5}
        ),
        "",
    ]
    for key, items in cells:
        lines += [f"## {_cell_title(key)}", "", f"Load: `{key[4]}`", ""]
        cols = columns(items)
        body = [[_value(e, k) for k, _ in cols] for e in items]
        right = {i for i, (k, _) in enumerate(cols) if k in NUMERIC}
        lines += [fmt.md_table([h for _, h in cols], body, right=right), ""]
        lines += mixview.cell_markdown(items)  # the Pareto frontier's holders, a mix's interference
    lines += ["## Configurations", "", fmt.md_table(CONFIG_HEADERS, configurations(entries), right=set()), ""]
    return "\n".join(lines)


CONFIG_HEADERS = [
    "matrix",
    "configuration",
    "engine",
    "parameters",
    "target (command or URL)",
    "model",
    "hardware",
]


def configurations(entries: list[dict]) -> list[list[str]]:
    """One row per (matrix, configuration): what exactly was benchmarked, and where."""
    seen: dict[tuple, list[str]] = {}
    for e in entries:
        params = e.get("params") or {}
        text = ", ".join(f"{k}={v}" for k, v in params.items()) if isinstance(params, dict) else str(params)
        row = [
            e["matrix"],
            e["config"],
            e.get("engine") or "",
            text,
            e.get("target") or "",
            e.get("model") or "",
        ]
        seen.setdefault((e["matrix"], e["config"]), [*row, e.get("hardware") or ""])
    return list(seen.values())


CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2em auto;max-width:1300px;padding:0 1em;color:#1d2430}
h1{font-size:1.6em}h2{font-size:1.2em;margin-top:2em;border-bottom:1px solid #dde}
table{border-collapse:collapse;margin:.6em 0;font-size:.9em}
th,td{padding:.3em .6em;border-bottom:1px solid #e4e6ee;text-align:left;white-space:nowrap}
td.n{text-align:right;font-variant-numeric:tabular-nums}
tr.win td{background:#fff6d6;font-weight:600}
.verdict{padding:.8em 1em;background:#eef4ff;border-left:4px solid #3b6fd8;margin:1em 0}
code{background:#f3f4f8;padding:.1em .3em;border-radius:3px}
.muted{color:#667}
.cfg td{white-space:normal;max-width:40em}
"""


def render_html(entries: list[dict], title: str) -> str:
    cells = ranked(entries)
    esc = html.escape
    parts = [
        "<!doctype html><html lang=en><head><meta charset=utf-8>",
        f"<title>{esc(title)}</title><style>{CSS}</style></head><body>",
        f"<h1>{esc(title)}</h1>",
    ]
    if not cells:
        parts.append("<p>No entries yet: run a matrix with <code>python -m arena run MATRIX.yaml</code>.</p>")
        return "".join([*parts, "</body></html>\n"])
    text = verdict(cells).replace("**", "")
    parts += [
        f"<p class=muted>Each cell ranks configurations by <b>capacity at SLO</b> (the highest load whose SLO "
        f"attainment stays ≥ the target; ≥ = held up to the highest tested load), then by <b>goodput</b>; "
        "each only where it separates: a configuration ranks above another when its 95 % interval lies "
        "wholly above the other's; overlapping intervals are tied within noise. "
        f"{WINNER_HTML} marks the winner — several, marked (tied), when the best are tied. Figures are "
        "medians over repeats; [low–high]: the 95 % interval, repeats merged; (low–high): the repeats' "
        "own range.</p>",
        f"<div class=verdict>{esc(text)}</div>",
        "<h2>Winners</h2><table><tr><th>dataset</th><th>SLO</th><th>shape</th><th>winner</th>"
        "<th>capacity at SLO</th><th>goodput req/s</th></tr>",
    ]
    for key, winners in _winners(cells):
        w = winners[0] if winners else None
        names = winner_names(winners)
        parts.append(
            f"<tr><td>{esc(key[0])}</td><td>{esc(key[1])}</td><td>{esc(key[3])}</td><td><b>{esc(names)}</b></td>"
            f"<td class=n>{esc(capacity_text(w)) if w else ''}</td><td class=n>{esc(fmt.num(w['goodput'])) if w else ''}</td></tr>"
        )
    parts.append("</table>")
    for key, items in cells:
        parts += [f"<h2>{esc(_cell_title(key))}</h2>", f"<p class=muted>Load: <code>{esc(key[4])}</code></p>"]
        cols = columns(items)
        parts.append("<table><tr>" + "".join(f"<th>{esc(h)}</th>" for _, h in cols) + "</tr>")
        for e in items:
            tds = "".join(
                f"<td{' class=n' if k in NUMERIC else ''}>{esc(_value(e, k, WINNER_HTML))}</td>"
                for k, _ in cols
            )
            parts.append(f"<tr{' class=win' if e['winner'] else ''}>{tds}</tr>")
        parts.append("</table>")
        parts.append(mixview.cell_html(items))  # the Pareto frontier (inline SVG), a mix's interference
    parts.append(
        "<h2>Configurations</h2><table class=cfg><tr>" + "".join(f"<th>{esc(h)}</th>" for h in CONFIG_HEADERS)
    )
    for row in configurations(entries):
        parts.append("<tr>" + "".join(f"<td>{esc(c)}</td>" for c in row) + "</tr>")
    parts.append("</table>")
    return "".join([*parts, "</body></html>\n"])


def write(entries: list[dict[str, Any]], out_dir: Any, title: str) -> None:
    """`leaderboard.md` and `leaderboard.html` in `out_dir`."""
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "leaderboard.md").write_text(render_markdown(entries, title))
    (out_dir / "leaderboard.html").write_text(render_html(entries, title), encoding="utf-8")
