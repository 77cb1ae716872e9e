"""The master's (or local runner's) judgement of every load process's seconds: run.json `loadgen`.

Each worker ships its closed seconds (loadgen/monitors/selfmon.py: event-loop lag samples, a stride
of read lags, CPU %). `Aggregate` merges them into per-worker figures over the raw samples and
three kinds of windows, each judged over `SUSTAIN_S` judged seconds in a row of one worker (all
their samples pooled):
- `saturated_windows` — the generator could not keep up: event-loop lag p99 over the threshold
  (`--saturation-lag`, default 10 ms) *while* that process used at least `CPU_BUSY` % of a core. A
  single stall (garbage collection, spawning users, connecting) is not saturation, and neither is
  lag while the process idles (the host is busy with something else: more workers would not help).
- `late_windows` — the process read late: read-lag p99 (how long bytes the kernel already held
  waited for it) over the same threshold, whatever its CPU. The kernel's receive stamp keeps a
  token's arrival exact however late it is read, except where the read comes after the next token:
  both then carry the later arrival (TTFT and ITL off by up to one token gap). A process that waits
  for a core (the engine or other workers on the same ones) reads late with a calm event loop and
  no saturation flag, so this is its own window.
- `stall_windows` — every second whose lag p99 exceeded the threshold or that held one stall over
  ten times it: the client's timestamps there may be late (a diagnostic, not a verdict).
Seconds are judged only after the start-up (the first `spawning_complete` plus `STARTUP_GRACE_S`,
the first sends) and before the shutdown (`test_stopping`): spawning and stopping hundreds of users
blocks the loop by itself. `saturated_detail` / `late_detail` say, per window, the figures of its
worst span. analysis/health.py turns the windows into the report's lines; the master logs a line
as a span is found (loadgen/monitors/selfmon.py).

Merging a second costs the same at any point of a run; the run-long figures (percentiles over every
sample kept) are sorted only by `meta()`, when run.json is written (at the stop and the close),
never per report: re-sorting them per report grew with the run's length (8 workers after 10
minutes: a whole core of the master; one local process after 30 minutes: ~45 ms of its own loop
blocked every second, its streams' reads delayed with it; bench/selfmon_cost.py).
"""

from __future__ import annotations

from array import array

from core.quantiles import nearest_rank

STALL_FACTOR = 10  # a second with one stall this many times the threshold is a stall second too
SUSTAIN_S = 3  # a window: this many judged seconds in a row over the threshold ...
CPU_BUSY = 50.0  # ... and, for saturation, the process used at least this share of a core (mean, %)
MAX_SAMPLES = 400_000  # per worker and kind (~1 h of probe samples); later seconds still count for windows
#  (kept as C doubles: 3.2 MB per worker and kind when full, where Python floats in a list took 13 MB)

pct = nearest_rank  # the generator's own health figures: values that really occurred


