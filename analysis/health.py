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
    windows = []
    for w in loadgen.get("saturated_windows") or []:
        if isinstance(w, list | tuple) and len(w) == 2 and all(isinstance(x, int | float) for x in w):
            windows.append((float(w[0]), float(w[1])))
    detail = [d for d in loadgen.get("saturated_detail") or [] if isinstance(d, dict)]
    t0 = meta.get("t_start_unix")
    out = []
    for i, (a, b) in enumerate(windows):
        rel = f" (+{a - t0:.0f} s to +{b - t0:.0f} s into the run)" if isinstance(t0, int | float) else ""
        why = _saturation_cause(detail[i]) if len(detail) == len(windows) else ""
        out.append(f"load generator saturated from {fmt.utc(a)} to {fmt.utc(b)}{rel}{why}: add workers")
    return windows, out


def late_read_warnings(meta: dict) -> list[str]:
    """run.json `loadgen.workers[].read_lag_ms` over the lag threshold → one line per such worker.

    A read lag is how long bytes the kernel already held waited for the process. The kernel stamps
    keep a token's arrival exact however late it is read, except where a read comes after the next
    token: the two are read together and both carry the later arrival (the first token's time off
    by one token gap). That happens with no saturation flag when the process waits for a core (the
    engine or other workers on the same ones), so it gets its own line. Whether the process's own
    work or its neighbours' kept it away, the remedy is the same: fewer streams per core it has to
    itself; its CPU share is printed to tell which.
    """
    loadgen = meta.get("loadgen") if isinstance(meta.get("loadgen"), dict) else {}
    threshold = loadgen.get("threshold_ms")
    workers = loadgen.get("workers") if isinstance(loadgen.get("workers"), dict) else {}
    if not isinstance(threshold, int | float):
        return []
    out = []
    for name, w in sorted(workers.items()):
        read = w.get("read_lag_ms") if isinstance(w, dict) else None
        p99 = read.get("p99") if isinstance(read, dict) else None
        if not isinstance(p99, int | float) or p99 <= threshold:
            continue
        cpu = w.get("cpu_percent")
        cpu = cpu.get("mean") if isinstance(cpu, dict) else None
        at = f" at {cpu:.0f} % CPU" if isinstance(cpu, int | float) else ""
        out.append(
            f"client reads late on {name}: read lag p99 {p99:.0f} ms > {threshold:g} ms{at}; a token read "
            "together with the next carries the next one's arrival (TTFT and ITL off by up to a token gap): "
            "add workers, on cores nothing else uses"
        )
    return out


def _saturation_cause(d: dict) -> str:
    """`: event-loop lag p99 23 ms over 3 s at 95 % CPU (worker w1)` — the figures that flagged it."""
    lag, cpu, span = d.get("lag_p99_ms"), d.get("cpu_percent"), d.get("span_s")
    if not all(isinstance(x, int | float) for x in (lag, cpu, span)):
        return ""
    return f": event-loop lag p99 {lag:.0f} ms over {span:g} s at {cpu:.0f} % CPU ({d.get('worker', '?')})"
