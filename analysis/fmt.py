"""Number and time formatting shared by every text the analysis writes, and by the arena's leaderboard.

One place, so the same figure reads the same everywhere: latencies in ms in tables (seconds in
JSON), rates with sensible precision, a dash for "not measured". It lives beside the computing
modules, not under render/, because summary.json's warnings carry formatted times too.
"""

from __future__ import annotations

import math
import time

DASH = "–"


def _missing(v: float | None) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


def ms(v_s: float | None) -> str:
    """Seconds → milliseconds text with 3 significant-ish digits: `12.3`, `456`, `12,345`."""
    if _missing(v_s):
        return DASH
    v = v_s * 1000.0
    if abs(v) >= 100:
        return f"{v:,.0f}"
    if abs(v) >= 10:
        return f"{v:.1f}"
    return f"{v:.2f}"


def num(v: float | None, digits: int = 2) -> str:
    if _missing(v):
        return DASH
    if abs(v) >= 1000:
        return f"{v:,.0f}"
    return f"{v:,.{digits}f}"


def pct(v: float | None, digits: int = 1) -> str:
    return DASH if _missing(v) else f"{v * 100:.{digits}f} %"


def signed_ms(v_s: float | None) -> str:
    """A difference in ms with its sign: `+5.58`, `−12.3`."""
    return DASH if v_s is None else ("+" if v_s >= 0 else "−") + ms(abs(v_s))


def level(v: float | None) -> str:
    """A load level: `12` users, `2.5`, `8.69` req/s (a measured rate: three significant digits)."""
    if _missing(v):
        return DASH
    return f"{v:.0f}" if float(v).is_integer() else f"{v:.3g}"


def utc(t: float | None) -> str:
    if _missing(t):
        return DASH
    return time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime(t))


def duration(s: float | None) -> str:
    if _missing(s):
        return DASH
    if s < 120:
        return f"{s:.1f} s"
    m, sec = divmod(round(s), 60)
    h, m = divmod(m, 60)
    return f"{h}h{m:02d}m{sec:02d}s" if h else f"{m}m{sec:02d}s"


def md_table(headers: list[str], rows: list[list[str]], right: set[int] | None = None) -> str:
    """A GitHub markdown table; columns in `right` (default: all but the first) are right-aligned."""
    right = set(range(1, len(headers))) if right is None else right
    sep = ["---:" if i in right else "---" for i in range(len(headers))]
    lines = ["| " + " | ".join(headers) + " |", "| " + " | ".join(sep) + " |"]
    lines += ["| " + " | ".join(str(c).replace("|", "\\|") for c in r) + " |" for r in rows]
    return "\n".join(lines)


def text_table(headers: list[str], rows: list[list[str]]) -> str:
    """Plain aligned columns for the console (first column left, the rest right)."""
    widths = [max(len(str(r[i])) for r in [headers, *rows]) for i in range(len(headers))]
    out = []
    for r in [headers, *rows]:
        cells = [
            str(c).ljust(w) if i == 0 else str(c).rjust(w)
            for i, (c, w) in enumerate(zip(r, widths, strict=True))
        ]
        out.append("  ".join(cells))
    return "\n".join(out)
