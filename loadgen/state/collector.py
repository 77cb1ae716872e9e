"""The load process's garbage collector: rare collections, and none over what lives for the whole run.

Why: a collection stops the event loop, and a pause longer than an engine step merges two tokens of
every stream whose next token arrived during it into one read; they share the later kernel stamp
(loadgen/transport/arrival.py), so a first token's TTFT grows by one step. With CPython's default
thresholds (700, 10, 10) a process at 1,024 streams ran 2–5 young collections a second (2–9 ms
each) and about one middle one (11–29 ms): each walks every in-flight request's ~28 tracked objects
(response, parser, result, record, timer, …), and none of them found any garbage, since a
request's objects are freed by reference counting when it ends (bench/README.md § One reader for
every stream). Here:
- `configure()` (every process, at init) raises the young generation's threshold to `YOUNG`
  net allocations: a collection every several seconds to minutes at that load instead of several a
  second; cyclic garbage (an exception's traceback, a closed connection's cycle) still goes, at
  most `YOUNG` objects late;
- `settle()` (when the users are spawned, and before an open-loop run's first arrival) collects
  once and freezes what exists (users, connection pools, Locust's and the workload's objects), so
  the rare full collections walk only what the run created since.
"""

from __future__ import annotations

import gc
from typing import Any

YOUNG = 50_000  # net new tracked objects between young collections (CPython's default: 700)
MIDDLE = 10  # young collections per middle one (the default)
OLD = 10  # middle collections per full one (the default; CPython also waits for 25 % growth)


def configure() -> None:
    gc.set_threshold(YOUNG, MIDDLE, OLD)


def settle() -> None:
    """Everything alive now lives for the run (or is frozen harmlessly: freed by reference counting)."""
    gc.collect()
    gc.freeze()


def install(events: Any) -> None:
    @events.init.add_listener
    def _init(environment: Any, **_: Any) -> None:
        configure()
        environment.events.spawning_complete.add_listener(lambda **_: settle())
