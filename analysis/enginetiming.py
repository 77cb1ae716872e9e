"""The server's own timing of each request as its stream stated it: "where the time went" without spans.

vLLM exports a span per request (analysis/spans.py); llama-server, Ollama and SGLang export none a
row can join, but the last event of each answer states the server's own durations (SGLang's
`/generate` with its `--enable-metrics`; vLLM's chat, completions and responses routes too, with its
`--enable-per-request-metrics`, where no span collector runs), which the rows keep as
`engine_prefill_s`, `engine_decode_s`, `engine_load_s` and `engine_queue_s` (core/result.py
`EngineTiming` says whose field each is). This module turns them into the same per-row frame the span
join makes, with the stream's components (analysis/timing.py `STREAM_COMPONENTS`):

    waiting = client TTFT − load − queue − prefill          (per row; for E2E also − decode)

i.e. everything the server did not state apart — queueing for a slot (where it does not state its
queue), tokenization, network, HTTP. The parts add up to the client's latency by construction, as
the spans' do. A row "joins" when it has both a prefill and a decode duration; a missing load or
queue is 0 (llama-server states neither; Ollama omits a zero load).

It also says when a model load sat inside the measured requests (`model_load_warnings`): an Ollama
model unloaded after its keep-alive, or evicted for another model, is loaded again inside the next
request, whose TTFT is then seconds of loading, not serving.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from analysis import fmt

LOAD_NOTICE_S = 0.5  # a load this long is the model being loaded, not the scheduler handing a runner over


def frame(df: pd.DataFrame) -> pd.DataFrame | None:
    """Per row of `df` (same index): `joined` (the row states its timing), the server's prefill,
    decode and load, and `waiting_ttft_s` / `waiting_s` (the rest of its TTFT / E2E); None when no
    row states any (an older run, or a server whose stream carries no timing)."""
    if "engine_prefill_s" not in df or "engine_decode_s" not in df:
        return None
    prefill = df["engine_prefill_s"].to_numpy(dtype=float)
    decode = df["engine_decode_s"].to_numpy(dtype=float)
    has = np.isfinite(prefill) & np.isfinite(decode)
    if not has.any():
        return None
    load, queue = _stated(df, "engine_load_s", has), _stated(df, "engine_queue_s", has)
    f = pd.DataFrame(index=df.index)
    f["joined"] = has
    f["span_count"] = has.astype(np.int64)
    f["server_load_s"] = load
    f["server_queue_s"] = queue
    f["server_prefill_s"] = np.where(has, prefill, np.nan)
    f["server_decode_s"] = np.where(has, decode, np.nan)
    f["waiting_ttft_s"] = df["ttft_s"].to_numpy(dtype=float) - load - queue - prefill
    f["waiting_s"] = df["e2e_s"].to_numpy(dtype=float) - load - queue - prefill - decode
    return f


def _stated(df: pd.DataFrame, col: str, has: np.ndarray) -> np.ndarray:
    """A duration some rows may state: 0 on a joined row that does not, NaN on a row not joined."""
    v = df[col].to_numpy(dtype=float) if col in df else np.full(len(df), np.nan)
    return np.where(has, np.nan_to_num(v, nan=0.0), np.nan)


def _states(df: pd.DataFrame, col: str) -> bool:
    return col in df and bool(np.isfinite(df[col].to_numpy(dtype=float)).any())


def has_load(df: pd.DataFrame) -> bool:
    """Some row states a model-load duration (Ollama): the stream's components then include `load`."""
    return _states(df, "engine_load_s")


def has_queue(df: pd.DataFrame) -> bool:
    """Some row states the server's queue time (vLLM, SGLang): the stream's components then include
    `queue`, and the rest is `other`, not `waiting`."""
    return _states(df, "engine_queue_s")


def components(df: pd.DataFrame, f: pd.DataFrame, metric: str) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """(client latency, {component: seconds}) per row for `metric`, from `frame`'s columns (the rest
    under both its names, `waiting` and `other`: the caller takes the one its components name)."""
    if metric == "tpot":
        k = df["output_tokens"].to_numpy(dtype=float) - 1.0
        k = np.where(k > 0, k, np.nan)
        total = (df["e2e_s"].to_numpy(dtype=float) - df["ttft_s"].to_numpy(dtype=float)) / k
        waiting = (f["waiting_s"] - f["waiting_ttft_s"]).to_numpy() / k
        return total, {"waiting": waiting, "other": waiting, "decode": f["server_decode_s"].to_numpy() / k}
    ttft = metric == "ttft"
    total = df["ttft_s" if ttft else "e2e_s"].to_numpy(dtype=float)
    rest = f["waiting_ttft_s" if ttft else "waiting_s"].to_numpy()
    parts = {
        "waiting": rest,  # named `other` where the queue is stated (analysis/timing.py metric_components)
        "other": rest,
        "load": f["server_load_s"].to_numpy(),
        "queue": f["server_queue_s"].to_numpy(),
        "prefill": f["server_prefill_s"].to_numpy(),
    }
    if not ttft:
        parts["decode"] = f["server_decode_s"].to_numpy()
    return total, parts


def model_load_warnings(sel: pd.DataFrame) -> list[str]:
    """One line when measured requests waited for the model to load (a stated load ≥ LOAD_NOTICE_S)."""
    if "engine_load_s" not in sel:
        return []
    load = sel["engine_load_s"].to_numpy(dtype=float)
    long = np.isfinite(load) & (load >= LOAD_NOTICE_S)
    if not long.any():
        return []
    n, worst = int(long.sum()), float(load[long].max())
    return [
        f"{n:,} measured request{'s' if n > 1 else ''} waited for the model to load (the server's "
        f"load_duration ≥ {LOAD_NOTICE_S:g} s, the longest {fmt.duration(worst)}): their TTFT is the load, "
        "not serving. Keep the model loaded for the whole run (Ollama: keep_alive or OLLAMA_KEEP_ALIVE, "
        "one model per server or OLLAMA_MAX_LOADED_MODELS) and warm it up before measuring"
    ]
