"""Mixed tenants in a matrix: a dataset entry that is a mix, and the interference cells it can add.

    datasets:
      - agentic
      - {mix: "chat:70%:slo=chat,agentic:20%:slo=mlperf-interactive,random:10%:slo=datagen",
         label: office, interference: true}

A mix entry runs as one dataset (its `label`) with `--mix`; with `interference: true` the matrix also
runs, for every mix cell, one cell per class alone (`--mix-alone CLASS`: its dataset and SLO at 100 %)
at the class's share of the mix's load, so the report can say what sharing costs each class:
- `rate` R → the class's share of R (each arrival of the mix drew its class with that probability);
- `users` N → the users the class held in the mix at N users (workloads/mix.py `user_counts`: the
  same users, not a rounded share); a class that held none at N gets no alone cell;
- a step ramp (`shape: step`, `step_users`, `step_interval`, `max_users`) → `--shape stages` with one
  stage per step of the same length, each at the users the class held at that step of the mix's ramp
  (0 while it held none; consecutive equal steps merge);
- `max_concurrency` C → its share of C, rounded up (at least 1).
A shape whose load is set otherwise (stages, a sweep, a trace, load flags in `args`) has no share to
run alone: such a shape with `interference: true` is refused with one line.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, replace
from typing import Any

from arena.places import Ctx, LineDict, MatrixError, flags, parse_duration
from workloads.mix import Mix

KEYS = ("mix", "label", "interference")
# Shape keys whose load an alone cell cannot take a share of; a step ramp's keys.
NOT_SHARED = (
    "stages",
    "sweep_stages",
    "sweep_stage_duration",
    "sweep_concurrency",
    "trace_file",
    "time_scale",
)
RAMP = ("step_users", "step_interval", "max_users")
RUN_FLAGS = ("-u", "--users", "-r", "--spawn-rate", "--rate", "--max-concurrency", "--shape", "--stages")


@dataclass(frozen=True)
class MixEntry:
    """A dataset entry that is a mix: its label (the dataset's name in cells and tables), the `--mix`
    value, the parsed mix and whether alone cells are added."""

    label: str
    spec: str
    mix: Mix
    interference: bool

    @property
    def classes(self) -> list[tuple[str, float]]:
        """(name, share in percent) of each class."""
        return [(c.name, c.share_pct) for c in self.mix.classes]


def entry(ctx: Ctx, node: dict, where: str, default_slo: str) -> MixEntry:
    """A `{mix: SPEC, label: NAME, interference: bool}` item of `datasets` (the mix is checked here)."""
    from core.slo import parse_slo
    from workloads.mix import MixError, parse_mix

    ctx.keys(node, KEYS, where)
    spec = node.get("mix")
    if not isinstance(spec, str) or not spec.strip():
        raise MatrixError(f"{ctx.at(node, 'mix', where + '.mix')}: expected a --mix value or a mix YAML file")
    label = node.get("label")
    if not isinstance(label, str) or not label:
        raise MatrixError(
            f"{ctx.at(node, None, where)}: a mix needs a label (its dataset name in the tables)"
        )
    alone = node.get("interference", False)
    if not isinstance(alone, bool):
        raise MatrixError(f"{ctx.at(node, 'interference', where + '.interference')}: expected true/false")
    try:
        mix = parse_mix(spec, parse_slo(default_slo))
    except MixError as e:
        raise MatrixError(f"{ctx.at(node, 'mix', where + '.mix')}: {e}") from None
    return MixEntry(label, spec, mix, alone)


def alone_shape(ctx: Ctx, shape: Any, m: MixEntry, name: str, table: dict[str, str]) -> Any | None:
    """The shape of the class `name` alone at its share of `shape`'s load (module doc); None when the
    class held no user at that load (nothing to compare); MatrixError when the load has no share.
    `table`: the shape keys' flags (arena/matrix.py SHAPE_FLAGS)."""
    params = dict(shape.params)
    where = f"{ctx.path}: shapes '{shape.label}' with mix '{m.label}' (interference: true)"
    ramp = params.get("shape") == "step" or any(k in params for k in RAMP)
    bad = [k for k in NOT_SHARED if k in params]
    if params.get("shape") not in (None, "none", "step"):
        bad.append(f"shape {params['shape']}")
    if bad or not (ramp or "users" in params or "rate" in params):
        why = f"its {', '.join(bad)}" if bad else "no users, rate or step ramp"
        raise MatrixError(f"{where}: {why} — an alone cell takes its share of users, a rate or a step ramp")
    extra = flags(ctx, {"args": params["args"]}, {}, "args") if "args" in params else []
    if set(extra) & set(RUN_FLAGS):
        raise MatrixError(f"{where}: args set the load ({' '.join(extra)}); give it as users, rate or a ramp")
    share = dict(m.classes)[name] / 100.0
    scaled = dict(params)
    if ramp:
        stages = _ramp_stages(ctx, shape, params, m, name)
        if stages is None:
            return None
        scaled = {k: v for k, v in params.items() if k not in (*RAMP, "shape", "users", "spawn_rate")}
        scaled.update(shape="stages", stages=stages)
    if "rate" in params:
        scaled["rate"] = f"{float(params['rate']) * share:.6g}"
    if "users" in params and not ramp:
        users = m.mix.user_counts(int(params["users"]))[name]
        if users == 0:
            return None
        scaled["users"] = users
    if "max_concurrency" in params and int(params["max_concurrency"]):
        scaled["max_concurrency"] = max(1, math.ceil(int(params["max_concurrency"]) * share))
    args = [*flags(ctx, LineDict(scaled), table, shape.label), "-t", f"{shape.duration_s:g}s"]
    return replace(shape, args=tuple(args), params=tuple(scaled.items()))


def _ramp_stages(ctx: Ctx, shape: Any, params: dict, m: MixEntry, name: str) -> str | None:
    """`--stages` of a step ramp's class alone: the mix's steps (shapes/step.py: +step_users every
    step_interval up to max_users, for the shape's duration), each at the users the class held there
    (spawned within the stage's first tenth of a second, as the ramp spawns a step's users); None
    when the class held no user at any step."""
    step = int(params.get("step_users") or 1)
    interval = parse_duration(
        params.get("step_interval") or "10s", f"{ctx.path}: {shape.label}.step_interval"
    )
    cap = int(params.get("max_users") or 0)
    stages: list[list] = []  # [seconds, the mix's users, the class's users]
    t = 0.0
    for k in itertools.count():
        if t >= shape.duration_s - 1e-9:
            break
        total = min(step * (k + 1), cap) if cap else step * (k + 1)
        length = min(interval, shape.duration_s - t)
        if stages and stages[-1][1] == total:
            stages[-1][0] += length
        else:
            stages.append([length, total, m.mix.user_counts(total)[name]])
        t += length
    if not any(users for _, _, users in stages):
        return None
    return ",".join(f"{d:g}s:{users}:{max(10, users * 10)}" for d, _, users in stages)
