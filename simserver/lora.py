"""Multi-LoRA serving as vLLM v1 runs it: who may be scheduled, the GPU adapter slots, their load cost.

vLLM serves each `--lora-modules` adapter as a model of its own name beside the base model. Its
scheduler (v1/core/sched/scheduler.py) lets at most `max_loras` adapters run at once: a waiting
request whose adapter is not among those of the running requests, while they already number
`max_loras`, is skipped for this step and keeps its place in the queue; later requests (the base
model, or an adapter already running) are admitted past it. Base-model requests never need a slot.
The worker keeps the adapters' weights in `max_loras` GPU slots, an LRU cache: an adapter already in
a slot costs nothing more, one that enters a slot is loaded (its weights copied in), and a slot is
re-used only once no running request uses its adapter. The load is modelled as a fixed time added
to the step that loads it (`--lora-load-ms`).

Not modelled: any per-adapter compute cost (the LoRA matmuls add nothing to a step), the CPU tier
of adapters (`--max-cpu-loras`: every adapter is taken as already in host memory), adapters loaded
at run time (/v1/load_lora_adapter).

Only a run with adapters creates a LoraSlots; the engine's paths without one are unchanged.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

# A rank-16 adapter on every attention and MLP projection of a 7–8B model is ~40–80 MB in fp16: a few
# ms over PCIe Gen4 (~25 GB/s) from pinned host memory, plus vLLM's per-layer copy calls — about 10 ms
# from the CPU tier. Larger ranks, larger models or a load from disk cost more: raise --lora-load-ms.
DEFAULT_LOAD_MS = 10.0
# vLLM keeps one lora_requests_info series per label set ever seen; beyond this many the oldest go.
INFO_SERIES_MAX = 1024


@dataclass(frozen=True, slots=True)
class LoraConfig:
    """The adapters served (name → its `root` in /v1/models: the path given, or the name), the GPU
    slots (vLLM's `--max-loras`, default 1 as vLLM's) and the time one adapter load adds to a step."""

    modules: dict[str, str]
    max_loras: int = 1
    load_s: float = DEFAULT_LOAD_MS / 1e3


def lora_config(
    modules: list[str] | None,
    max_loras: int | None,
    load_ms: float | None,
    max_lora_rank: int | None = None,
    enable_lora: bool = False,
) -> LoraConfig | None:
    """The LoRA options (`--lora-modules`, `--max-loras`, `--lora-load-ms`; vLLM's `--max-lora-rank`
    and `--enable-lora` are accepted so its command line carries over) checked and together, or None
    when no adapter is served. ValueError names the option that is wrong."""
    if modules is None:
        given = [("--max-loras", max_loras), ("--lora-load-ms", load_ms), ("--max-lora-rank", max_lora_rank)]
        named = [o for o, v in given if v is not None] + (["--enable-lora"] if enable_lora else [])
        if named:
            raise ValueError(f"{named[0]} needs --lora-modules NAME[,NAME...] (the adapters to serve)")
        return None
    try:
        served = parse_lora_modules(modules)
    except ValueError as e:
        raise ValueError(f"--lora-modules: {e}") from None
    slots = 1 if max_loras is None else max_loras
    if slots < 1:
        raise ValueError(f"--max-loras must be at least 1, got {slots}")
    ms = DEFAULT_LOAD_MS if load_ms is None else load_ms
    if not math.isfinite(ms) or ms < 0:
        raise ValueError(f"--lora-load-ms must be a number of ms >= 0, got {load_ms}")
    if max_lora_rank is not None and max_lora_rank < 1:
        raise ValueError(f"--max-lora-rank must be at least 1, got {max_lora_rank}")
    return LoraConfig(served, slots, ms / 1e3)


def parse_lora_modules(items: list[str]) -> dict[str, str]:
    """`--lora-modules` as vLLM takes it (`NAME=PATH ...`, or JSON `{"name", "path"}`) or as a list of
    names (`a,b,c`); the path only names the adapter's root. ValueError says what is wrong."""
    modules: dict[str, str] = {}
    for item in items:
        text = item.strip()
        if text.startswith("{"):
            pairs = [_json_module(text)]
        else:
            pairs = [_name_path(part.strip()) for part in text.split(",") if part.strip()]
        for name, path in pairs:
            if name in modules:
                raise ValueError(f"adapter '{name}' is named twice")
            modules[name] = path
    if not modules:
        raise ValueError("expected NAME[,NAME...] or NAME=PATH ..., got no adapter name")
    return modules


