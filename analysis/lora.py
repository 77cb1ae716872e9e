"""LoRA adapters on the server, from its /metrics: how many ran at once, and how often requests waited
for an adapter slot.

vLLM started with `--enable-lora` publishes (analysis/engines.py `Engine.lora_info`, `waiting_by_reason`):
- `vllm:lora_requests_info{max_lora, running_lora_adapters, waiting_lora_adapters}`: a gauge whose
  value is the unix time it was last set and whose labels are the state (adapter names comma-joined,
  "" for none). prometheus_client keeps every label set it ever set, so a page holds the old states
  beside the current one: at each scrape the current state is the set with the largest value.
- `vllm:num_requests_waiting_by_reason{reason="capacity"|"deferred"}`: the waiting requests that wait
  for room in the batch, and those the scheduler deferred on a transient constraint — with LoRA, a
  request whose adapter is not among the `max_loras` the step already holds. They sum to `waiting`
  (summed over engines).

Per scrape this gives the adapters running and the requests deferred; over a window (the run's, each
level's: analysis/server.py) the figures are, as for the other gauges, taken over the scrapes inside it:
- `lora_max_loras`: the server's `--max-loras` (its `max_lora` label);
- `lora_running_max`, `lora_running_max_adapters`: the most adapters running at one scrape, and which
  (at the first scrape that reached it) — on one engine: a replica set's pages label each engine's
  state (`engine`; several scraped URLs add `instance`, and two of them can both be engine "0", so an
  engine is its (instance, engine) pair), and the budget is each engine's, so the busiest engine's
  count is the figure;
- `waiting_deferred_share`: the share of scrapes with a deferred request; `waiting_deferred_max`: the
  most deferred at one scrape.
Each is None where its series was not scraped (another engine, vLLM without LoRA, an older vLLM).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from analysis.engines import Engine
from analysis.samples import Samples

KEYS = (
    "lora_max_loras",
    "lora_running_max",
    "lora_running_max_adapters",
    "waiting_deferred_share",
    "waiting_deferred_max",
)


def _adapters(text: str | None) -> tuple[str, ...]:
    """`a,b` → ("a", "b"); "" (none) → ()."""
    return tuple(x.strip() for x in (text or "").split(",") if x.strip())


def _busiest(states: list[dict[str, str]]) -> tuple[str, ...]:
    """The running adapters of the engine running the most (one engine: its own)."""
    return max((_adapters(x.get("running_lora_adapters")) for x in states), key=len)


def _max_loras(states: list[dict[str, str]]) -> float:
    """The `max_lora` label (`--max-loras`: the same on every engine of a set); NaN where it is no number."""
    values = []
    for x in states:
        try:
            values.append(float(x.get("max_lora") or "nan"))
        except ValueError:
            continue
    return max((v for v in values if not np.isnan(v)), default=np.nan)


def series(s: Samples, engine: Engine) -> tuple[dict[str, pd.Series], pd.Series | None, dict[str, str]]:
    """The per-scrape series (gauge columns `lora_running`, `lora_max`, `deferred`, indexed by scrape
    time), the running adapters' names per scrape (None without the info gauge), and their sources."""
    gauges: dict[str, pd.Series] = {}
    names = None
    sources: dict[str, str] = {}
    if name := s.first(engine.lora_info):
        latest = s.latest_labels(name, ("instance", "engine"))  # per scrape, each engine's current state
        names = latest.map(_busiest)
        gauges["lora_running"] = names.map(len).astype(float)
        gauges["lora_max"] = latest.map(_max_loras).astype(float)
        sources["lora"] = name
    if name := s.first(engine.waiting_by_reason):
        gauges["deferred"] = s.gauge_where(name, "reason", "deferred")
        sources["waiting_deferred"] = name
    return gauges, names, sources


def figures(gauges: pd.DataFrame, names: pd.Series | None, inside: np.ndarray) -> dict[str, Any]:
    """The LoRA figures over the scrapes `inside` a window (module doc); `names` on the gauges' index."""
    out: dict[str, Any] = dict.fromkeys(KEYS)
    if "lora_running" in gauges and names is not None:
        running = gauges["lora_running"].to_numpy()[inside]
        seen = np.flatnonzero(~np.isnan(running))
        if seen.size:
            i = seen[np.argmax(running[seen])]  # the first scrape at the peak
            out["lora_running_max"] = float(running[i])
            out["lora_running_max_adapters"] = list(names.to_numpy()[inside][i])
            most = gauges["lora_max"].to_numpy()[inside]
            most = most[~np.isnan(most)]
            out["lora_max_loras"] = float(most.max()) if most.size else None
    if "deferred" in gauges:
        deferred = gauges["deferred"].to_numpy()[inside]
        deferred = deferred[~np.isnan(deferred)]
        if deferred.size:
            out["waiting_deferred_share"] = float((deferred > 0).mean())
            out["waiting_deferred_max"] = float(deferred.max())
    return out
