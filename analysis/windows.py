"""The one definition of the time a figure is measured over: a load level's window, the start-up, the
truncated levels, and the tokens that arrived inside a window.

Every rate is a count divided by a window, so the window and what is counted must agree; this
module is the only place that decides either (README.md § Metric definitions):
- **a load level's window** is its stage's own span in run.json (`stages[]`: `t_start_unix` →
  `t_end_unix`) without its warm-up and cool-down (and, for the first stage, without the start-up).
  Requests belong to the level they were *sent* in; a level's req/s and goodput are its requests
  divided by that window. (It used to be first send → last completion, which stretched a 10 s step
  to ~17 s with 7 s requests and biased every per-step rate low.)
- **tokens** count where they *arrived*: each text chunk at `t_start_unix + ttft_s + Σ itl_s`, a
  request's output tokens spread evenly over its chunks. A window's output tok/s is the tokens that
  arrived inside it / its length — of completed requests, and of requests the load generator
  cancelled for what they had received (`generated`) — what the engine's own generation counter
  measures over the same span, whichever level sent the request.
- **the start-up** is the spawn period of a closed-loop run: from the start until every user of the
  first stage was spawned (run.json `startup.t_spawned_unix`, Locust's `spawning_complete`) and has
  sent its first request (the last initial user's first send in requests.csv). Its requests are
  reported apart and left out of the headline and the first level unless asked for.
- **a truncated level** is one whose figures do not describe the whole level: see `truncation`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa

from analysis.itl import row_gaps_s

# A level is truncated when the load generator cancelled at least this share of its requests: those
# were in flight when the run (or the level's users) stopped, so the survivors lean towards short requests.
CANCELLED_SHARE = 0.10
# ... or when its stage ran shorter than planned by more than 5 % of the plan or 1 s, whichever is
# more (the shape ticks once a second, and an open-loop stage starts up to 1 s after its tick).
SHORT_SHARE, SHORT_S = 0.05, 1.0


@dataclass(frozen=True)
class Startup:
    """The spawn period (see module doc); `rows` marks the requests sent in it."""

    t_start_unix: float
    t_end_unix: float
    users: int
    t_spawned_unix: float | None
    rows: np.ndarray

    @property
    def duration_s(self) -> float:
        return self.t_end_unix - self.t_start_unix


def first_stage(meta: dict) -> dict | None:
    """The stage that started first (run.json `stages[]`), None when run.json lists none."""
    stages = [s for s in meta.get("stages") or [] if isinstance(s, dict) and is_num(s.get("t_start_unix"))]
    return min(stages, key=lambda s: float(s["t_start_unix"])) if stages else None


def startup(df: pd.DataFrame, meta: dict) -> Startup | None:
    """The start-up of a run whose run.json records one (`startup`: written since the load path marks
    it); None for older runs, open-loop first stages, or rows without `worker`/`user`."""
    rec = meta.get("startup")
    first = first_stage(meta)
    if not isinstance(rec, dict) or first is None or first.get("rate_rps") is not None:
        return None
    if "worker" not in df or "user" not in df:
        return None
    users = int(rec.get("users") or first.get("target_users") or 0)
    mine = df[df["step"].to_numpy() == int(first.get("step") or 0)]
    if users <= 0 or mine.empty:
        return None
    firsts = np.sort(
        mine.groupby([mine["worker"].astype(object), mine["user"].astype(object)])["t_start_unix"]
        .min()
        .to_numpy()
    )
    end = float(firsts[min(users, len(firsts)) - 1])
    spawned = rec.get("t_spawned_unix")
    if is_num(spawned):
        end = max(end, float(spawned))
    start = float(first["t_start_unix"])  # the first stage may begin before the run's own start stamp
    if is_num(rec.get("t_start_unix")):
        start = min(start, float(rec["t_start_unix"]))
    rows = df["t_start_unix"].to_numpy() <= end
    return Startup(min(start, end), end, users, float(spawned) if is_num(spawned) else None, rows)


def level_window(stage: dict, not_before: float | None, run_end: float) -> tuple[float, float]:
    """A level's window: its stage's span minus warm-up and cool-down, not before `not_before` (the
    start-up's end, for the first stage). A stage without an end (the run died in it) ends at `run_end`."""
    t0 = float(stage["t_start_unix"])
    t1 = float(stage["t_end_unix"]) if is_num(stage.get("t_end_unix")) else run_end
    a = t0 + float(stage.get("warmup_s") or 0.0)
    b = t1 - float(stage.get("cooldown_s") or 0.0)
    if not_before is not None:
        a = max(a, not_before)
    return (a, b) if b > a else (t0, max(t1, t0))


def fallback_windows(first_sends: dict[int, float], run_end: float) -> dict[int, tuple[float, float]]:
    """Without run.json stages: a level runs from its first send to the next level's first send (the
    last one to the run's last completion)."""
    steps = sorted(first_sends, key=lambda s: first_sends[s])
    ends = [first_sends[s] for s in steps[1:]] + [run_end]
    return {s: (first_sends[s], max(b, first_sends[s])) for s, b in zip(steps, ends, strict=True)}


# run.json's `shape.name`: the shape's name (`step`, `search`, …); runs before this round wrote the
# schedule's class name, read as the same shape.
_SHAPE_OF_CLASS = {
    "StepSchedule": "step",
    "ConstantSchedule": "none",
    "RateSchedule": "rate",
    "StagesSchedule": "stages",
    "SweepSchedule": "sweep",
    "TraceSchedule": "trace",
    "SearchSchedule": "search",
}


def shape_name(name: object) -> str:
    """The shape of a run.json `shape.name`, old class names included ("" when unknown)."""
    text = str(name or "")
    return _SHAPE_OF_CLASS.get(text, text)


def planned_s(meta: dict, stage: dict) -> float | None:
    """How long a stage was meant to last, from the shape's parameters in run.json (None: open-ended
    or not recorded): the step interval (not for a ramp's capped last level), the sweep's stage
    duration, a search probe's length (None for one the search itself ended early), a `--stages`
    stage's duration, a plain or `--rate` run's `-t`."""
    shape = meta.get("shape") if isinstance(meta.get("shape"), dict) else {}
    params = shape.get("params") if isinstance(shape.get("params"), dict) else {}
    name = shape_name(shape.get("name"))
    if name == "step":
        cap = params.get("max_users") or 0
        if cap and int(stage.get("target_users") or 0) >= cap:
            return None
        return _pos(params.get("step_interval_s"))
    if name == "sweep":
        return _pos(params.get("stage_duration_s"))
    if name in ("none", "rate"):  # one stage for -t (open-ended without it)
        return _pos(params.get("duration_s"))
    if name == "search":  # a probe the search ended early (over-saturated, failing) ran as planned
        for probe in params.get("probes") or []:
            if isinstance(probe, dict) and probe.get("step") == stage.get("step"):
                return None if probe.get("stopped_early") else _pos(probe.get("planned_s"))
        return None
    if name == "stages":
        for st in params.get("stages") or []:
            if isinstance(st, dict) and st.get("step") == stage.get("step"):
                return _pos(st.get("duration_s"))
    return None


def truncation(stage: dict | None, planned: float | None, requests: int, cancelled: int) -> str | None:
    """Why a level's figures do not describe the whole level, or None. The rule:
    1. its stage has no end in run.json (the run died inside it), or ran shorter than planned by
       more than 5 % (at least 1 s): the run was stopped or ended inside it; or
    2. the load generator cancelled ≥ 10 % of the requests sent in it (in flight when the run or
       the level's users stopped): the requests that finished are the short ones, so its latencies
       look better and its attainment is judged on the survivors.
    """
    if stage is not None and is_num(stage.get("t_start_unix")):
        if not is_num(stage.get("t_end_unix")):
            return "the run ended inside it (its stage has no end in run.json)"
        ran = float(stage["t_end_unix"]) - float(stage["t_start_unix"])
        if planned is not None and ran < planned - max(SHORT_SHARE * planned, SHORT_S):
            return f"the run stopped {ran:.1f} s into this {planned:g} s stage"
    if requests and cancelled / requests >= CANCELLED_SHARE:
        return (
            f"{cancelled} of {requests} requests were cancelled by the load generator (in flight when the "
            "run or its users stopped): the rest lean towards short requests"
        )
    return None


def generated(df: pd.DataFrame) -> np.ndarray:
    """Rows whose tokens count in output tok/s: completed requests, and requests the load generator
    cancelled (run end, users stopped) for the chunks they had received — the engine generated those
    tokens inside the window, so leaving them out biased the last seconds low (−1.5 % on a 60 s run)."""
    ok = df["ok"].to_numpy(dtype=bool)
    cancelled = (df["error"].astype(object) == "cancelled").to_numpy(dtype=bool)
    return ok | (cancelled & (np.nan_to_num(df["output_tokens"].to_numpy(), nan=0.0) > 0))


def completed_in(df: pd.DataFrame, mask: np.ndarray, a: float, b: float) -> np.ndarray:
    """`mask` rows whose request completed inside [a, b] (completion: send + E2E)."""
    end = df["t_start_unix"].to_numpy() + np.nan_to_num(df["e2e_s"].to_numpy(), nan=0.0)
    return mask & (end >= a) & (end <= b)


def tokens_in_windows(
    df: pd.DataFrame, itl: pa.ChunkedArray, mask: np.ndarray, windows: list[tuple[float, float]]
) -> np.ndarray:
    """Output tokens of the `mask` rows that arrived inside each window `[a, b)` (windows must not overlap).

    A row whose first chunk and completion fall between the same two window edges puts all its
    tokens there, unparsed; only rows spanning an edge have their ITL gaps parsed for chunk times.
    """
    out = np.zeros(len(windows))
    if not windows:
        return out
    t, ttft, e2e = (df[c].to_numpy() for c in ("t_start_unix", "ttft_s", "e2e_s"))
    tokens = np.nan_to_num(df["output_tokens"].to_numpy(), nan=0.0)
    has = mask & (tokens > 0) & ~(np.isnan(ttft) & np.isnan(e2e))
    last = t + np.nan_to_num(e2e, nan=0.0)
    first = np.where(np.isnan(ttft), last, t + np.nan_to_num(ttft, nan=0.0))  # no text chunk: at completion
    last = np.maximum(first, last)
    edges = np.unique(np.asarray(windows, dtype=float).ravel())
    spans = np.searchsorted(edges, first, "right") != np.searchsorted(edges, last, "right")
    whole, split = has & ~spans, has & spans
    out += _binned(first[whole], tokens[whole], windows)
    if split.any():
        counts, gaps = row_gaps_s(itl, split)
        f, k = first[split], tokens[split] / (counts + 1)  # every chunk carries an equal share
        out += _binned(f, k, windows)  # each row's first chunk
        if len(gaps):  # the later ones: first + the row's running sum of gaps (one global cumsum, rebased)
            cum = np.cumsum(gaps)
            before = np.cumsum(counts) - counts
            base = np.where(before > 0, cum[np.maximum(before - 1, 0)], 0.0)
            out += _binned(np.repeat(f - base, counts) + cum, np.repeat(k, counts), windows)
    return out


def _binned(times: np.ndarray, weights: np.ndarray, windows: list[tuple[float, float]]) -> np.ndarray:
    """Σ weights of the times inside each window `[a, b)`."""
    order = np.argsort([a for a, _ in windows], kind="stable")
    starts = np.array([windows[i][0] for i in order], dtype=float)
    ends = np.array([windows[i][1] for i in order], dtype=float)
    j = np.searchsorted(starts, times, "right") - 1
    inside = (j >= 0) & (times < ends[np.clip(j, 0, None)])
    sums = np.bincount(j[inside], weights[inside], minlength=len(windows))
    out = np.zeros(len(windows))
    out[order] = sums
    return out


def is_num(v: object) -> bool:
    """A real number (not a bool, not NaN): run.json values are checked with this before use."""
    return isinstance(v, int | float) and not isinstance(v, bool) and v == v


def _pos(v: object) -> float | None:
    return float(v) if is_num(v) and float(v) > 0 else None  # type: ignore[arg-type]
