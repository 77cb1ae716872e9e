"""Words for "where the time went": each component's label, what a miss put on it "was", and the
sentences naming the component that took the misses — shared by the section (render/spans.py), the
report's answer line (render/tables.py) and the console, and kept free of plotting so the answer
line can use them.
"""

from __future__ import annotations

from analysis.timing import Misses, ServerTiming, TimingStep

LABELS = {
    "client": "client (network, HTTP/API)",
    "engine_other": "engine other",
    "queue": "queue",
    "prefill": "prefill",
    "decode": "decode",
    "waiting": "waiting (queue, tokenization, network, HTTP)",
    "other": "other (tokenization, network, HTTP)",
    "load": "model load",
}
WERE = {
    "client": "outside the engine (network, HTTP/API)",
    "engine_other": "the engine's other time",
    "queue": "queueing",
    "prefill": "prefill",
    "decode": "decode",
    "waiting": "waiting (queue, tokenization, network)",
    "other": "outside the server's queue and compute (tokenization, network, HTTP)",
    "load": "the model's load",
}


def short(c: str) -> str:
    """A component's name without its explanation (`client`, `waiting`), for running text."""
    return LABELS[c].split(" (")[0]


def queue_in_prefill(t: ServerTiming) -> bool:
    """The prefill figures hold the wait for a slot: the server's own timing from the one server that
    states a model load, Ollama, whose runner starts its prompt clock before it waits for a slot."""
    return t.source == "stream" and "load" in t.components


def label(t: ServerTiming, c: str) -> str:
    """A component's column label in this timing (Ollama's prefill says it holds the slot wait)."""
    return "prefill (with the slot wait)" if c == "prefill" and queue_in_prefill(t) else LABELS[c]


def were(t: ServerTiming, c: str) -> str:
    """What the misses put on a component were, in this timing."""
    return "prefill, its wait for a slot included" if c == "prefill" and queue_in_prefill(t) else WERE[c]


def _worst(misses: list[Misses]) -> Misses | None:
    """The metric with the most misses that were put on a component (the first of a tie)."""
    best = None
    for m in misses:
        if m.top is not None and (best is None or m.missed > best.missed):
            best = m
    return best


def _share(m: Misses) -> str:
    return f"{m.top_share:.0%} of the {m.metric.upper()} misses"


def headline(t: ServerTiming) -> str:
    """The one sentence a reader wants: the worst step's misses and what they were."""
    worst: tuple[TimingStep, Misses] | None = None
    for s in t.steps:
        m = _worst(s.misses)
        if m is not None and (worst is None or m.missed > worst[1].missed):
            worst = (s, m)
    if worst is None:
        return ""
    s, m = worst
    return f"{_share(m)} at {s.label} were {were(t, m.top)} ({m.by_component[m.top]:,} of {m.missed:,})."


def breaks_because(t: ServerTiming | None, load: float | None, named: bool = False) -> str | None:
    """What the misses were at the level where the SLO breaks (`there, 90% of the TTFT misses were
    queueing`; `named`: `at 16 users, …`), for the report's answer line; None without timing there
    or without misses put on a part."""
    if t is None or load is None:
        return None
    step = next((s for s in t.steps if s.load == load), None)
    m = _worst(step.misses) if step is not None else None
    if step is None or m is None:
        return None
    return f"{'at ' + step.label if named else 'there'}, {_share(m)} were {were(t, m.top)}"