class Aggregate:
    """Every worker's seconds → run.json `loadgen` (see the module doc)."""

    def __init__(self, threshold_ms: float) -> None:
        self.threshold_ms = threshold_ms
        self.workers: dict[str, dict] = {}
        self.recent: dict[str, list[dict]] = {}  # per worker: the last seconds in a row that may be judged
        self.flagged: list[dict] = []  # saturated spans: t0, t1, worker, lag_p99_ms, cpu_percent, span_s
        self.late: list[dict] = []  # late-read spans: t0, t1, worker, read_p99_ms, cpu_percent, span_s
        self.stalls: list[tuple[float, float]] = []
        self.steady_from: float | None = None  # start-up over (None: not yet)
        self.steady_until: float | None = None  # shutdown began

    def judged(self, rec: dict) -> bool:
        """Outside the start-up and the shutdown."""
        return (
            self.steady_from is not None
            and float(rec["t0"]) >= self.steady_from
            and (self.steady_until is None or float(rec["t1"]) <= self.steady_until)
        )

    def add(self, worker: str, records: list[dict]) -> list[dict]:
        """Merge a worker's seconds; returns the saturated spans they completed (the late-read spans
        they completed are appended to `late`)."""
        w = self.workers.setdefault(
            worker,
            {"lag": array("d"), "read": array("d"), "cpu": [], "seconds": 0, "flagged": set(),
             "late": set(), "stalled": 0},
        )  # fmt: skip
        hot = []
        for rec in records:
            lags = sorted(rec.get("lag") or [])
            w["seconds"] += 1
            w["cpu"].append(float(rec.get("cpu", 0.0)))
            if len(w["lag"]) < MAX_SAMPLES:
                w["lag"].extend(lags)
            if len(w["read"]) < MAX_SAMPLES:
                w["read"].extend(rec.get("read") or [])
            p99 = pct(lags, 0.99) if lags else float("inf")  # a second without one wake-up: stalled
            # One long stall leaves one sample among ~100 (p99 misses it) but holds every stream.
            if p99 > self.threshold_ms or (lags and lags[-1] > STALL_FACTOR * self.threshold_ms):
                w["stalled"] += 1
                self.stalls.append((float(rec["t0"]), float(rec["t1"])))
            run = self._run(worker, {**rec, "lag": lags})
            if run is None:
                continue
            seconds = {round(float(r["t0"]), 3) for r in run}
            if (span := self._span(worker, run, "lag", "lag_p99_ms", CPU_BUSY)) is not None:
                w["flagged"].update(seconds)
                self.flagged.append(span)
                hot.append(span)
            if (span := self._span(worker, run, "read", "read_p99_ms", 0.0)) is not None:
                w["late"].update(seconds)
                self.late.append(span)
        return hot

    def _run(self, worker: str, rec: dict) -> list[dict] | None:
        """The last SUSTAIN_S judged seconds in a row of `worker`, ending with `rec`; None when fewer."""
        run = self.recent.setdefault(worker, [])
        if not self.judged(rec) or (run and float(rec["t0"]) - float(run[-1]["t1"]) > 0.5):
            run.clear()
        if not self.judged(rec):
            return None
        run.append(rec)
        del run[:-SUSTAIN_S]
        return list(run) if len(run) == SUSTAIN_S else None

    def _span(self, worker: str, run: list[dict], kind: str, figure: str, cpu_busy: float) -> dict | None:
        """The span of `run` when its pooled `kind` p99 exceeds the threshold at ≥ `cpu_busy` % CPU."""
        pooled = sorted(x for r in run for x in r.get(kind) or [])
        # no wake-up in 3 s is lag at its worst; no read in 3 s is nothing read late
        p99 = pct(pooled, 0.99) if pooled else (float("inf") if kind == "lag" else 0.0)
        cpu = sum(float(r.get("cpu", 0.0)) for r in run) / len(run)
        if p99 <= self.threshold_ms or cpu < cpu_busy:
            return None
        t0, t1 = float(run[0]["t0"]), float(run[-1]["t1"])
        return {"t0": t0, "t1": t1, "worker": worker, figure: round(min(p99, 1e9), 1),
                "cpu_percent": round(cpu, 1), "span_s": len(run)}  # fmt: skip

    def stall_windows(self) -> list[list[float]]:
        return _merge([{"t0": a, "t1": b} for a, b in self.stalls], "")[0]

    def meta(self) -> dict:
        """run.json `loadgen`: sorts every sample kept, so only when run.json is written."""
        workers = {}
        for wid, w in self.workers.items():
            lag, read, cpu = sorted(w["lag"]), sorted(w["read"]), w["cpu"]
            workers[wid] = {
                "lag_ms": _dist(lag),
                "cpu_percent": {
                    "mean": round(sum(cpu) / len(cpu), 1) if cpu else None,
                    "max": round(max(cpu), 1) if cpu else None,
                },
                "read_lag_ms": _dist(read),
                "seconds": w["seconds"],
                "saturated_seconds": len(w["flagged"]),
                "late_seconds": len(w["late"]),
                "stalled_seconds": w["stalled"],
            }
        windows, detail = _merge(self.flagged, "lag_p99_ms")
        late_windows, late_detail = _merge(self.late, "read_p99_ms")
        return {
            "threshold_ms": self.threshold_ms,
            "sustain_s": SUSTAIN_S,
            "cpu_busy_percent": CPU_BUSY,
            "workers": workers,
            "saturated_windows": windows,
            "saturated_detail": detail,
            "late_windows": late_windows,
            "late_detail": late_detail,
            "stall_windows": self.stall_windows(),
        }


def _merge(spans: list[dict], figure: str) -> tuple[list[list[float]], list[dict]]:
    """Spans of all workers merged where they touch (a 0.5 s gap still joins), and per merged window
    the figures of its worst span (by `figure`)."""
    out: list[list[float]] = []
    detail: list[dict] = []
    for f in sorted(spans, key=lambda f: f["t0"]):
        if out and f["t0"] <= out[-1][1] + 0.5:
            out[-1][1] = max(out[-1][1], f["t1"])
            if figure and f[figure] > detail[-1][figure]:
                detail[-1] = {k: v for k, v in f.items() if k not in ("t0", "t1")}
        else:
            out.append([f["t0"], f["t1"]])
            detail.append({k: v for k, v in f.items() if k not in ("t0", "t1")})
    return out, detail


def _dist(xs: list[float]) -> dict:
    if not xs:
        return {"p50": None, "p99": None, "max": None}
    return {"p50": round(pct(xs, 0.5), 3), "p99": round(pct(xs, 0.99), 3), "max": round(xs[-1], 3)}
