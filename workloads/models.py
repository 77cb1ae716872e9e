"""Several models in one run (`--models`): which model — a LoRA adapter, mostly — each request names.

A server that serves many LoRA adapters beside its base model (vLLM `--enable-lora --lora-modules`,
SGLang `--lora-paths`, TGI `LORA_ADAPTERS`) batches requests for different adapters together, up
to a number of adapter slots (`--max-loras`); a request whose adapter finds no free slot waits,
however idle the server. A benchmark that sends every request to one model never sees that.

    --models a,b,c              each conversation names one of them, equally likely
    --models a:70%,b:20%,c:10%  with these shares (they sum to 100 %)

The rule, one place: a **conversation** (a session: every turn of an agent's session, or the one
request of a single-turn workload) names one model, drawn from a stable hash of the run's seed and
the session's id — an application talks to its own adapter for a whole session, and the draw does not
depend on the order requests leave in, the number of users or of worker processes. Same seed, same
dataset: the same request names the same model in every run, so runs of two servers compare like
for like.
"""

from __future__ import annotations

import bisect
import functools
import hashlib
import itertools
import re
from dataclasses import dataclass

from workloads.errors import WorkloadError

NAME_RE = re.compile(r"^[^\s,]+$")
SHARE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*%\s*$")
SUM_TOLERANCE = 1e-6
EXPECTED = "NAME[,NAME…] or NAME:SHARE%[,NAME:SHARE%…], e.g. a,b or a:70%,b:30%"


class ModelsError(WorkloadError):
    """A bad `--models`: one line saying what is expected."""


@dataclass(frozen=True)
class ModelSet:
    """The models a run's conversations name, each with its share in percent (`spec`: as written)."""

    names: tuple[str, ...]
    shares_pct: tuple[float, ...]
    spec: str

    @functools.cached_property
    def _cumulative(self) -> list[float]:
        """The shares' running sums, once (every request's draw looks its hash up in them)."""
        return list(itertools.accumulate(self.shares_pct))

    def pick(self, seed: str, session: str) -> str:
        """The model conversation `session` names: its hash's place among the cumulative shares."""
        digest = hashlib.blake2b(f"goodput-models:{seed}:{session}".encode(), digest_size=8).digest()
        u = int.from_bytes(digest, "big") / 2.0**64
        cum = self._cumulative
        return self.names[min(bisect.bisect_right(cum, u * cum[-1]), len(cum) - 1)]

    def to_dict(self) -> dict:
        """run.json's `models`."""
        return {"spec": self.spec, "models": dict(zip(self.names, self.shares_pct, strict=True))}


def parse_models(text: str) -> ModelSet | None:
    """`--models` → ModelSet (None when empty), or ModelsError naming what is wrong."""
    spec = (text or "").strip()
    if not spec:
        return None
    names: list[str] = []
    shares: list[float | None] = []
    for item in (piece.strip() for piece in spec.split(",")):
        head, _, tail = item.rpartition(":")  # a name may hold colons of its own (Ollama's `llama3:8b`)
        share = SHARE_RE.match(tail) if head else None
        name = head.strip() if share else item
        if not name or not NAME_RE.match(name):
            raise ModelsError(f"--models: '{item}' is not a model name; expected {EXPECTED}")
        if name in names:
            raise ModelsError(f"--models: '{name}' is named twice")
        names.append(name)
        shares.append(float(share.group(1)) if share else None)
    given = [s for s in shares if s is not None]
    if given and len(given) != len(shares):
        raise ModelsError(f"--models: give every model a share or none (equal shares); expected {EXPECTED}")
    if not given:
        return ModelSet(tuple(names), tuple(100.0 / len(names) for _ in names), spec)
    if any(s <= 0 for s in given):
        raise ModelsError("--models: every share must be more than 0 %")
    if abs(sum(given) - 100.0) > SUM_TOLERANCE:
        parts = " + ".join(f"{s:g}" for s in given)
        raise ModelsError(f"--models: shares sum to {sum(given):g} % ({parts}); they must sum to 100 %")
    return ModelSet(tuple(names), tuple(given), spec)
