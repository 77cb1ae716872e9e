"""What run.json says of the load generator itself (`loadgen`), as the report's warning lines.

A client that fell behind reports its own delays as the server's, so the report says where that
happened and what it costs: saturated windows (the process could not keep up) and late reads (bytes
waited in the kernel for the process, whatever kept it away). Cheap to import (no pandas): the
benches judge their runs with the same rules through analysis.api.
"""

from __future__ import annotations

from analysis import fmt


def saturation_warnings(meta: dict) -> tuple[list[tuple[float, float]], list[str]]:
    """run.json `loadgen.saturated_windows` (+ `saturated_detail`: what triggered each) → the windows
    and the report's one-line flags."""
    loadgen = meta.get("loadgen") if isinstance(meta.get("loadgen"), dict) else {}
    windows = [(float(w[0]), float(w[1])) for w in loadgen.get("saturated_windows") or [] if _is_span(w)]
    detail = [d for d in loadgen.get("saturated_detail") or [] if isinstance(d, dict)]
    out = []
    for i, (a, b) in enumerate(windows):
        why = _saturation_cause(detail[i]) if len(detail) == len(windows) else ""
        out.append(
            f"load generator saturated from {fmt.utc(a)} to {fmt.utc(b)}{_into(meta, a, b)}{why}: add workers"
        )
    return windows, out


def late_read_warnings(meta: dict) -> list[str]:
    """run.json `loadgen.late_windows` (+ `late_detail`) → one line per window (`late_reads`)."""
    return late_reads(meta)[1]


def late_reads(meta: dict) -> tuple[list[tuple[float, float]], list[str]]:
    """run.json `loadgen.late_windows` (+ `late_detail`) → the windows and one line per window.

    A read lag is how long bytes the kernel already held waited for the process. The kernel stamps
    keep a token's arrival exact however late it is read, except where a read comes after the next
    token: the two are read together and both carry the later arrival (the first token's time off
    by one token gap). That happens with no saturation flag when the process waits for a core (the
    engine or other workers on the same ones), so it gets its own line. Whether the process's own
    work or its neighbours' kept it away, the remedy is the same: fewer streams per core it has to
    itself; its CPU share is printed to tell which. (The window rule: loadgen/monitors/selfjudge.py.)
    """
    loadgen = meta.get("loadgen") if isinstance(meta.get("loadgen"), dict) else {}
    windows = [(float(w[0]), float(w[1])) for w in loadgen.get("late_windows") or [] if _is_span(w)]
    detail = [d for d in loadgen.get("late_detail") or [] if isinstance(d, dict)]
    threshold = loadgen.get("threshold_ms")
    out = []
    for i, (a, b) in enumerate(windows):
        d = detail[i] if len(detail) == len(windows) else {}
        read, cpu, span = d.get("read_p99_ms"), d.get("cpu_percent"), d.get("span_s")
        why = ""
        if all(isinstance(x, int | float) for x in (read, cpu, span, threshold)):
            why = (
                f": read lag p99 {read:.0f} ms over {span:g} s > {threshold:g} ms at {cpu:.0f} % CPU "
                f"({d.get('worker', '?')})"
            )
        out.append(
            f"client reads late from {fmt.utc(a)} to {fmt.utc(b)}{_into(meta, a, b)}{why}; a token read "
            "together with the next carries the next one's arrival (TTFT and ITL off by up to a token "
            "gap): add workers, on cores nothing else uses"
        )
    return windows, out


def _is_span(w: object) -> bool:
    return isinstance(w, list | tuple) and len(w) == 2 and all(isinstance(x, int | float) for x in w)


def _into(meta: dict, a: float, b: float) -> str:
    """` (+12 s to +15 s into the run)` when the run's start is known."""
    t0 = meta.get("t_start_unix")
    return f" (+{a - t0:.0f} s to +{b - t0:.0f} s into the run)" if isinstance(t0, int | float) else ""


def _saturation_cause(d: dict) -> str:
    """`: event-loop lag p99 23 ms over 3 s at 95 % CPU (worker w1)` — the figures that flagged it."""
    lag, cpu, span = d.get("lag_p99_ms"), d.get("cpu_percent"), d.get("span_s")
    if not all(isinstance(x, int | float) for x in (lag, cpu, span)):
        return ""
    return f": event-loop lag p99 {lag:.0f} ms over {span:g} s at {cpu:.0f} % CPU ({d.get('worker', '?')})"
