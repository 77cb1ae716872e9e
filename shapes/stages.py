"""`--shape stages`: an explicit list of labelled stages, closed loop (users) or open loop (rate).

From the command line, comma-separated items of colon-separated fields; the first field is the
duration, then users and spawn rate positionally, or `key=value` fields:

    --stages "60s:10:2,120s:50:5"                    # closed loop: 10 users (+2/s), then 50 (+5/s)
    --stages "30s:rate=2,60s:rate=8:warmup=10s:label=peak,30s:rate=0"   # open loop; rate=0 pauses

keys: users, spawn_rate (or spawn), rate, max_concurrency, warmup, cooldown, label.

From a YAML file: a list of such mappings, or a mapping with `stages:` plus defaults for every
stage (`warmup`, `cooldown`, `max_concurrency`):

    warmup: 10%
    stages:
      - {duration: 60s, users: 10, spawn_rate: 2, label: light}
      - {duration: 120s, rate: 5, warmup: 10s}
"""

from __future__ import annotations

import bisect
import os
from dataclasses import dataclass
from typing import Any

from core.durations import parse_duration_s
from core.errors import OptionError
from core.stage import users_label
from shapes.base import Level, Schedule
from shapes.options import parse_portion, parse_rate, resolve_portion

KEYS = ("duration", "users", "spawn_rate", "spawn", "rate", "max_concurrency", "warmup", "cooldown", "label")


@dataclass(frozen=True, slots=True)
class StagesSchedule(Schedule):
    levels: tuple[Level, ...]
    durations: tuple[float, ...]
    source: str = ""

    @property
    def open_loop(self) -> bool:  # type: ignore[override]
        return any(lv.rate_rps is not None for lv in self.levels)

    def starts(self) -> list[float]:
        out, t = [], 0.0
        for d in self.durations:
            out.append(t)
            t += d
        return out

    def level_at(self, run_time_s: float) -> Level | None:
        starts = self.starts()
        if run_time_s >= starts[-1] + self.durations[-1]:
            return None
        return self.levels[bisect.bisect_right(starts, run_time_s) - 1]

    def describe(self) -> dict:
        return {
            "source": self.source,
            "stages": [
                {
                    "step": lv.step,
                    "label": lv.label,
                    "duration_s": d,
                    "users": lv.users,
                    "spawn_rate": lv.spawn_rate,
                    "rate_rps": lv.rate_rps,
                    "warmup_s": lv.warmup_s,
                    "cooldown_s": lv.cooldown_s,
                }
                for lv, d in zip(self.levels, self.durations, strict=True)
            ],
        }


def build_stages(opts: Any) -> StagesSchedule:
    spec = str(opts.stages or "").strip()
    if not spec:
        raise OptionError(
            "--stages: required with --shape stages (a YAML file or e.g. '60s:10:2,120s:rate=5')"
        )
    defaults = {
        "warmup": opts.warmup,
        "cooldown": opts.cooldown,
        "max_concurrency": opts.max_concurrency,
    }
    if spec.endswith((".yaml", ".yml")) or os.path.isfile(spec):
        items = _yaml_items(spec, defaults)
        source = spec
    else:
        items = [
            (f"--stages: item {i + 1} '{text}'", _cli_item(text, i)) for i, text in enumerate(spec.split(","))
        ]
        source = "cli"
    levels, durations = [], []
    for step, (where, raw) in enumerate(items):
        level, duration = _level(step, {**defaults, **raw}, where)
        levels.append(level)
        durations.append(duration)
    return StagesSchedule(levels=tuple(levels), durations=tuple(durations), source=source)


def _cli_item(text: str, index: int) -> dict:
    where = f"--stages: item {index + 1} '{text.strip()}'"
    fields = [f.strip() for f in text.split(":")]
    if not fields[0]:
        raise OptionError(f"{where}: empty stage (expected DURATION:USERS[:SPAWN_RATE] or DURATION:rate=R)")
    out: dict = {"duration": fields[0]}
    positional = ("users", "spawn_rate")
    n_pos = 0
    for f in fields[1:]:
        if "=" in f:
            key, _, value = f.partition("=")
            key = key.strip().replace("-", "_")
            if key not in KEYS or key == "duration":
                raise OptionError(f"{where}: unknown field '{key}' (expected one of {', '.join(KEYS[1:])})")
            out[key] = value.strip()
        elif n_pos < len(positional):
            out[positional[n_pos]] = f
            n_pos += 1
        else:
            raise OptionError(f"{where}: too many fields (expected DURATION:USERS[:SPAWN_RATE])")
    return out


