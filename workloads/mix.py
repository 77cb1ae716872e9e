"""Mixed tenants (`--mix`): several workloads share one run, each class with its own share and SLO.

Capacity planners ask what a server does when a chatbot, an agent and a batch job share it, each
judged by its own SLO. A mix names the classes; every request row carries its class in the
`tenant` column and is judged, live and in the analysis, against that class's SLO.

Inline form (README.md § Mixed tenants)::

    --mix "chat:70%:slo=chat,agentic:20%:slo=mlperf-interactive,random:10%:slo=datagen"

    CLASS[,CLASS...]   CLASS = DATASET:SHARE%[:slo=SLO][:name=NAME][:model=MODEL]

DATASET is any `--dataset` spec (its own `:options`, commas in parentheses included); SLO a profile
or an SLO file (without `slo=`, the run's `--slo`); NAME the class's name (default: the dataset's
name); MODEL the model (a LoRA adapter, say) the class's requests name instead of the run's. Shares are percentages that sum to 100 %. A YAML file (`--mix FILE.yaml`) holds the same,
and takes any SLO (`slo: {ttft: 300ms, tpot: 50ms}` or `slo: "ttft=300ms,tpot=50ms"`)::

    classes:
      - {dataset: chat, share: 70%, slo: chat}
      - {name: agents, dataset: agentic, share: 20%, slo: mlperf-interactive}
      - {dataset: "random:output=uniform(64,256)", share: 10%, slo: {tpot: 35ms}}

How the load is split — one rule each, here:
- **closed loop** (users): a class per *user*, in one fixed interleaved order (`user_order`): each new
  user joins the class whose share it brings closest to its weight (Locust's dispatcher's rule for
  weighted user classes, which assigns the users: each class is a Locust user class weighted by its
  share). At any user count every class is within one user of its exact share; a ramp's +1 user
  goes to the next class in the order (70/20/10: chat, chat, agentic, chat, random, chat, chat,
  agentic, chat, chat → 7/2/1 at 10 users), and a ramp down removes the newest users first.
- **open loop** (arrivals): each arrival draws its class from a seeded stream with probability = its
  share (`arrival_classes`), independent of the arrival times: the whole arrival process keeps its
  shape, and each class's arrivals are the same process thinned to its share (Poisson stays Poisson).
"""

from __future__ import annotations

import bisect
import dataclasses
import itertools
import math
import os
import random
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from core.errors import SloError
from core.slo import Slo, parse_slo
from core.yamlfile import read_yaml
from workloads.errors import WorkloadError
from workloads.spec import parse_spec, split_top

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
SHARE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*%\s*$")
INLINE = "DATASET:SHARE%[:slo=SLO][:name=NAME][:model=MODEL], e.g. chat:70%:slo=chat"
SUM_TOLERANCE = 1e-6


class MixError(WorkloadError):
    """A bad `--mix`: one line naming the class and what is expected."""


@dataclass(frozen=True)
class TenantClass:
    """One class of a mix: its name (the `tenant` column), dataset spec, share in percent and SLO, and
    the model its requests name ("": the run's, or one of `--models`)."""

    name: str
    dataset: str
    share_pct: float
    slo: Slo
    model: str = ""


@dataclass(frozen=True)
class Mix:
    """The classes of a mix in the order given (`spec`: what the user wrote, for run.json)."""

    classes: tuple[TenantClass, ...]
    spec: str

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.classes]

    @property
    def label(self) -> str:
        """`chat 70% + agentic 20% + random 10%`: the run's `dataset` in run.json and comparisons."""
        return " + ".join(f"{c.name} {c.share_pct:g}%" for c in self.classes)

    def of(self, name: str) -> TenantClass:
        for c in self.classes:
            if c.name == name:
                return c
        raise KeyError(name)

    def alone(self, name: str) -> Mix:
        """The class `name` by itself, at 100 %: the mix's class run alone (`--mix-alone`), with the
        same dataset and SLO, so its rows and figures are the class's (the interference view)."""
        c = self.of(name)
        return Mix((dataclasses.replace(c, share_pct=100.0),), f"{self.spec} (alone: {name})")

    def user_counts(self, users: int) -> dict[str, int]:
        """How many of `users` closed-loop users each class holds (the first `users` of `user_order`)."""
        counts = dict.fromkeys(self.names, 0)
        for name in itertools.islice(user_order(self), max(0, users)):
            counts[name] += 1
        return counts

    def to_dict(self) -> dict[str, Any]:
        """run.json's `mix` (the analysis reads each class's SLO back with `Slo.from_dict`)."""
        return {
            "spec": self.spec,
            "label": self.label,
            "classes": [
                {
                    "name": c.name,
                    "dataset": c.dataset,
                    "share_pct": c.share_pct,
                    "slo": {**c.slo.to_dict(), "describe": c.slo.describe()},
                    **({"model": c.model} if c.model else {}),
                }
                for c in self.classes
            ],
        }