def _name_path(part: str) -> tuple[str, str]:
    name, _, path = part.partition("=")
    name = name.strip()
    if not name or any(c.isspace() for c in name):
        raise ValueError(f"'{part}' is not NAME or NAME=PATH")
    return name, path.strip() or name


def _json_module(text: str) -> tuple[str, str]:
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(f"'{text}' is not valid JSON ({e.msg})") from None
    name = obj.get("name") if isinstance(obj, dict) else None
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"'{text}' has no \"name\"")
    path = obj.get("path")
    return name.strip(), path if isinstance(path, str) and path else name.strip()


class LoraSlots:
    """The engine's adapter state: the GPU slots (LRU), the running requests of each adapter, and what
    vLLM's `lora_requests_info` gauge shows. The engine calls `enqueue`/`dequeue` as requests wait or
    leave the queue, `admits` before admitting one, `start` when it runs, `stop` when it stops running."""

    __slots__ = ("active", "counts", "info", "load_s", "loads", "max_loras", "slots")

    def __init__(self, config: LoraConfig) -> None:
        self.max_loras, self.load_s = config.max_loras, config.load_s
        self.slots: dict[str, None] = {}  # adapters in GPU slots, least recently used first
        self.active: dict[str, int] = {}  # adapter → its running requests (only adapters with some)
        # adapter → [waiting, running] requests, in the order adapters were first asked for: the order
        # vLLM's stats dict gives them, so the order of the names in the gauge's labels
        self.counts: dict[str, list[int]] = {}
        self.loads = 0  # adapter loads into a slot so far
        self.info: dict[tuple[str, str], float] = {}  # (running, waiting) labels → last update (unix)

    def enqueue(self, name: str) -> None:
        self.counts.setdefault(name, [0, 0])[0] += 1

    def dequeue(self, name: str) -> None:
        self.counts[name][0] -= 1

    def admits(self, name: str) -> bool:
        """vLLM's max_loras rule: the adapter runs already, or fewer than max_loras adapters do."""
        return name in self.active or len(self.active) < self.max_loras

    def start(self, name: str) -> float:
        """A request of `name` leaves the queue and runs; returns the load time it adds to this step."""
        c = self.counts[name]
        c[0] -= 1
        c[1] += 1
        n = self.active.get(name, 0)
        self.active[name] = n + 1
        return 0.0 if n else self._load(name)

    def _load(self, name: str) -> float:
        slots = self.slots
        if name in slots:  # still in its slot: no copy, only the recency changes
            del slots[name]
            slots[name] = None
            return 0.0
        if len(slots) >= self.max_loras:  # the least recently used slot no running request uses
            del slots[next(a for a in slots if a not in self.active)]
        slots[name] = None
        self.loads += 1
        return self.load_s

    def stop(self, name: str) -> None:
        """A running request of `name` finished, was aborted or preempted."""
        self.counts[name][1] -= 1
        n = self.active[name] - 1
        if n:
            self.active[name] = n
            return
        del self.active[name]
        del self.slots[name]  # its slot's last use is now: the LRU order of idle slots
        self.slots[name] = None

    def deferred(self) -> int:
        """Waiting requests the adapter budget holds back now (vLLM's reason `deferred`)."""
        if len(self.active) < self.max_loras:
            return 0
        return sum(c[0] for name, c in self.counts.items() if name not in self.active)

    def stamp(self, unix: float) -> None:
        """vLLM's `lora_requests_info` after an engine step: the current label set gets the time."""
        counts = self.counts
        key = (
            ",".join([n for n, c in counts.items() if c[1]]),
            ",".join([n for n, c in counts.items() if c[0]]),
        )
        info = self.info
        info.pop(key, None)
        info[key] = unix
        if len(info) > INFO_SERIES_MAX:
            del info[next(iter(info))]