def _yaml_items(path: str, defaults: dict) -> list[tuple[str, dict]]:
    import yaml

    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    except OSError as e:
        raise OptionError(f"--stages: cannot read '{path}' ({e.strerror or e})") from None
    try:
        node = yaml.compose(text)
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        raise OptionError(f"{path}{line}: invalid YAML ({getattr(e, 'problem', None) or e})") from None
    seq_node = node
    if isinstance(data, dict):
        unknown = set(data) - {"stages", "warmup", "cooldown", "max_concurrency"}
        if unknown:
            raise OptionError(f"{path}: unknown key(s) {', '.join(sorted(map(str, unknown)))}")
        defaults.update({k: v for k, v in data.items() if k != "stages"})
        seq_node = next((v for k, v in node.value if k.value == "stages"), None)
        data = data.get("stages")
    if not isinstance(data, list) or not data:
        raise OptionError(f"{path}: expected a list of stages (or a mapping with a 'stages' list)")
    lines = [item.start_mark.line + 1 for item in seq_node.value] if seq_node is not None else []
    out = []
    for i, item in enumerate(data):
        where = f"{path}:{lines[i] if i < len(lines) else '?'}: stage {i + 1}"
        if not isinstance(item, dict):
            raise OptionError(f"{where}: expected a mapping like {{duration: 60s, users: 10}}")
        unknown = set(map(str, item)) - set(KEYS)
        if unknown:
            raise OptionError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
        out.append((where, dict(item)))
    return out


def _level(step: int, raw: dict, where: str) -> tuple[Level, float]:
    try:
        duration = parse_duration_s(raw.get("duration", ""), "duration")
    except OptionError:
        raise OptionError(
            f"{where}: duration '{raw.get('duration', '')}' is not a duration (e.g. 60s, 2m)"
        ) from None
    if duration <= 0:
        raise OptionError(f"{where}: duration must be positive")
    spawn = raw.get("spawn_rate", raw.get("spawn"))
    has_users, has_rate = raw.get("users") not in (None, ""), raw.get("rate") not in (None, "")
    if has_users == has_rate:
        raise OptionError(f"{where}: give either users (closed loop) or rate=R (open loop)")
    try:
        warmup = resolve_portion(parse_portion(raw["warmup"], "warmup"), duration, "warmup")
        cooldown = resolve_portion(parse_portion(raw["cooldown"], "cooldown"), duration, "cooldown")
    except OptionError as e:
        raise OptionError(f"{where}: {e}") from None
    if warmup + cooldown >= duration:
        raise OptionError(
            f"{where}: warm-up + cool-down ({warmup + cooldown:g}s) leave nothing of {duration:g}s"
        )
    if has_users:
        users = _int(raw["users"], where, "users")
        spawn_rate = _float(spawn, where, "spawn_rate") if spawn not in (None, "") else float(max(1, users))
        label = str(raw.get("label") or users_label(users))
        return Level(step, users, spawn_rate, label, None, warmup, cooldown), duration
    rate_text = str(raw["rate"]).strip()
    try:
        rate = 0.0 if rate_text in ("0", "0.0") else parse_rate(rate_text, "rate")
    except OptionError as e:
        raise OptionError(f"{where}: {e}") from None
    cap = _int(raw.get("max_concurrency", 0) or 0, where, "max_concurrency")
    label = str(raw.get("label") or (f"{rate:g} req/s" if rate else "pause"))
    return Level(step, cap, 1.0, label, rate, warmup, cooldown), duration


def _int(value: Any, where: str, name: str) -> int:
    try:
        n = int(str(value).strip())
    except ValueError:
        raise OptionError(f"{where}: {name} '{value}' is not a whole number") from None
    if n < 0:
        raise OptionError(f"{where}: {name} must not be negative")
    return n


def _float(value: Any, where: str, name: str) -> float:
    try:
        x = float(str(value).strip())
    except ValueError:
        raise OptionError(f"{where}: {name} '{value}' is not a number") from None
    if not x > 0:
        raise OptionError(f"{where}: {name} must be positive")
    return x