def user_order(mix: Mix) -> Iterator[str]:
    """The class of the 1st, 2nd, 3rd … closed-loop user, endless (see module doc).

    Each class c with weight w that holds n users so far scores w·log2((w+n)/(w+n+1)) — how much one
    more user of c lowers the divergence between the counts and the weights; the lowest score takes
    the user (ties: fewer users-plus-weight, then lower weight, then the class name, as Locust's
    dispatcher breaks them: the users Locust spawns follow this very order, tests/unit/workloads/test_mix.py).
    """
    # per class: [score, w + n + 1, w, name], updated with the same float arithmetic as Locust's
    state = [[c.share_pct * math.log2(c.share_pct / (c.share_pct + 1.0)), c.share_pct + 1.0, c.share_pct, c.name]
             for c in mix.classes]  # fmt: skip
    while True:
        best = min(state)
        yield best[3]
        x = best[1]
        best[0], best[1] = best[2] * math.log2(x / (x + 1.0)), x + 1.0


def class_at(mix: Mix, index: int) -> str:
    """The class of closed-loop user number `index` (0-based) in `user_order`."""
    return next(itertools.islice(user_order(mix), index, None))


def arrival_classes(mix: Mix, seed: str, worker_index: int = 0, worker_count: int = 1) -> Iterator[str]:
    """The class of each of this process's arrivals, endless: one global seeded stream of draws
    (class with probability = share), of which this process keeps positions k ≡ worker_index
    (mod worker_count) — the same slicing as the arrival times (shapes/arrivals.py), so the union of
    the processes' draws is the single-process stream, whatever the number of workers."""
    rng = random.Random(f"goodput-mix:{seed}")
    cum = list(itertools.accumulate(c.share_pct for c in mix.classes))
    total = cum[-1]
    for k in itertools.count():
        name = mix.classes[min(bisect.bisect_right(cum, rng.random() * total), len(cum) - 1)].name
        if k % worker_count == worker_index:
            yield name


# -- parsing -------------------------------------------------------------------------------------


def parse_mix(text: str, default_slo: Slo, check_datasets: bool = True, alone: str = "") -> Mix:
    """`--mix` (inline or a YAML file) → `Mix`, or `MixError` naming the class and what is expected.

    `check_datasets` loads each class's dataset (an unknown built-in or a missing file is found here);
    `alone` keeps only that class, at 100 % (`--mix-alone`)."""
    spec = (text or "").strip()
    if not spec:
        raise MixError(f"--mix: empty; expected {INLINE}, or a YAML file")
    if spec.lower().endswith((".yaml", ".yml")) or os.path.isfile(spec):
        raw = _yaml_classes(spec)
    else:
        raw = [_inline_class(item) for item in _inline_items(spec)]
    classes = [_build(where, fields, default_slo) for where, fields in raw]
    mix = Mix(tuple(classes), spec)
    _check(mix, spec)
    if alone:
        if alone not in mix.names:
            raise MixError(
                f"--mix-alone: '{alone}' is not a class of the mix (its classes: {', '.join(mix.names)})"
            )
        mix = mix.alone(alone)
    if check_datasets:
        from workloads.registry import load_workload

        for c in mix.classes:
            if c.dataset.startswith("hf:"):
                continue  # the hub is reached only when the run opens it
            try:
                load_workload(c.dataset)
            except WorkloadError as e:
                raise MixError(f"--mix: class '{c.name}': {e}") from None
    return mix


def _inline_items(spec: str) -> list[str]:
    """Split on top-level commas; a piece without a share belongs to the next one (dataset options
    such as `random:input=uniform(64,256),output=128:10%` hold commas of their own)."""
    items: list[str] = []
    pending = ""
    for piece in split_top(spec, ","):
        pending = f"{pending},{piece}" if pending else piece
        if any(SHARE_RE.match(f) for f in pending.split(":")):
            items.append(pending)
            pending = ""
    if pending:
        raise MixError(f"--mix: '{pending}' has no share; expected {INLINE}")
    return items


def _inline_class(item: str) -> tuple[str, dict[str, Any]]:
    """`DATASET:SHARE%[:key=value...]` → (where, fields); the share is the last `NN%` field."""
    fields = item.split(":")
    at = max(i for i, f in enumerate(fields) if SHARE_RE.match(f))
    out: dict[str, Any] = {"dataset": ":".join(fields[:at]).strip(), "share": fields[at].strip()}
    where = f"--mix: class '{item}'"
    for f in fields[at + 1 :]:
        key, eq, value = f.partition("=")
        key = key.strip()
        if not eq or key not in ("slo", "name", "model"):
            raise MixError(f"{where}: '{f}' — expected slo=SLO, name=NAME or model=MODEL after the share")
        if key in out:
            raise MixError(f"{where}: '{key}' given twice")
        out[key] = value.strip()
    return where, out


def _yaml_classes(path: str) -> list[tuple[str, dict[str, Any]]]:
    doc = read_yaml(path, MixError, f"--mix: file '{path}' not found", f"--mix file '{path}'")
    items = doc.get("classes") if isinstance(doc, dict) else doc
    if isinstance(doc, dict) and set(doc) - {"classes"}:
        extra = ", ".join(sorted(map(str, set(doc) - {"classes"})))
        raise MixError(f"--mix file '{path}': unknown key(s) {extra} (expected classes)")
    if not isinstance(items, list) or not items:
        raise MixError(f"--mix file '{path}': expected a list of classes under 'classes:'")
    out = []
    for i, item in enumerate(items):
        where = f"--mix file '{path}': classes[{i}]"
        if not isinstance(item, dict):
            raise MixError(f"{where}: expected a mapping such as {{dataset: chat, share: 70%, slo: chat}}")
        unknown = set(map(str, item)) - {"name", "dataset", "share", "slo", "model"}
        if unknown:
            raise MixError(
                f"{where}: unknown key(s) {', '.join(sorted(unknown))} (expected name, dataset, share, slo, model)"
            )
        out.append((where, dict(item)))
    return out


def _build(where: str, fields: dict[str, Any], default_slo: Slo) -> TenantClass:
    dataset = str(fields.get("dataset") or "").strip()
    if not dataset:
        raise MixError(f"{where}: no dataset; expected {INLINE}")
    share = _share(fields.get("share"), where)
    name = str(fields.get("name") or _default_name(dataset)).strip()
    if not NAME_RE.match(name):
        raise MixError(f"{where}: name '{name}' — use letters, digits, . _ - only (give name=NAME)")
    model = str(fields.get("model") or "").strip()
    if "model" in fields and (not model or "," in model or any(ch.isspace() for ch in model)):
        raise MixError(f"{where}: model '{fields['model']}' — expected one model name (no commas or spaces)")
    return TenantClass(name, dataset, share, _slo(fields.get("slo"), default_slo, where), model)


def _share(value: Any, where: str) -> float:
    """`70%` (or a number of percent in YAML) → 70.0."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        pct = float(value)
    else:
        m = SHARE_RE.match(str(value if value is not None else ""))
        if not m:
            raise MixError(f"{where}: share '{value}' — expected a percentage such as 70%")
        pct = float(m.group(1))
    if not 0 < pct <= 100:
        raise MixError(f"{where}: share {pct:g}% must be more than 0 % and at most 100 %")
    return pct


def _slo(value: Any, default_slo: Slo, where: str) -> Slo:
    if value is None or value == "":
        return default_slo
    if isinstance(value, dict):  # YAML: {ttft: 300ms, tpot: 50ms, p99:tpot: 40ms}
        profile = value.get("profile")
        items = [f"{k}={v}" for k, v in value.items() if k != "profile"]
        value = ",".join(([str(profile)] if profile else []) + items)
    try:
        return parse_slo(str(value))
    except SloError as e:
        raise MixError(f"{where}: {e}") from None


def _default_name(dataset: str) -> str:
    """The dataset's name: a built-in's, a file's stem, a hub set's last part."""
    from workloads.registry import BUILTINS

    spec = parse_spec(dataset, tuple(BUILTINS))
    base = os.path.basename(spec.target.rstrip("/"))
    return base.split(".")[0] if spec.kind == "file" else base


def _check(mix: Mix, spec: str) -> None:
    names = mix.names
    for n in names:
        if names.count(n) > 1:
            raise MixError(f"--mix: two classes are named '{n}'; give one of them name=NAME")
    total = sum(c.share_pct for c in mix.classes)
    if abs(total - 100.0) > SUM_TOLERANCE:
        parts = " + ".join(f"{c.share_pct:g}" for c in mix.classes)
        raise MixError(f"--mix: shares sum to {total:g} % ({parts}); they must sum to 100 %")
