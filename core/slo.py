"""SLOs: the contract's profiles, a YAML file, or `ttft=500ms,tpot=50ms,e2e=20s` → one `Slo`.

Part of the contract (core/): the Locust load path counts good requests live with this object
and the analysis uses the very same one, so the live view and the report cannot disagree about
what a good request is. The only import beyond the standard library is PyYAML, lazily, for SLO files.

Semantics (documented in README.md § Analysis, the one place users read them):
- A request is *good* when it completed (`ok`) and meets every per-request limit: TTFT ≤ limit,
  TTFO ≤ limit, TPOT ≤ limit, E2E ≤ limit (inclusive, as vLLM's `--goodput`).
- A missing TTFT, TTFO or E2E fails its check (nothing — or no answer — was delivered in time). A missing TPOT (≤ 1
  output token, where TPOT is undefined) *passes*: vLLM's benchmark counts it as 0 for goodput,
  and a one-token answer has no inter-token pace to violate.
- Percentile checks (`p99:tpot=250ms`) are run-level pass/fail, not per request.
- The verdict for a profile: attainment ≥ `attain_target` (default 90 %) and every percentile check passes.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field, replace
from typing import Any

from core.durations import UNIT_S, fmt_duration, parse_duration_s
from core.errors import SloError
from core.yamlfile import read_yaml

ATTAIN_TARGET = 0.9
METRICS = ("ttft", "ttfo", "tpot", "e2e")  # per-request limits
PCT_METRICS = ("ttft", "ttfo", "tpot", "itl", "e2e")  # percentile checks may also use ITL
_PCT_KEY = re.compile(r"^p(\d+(?:\.\d+)?):(\w+)$")


@dataclass(frozen=True, slots=True)
class PercentileCheck:
    """`p<q> of <metric> ≤ limit_s`, checked over the run (or a step), e.g. MLPerf's p99 TPOT."""

    metric: str
    q: float
    limit_s: float

    @property
    def label(self) -> str:
        return f"p{_num(self.q)} {self.metric.upper()} ≤ {fmt_duration(self.limit_s)}"

    def to_dict(self) -> dict:
        return {"metric": self.metric, "p": self.q, "limit_s": self.limit_s}


@dataclass(frozen=True, slots=True)
class Slo:
    """Per-request limits in seconds (None: not checked), percentile checks and the attainment target."""

    name: str = "custom"
    ttft_s: float | None = None
    tpot_s: float | None = None
    e2e_s: float | None = None
    percentiles: tuple[PercentileCheck, ...] = field(default_factory=tuple)
    attain_target: float = ATTAIN_TARGET
    ttfo_s: float | None = None  # time to the first *answer* token (reasoning excluded: core/measure.py)

    def is_good(
        self, ttft_s: float | None, tpot_s: float | None, e2e_s: float | None, ttfo_s: float | None = None
    ) -> bool:
        """Latency part of "good" for one *completed* request (the caller checks `ok`)."""
        if self.ttft_s is not None and (ttft_s is None or ttft_s > self.ttft_s):
            return False
        if self.ttfo_s is not None and (ttfo_s is None or ttfo_s > self.ttfo_s):
            return False
        if self.tpot_s is not None and tpot_s is not None and tpot_s > self.tpot_s:
            return False
        return not (self.e2e_s is not None and (e2e_s is None or e2e_s > self.e2e_s))

    def describe(self) -> str:
        """`TTFT ≤ 500 ms, TPOT ≤ 250 ms; p99 TPOT ≤ 200 ms; target 90 %` — for tables and the console."""
        parts = [f"{m.upper()} ≤ {fmt_duration(v)}" for m, v in self.limits().items()]
        text = ", ".join(parts) or "no per-request limit"
        if self.percentiles:
            text += "; " + ", ".join(c.label for c in self.percentiles)
        return f"{text}; target {_num(self.attain_target * 100)} %"

    def limits(self) -> dict[str, float]:
        """The per-request limits that are set, by metric name."""
        out = {"ttft": self.ttft_s, "ttfo": self.ttfo_s, "tpot": self.tpot_s, "e2e": self.e2e_s}
        return {k: v for k, v in out.items() if v is not None}

    def to_dict(self) -> dict:
        """run.json / summary.json form; `from_dict` reads it back."""
        return {
            "profile": self.name,
            "ttft_s": self.ttft_s,
            "tpot_s": self.tpot_s,
            "e2e_s": self.e2e_s,
            "percentiles": [c.to_dict() for c in self.percentiles],
            "attain_target": self.attain_target,
            "ttfo_s": self.ttfo_s,
        }

    @classmethod
    def from_dict(cls, d: dict) -> Slo:
        """Tolerant of missing keys (older run.json); a known profile name with no limits → that profile."""
        if not isinstance(d, dict):
            raise SloError(f"SLO: expected an object, got {type(d).__name__}")
        name = str(d.get("profile") or d.get("name") or "custom")
        no_limits = all(d.get(k) is None for k in ("ttft_s", "ttfo_s", "tpot_s", "e2e_s")) and not d.get(
            "percentiles"
        )
        if no_limits and name in PROFILES:
            return PROFILES[name]
        checks = tuple(
            PercentileCheck(str(c["metric"]), float(c["p"]), float(c["limit_s"]))
            for c in d.get("percentiles") or ()
        )
        target = d.get("attain_target")
        return cls(
            name=name,
            ttft_s=_opt_float(d.get("ttft_s")),
            tpot_s=_opt_float(d.get("tpot_s")),
            e2e_s=_opt_float(d.get("e2e_s")),
            percentiles=checks,
            attain_target=ATTAIN_TARGET if target is None else float(target),
            ttfo_s=_opt_float(d.get("ttfo_s")),
        )


def _mlperf(name: str, ttft: float, tpot: float) -> Slo:
    checks = (PercentileCheck("ttft", 99.0, ttft), PercentileCheck("tpot", 99.0, tpot))
    return Slo(name, ttft_s=ttft, tpot_s=tpot, percentiles=checks)


# README.md § SLOs (the profiles table). MLPerf states its limits as p99s: they are both per-request limits
# (goodput, attainment) and run-level p99 checks (the MLPerf pass/fail).
PROFILES: dict[str, Slo] = {
    "chat": Slo("chat", ttft_s=0.5, tpot_s=0.25),
    "summarization": Slo("summarization", ttft_s=10.0, tpot_s=0.25),
    "datagen": Slo("datagen", tpot_s=0.035),
    "mlperf-llama2-70b": _mlperf("mlperf-llama2-70b", 2.0, 0.2),
    "mlperf-interactive": _mlperf("mlperf-interactive", 0.45, 0.04),
    # A reasoning model: MLPerf Inference's DeepSeek-R1 Server scenario (mlcommons/inference
    # loadgen/mlperf.conf: deepseek-r1.Server.ttft_latency = 2000, tpot_latency = 80, p99). MLPerf's
    # TTFT counts the first token of any kind, reasoning included, as core/measure.py's TTFT does; it
    # sets no limit on the first *answer* token, so neither does this profile (add `ttfo=` for one).
    "reasoning": _mlperf("reasoning", 2.0, 0.08),
}


def parse_slo(spec: str) -> Slo:
    """A profile name, a YAML file path, or `[profile,]ttft=500ms,ttfo=2s,tpot=50ms,e2e=20s[,p99:tpot=250ms][,attain=95%]`."""
    if not isinstance(spec, str) or not spec.strip():
        raise SloError(
            "SLO: empty; give a profile (" + ", ".join(PROFILES) + ") or e.g. ttft=500ms,tpot=50ms"
        )
    spec = spec.strip()
    if spec in PROFILES:
        return PROFILES[spec]
    if spec.lower().endswith((".yaml", ".yml")) or os.path.isfile(spec):
        return _parse_file(spec)
    base: Slo | None = None
    items: list[tuple[str, str]] = []
    for raw in spec.split(","):
        part = raw.strip()
        if not part:
            raise SloError(f"SLO '{spec}': empty part between commas")
        if "=" not in part:
            if part not in PROFILES:
                raise SloError(f"SLO '{spec}': unknown profile '{part}' (known: {', '.join(PROFILES)})")
            if base is not None or items:
                raise SloError(f"SLO '{spec}': the profile name '{part}' must come first, once")
            base = PROFILES[part]
            continue
        key, _, value = part.partition("=")
        items.append((key.strip(), value.strip()))
    return _build(items, base, where=f"SLO '{spec}'", name=spec)


def _build(items: list[tuple[str, Any]], base: Slo | None, where: str, name: str) -> Slo:
    """Apply `key=value` items on top of `base` (or nothing); every bad item names itself."""
    limits: dict[str, float | None] = dict.fromkeys(METRICS)
    checks: dict[tuple[str, float], PercentileCheck] = {}
    target = ATTAIN_TARGET
    if base is not None:
        limits.update({"ttft": base.ttft_s, "ttfo": base.ttfo_s, "tpot": base.tpot_s, "e2e": base.e2e_s})
        checks = {(c.metric, c.q): c for c in base.percentiles}
        target = base.attain_target
    seen: set[str] = set()
    for key, value in items:
        k = key.lower()
        if k in seen:
            raise SloError(f"{where}: '{key}' given twice")
        seen.add(k)
        if k in ("attain", "attain_target", "target"):
            target = _fraction(value, f"{where}: {key}")
        elif k in METRICS:
            limits[k] = _seconds(value, f"{where}: {key}")
        elif k.endswith(("_s", "_ms")) and k.rsplit("_", 1)[0] in METRICS:
            metric, unit = k.rsplit("_", 1)
            limits[metric] = _number(value, f"{where}: {key}") * UNIT_S[unit]
        elif m := _PCT_KEY.match(k):
            q, metric = float(m.group(1)), m.group(2)
            if metric not in PCT_METRICS or not 0 < q <= 100:
                raise SloError(
                    f"{where}: '{key}' — expected p<1-100>:<{'|'.join(PCT_METRICS)}>, e.g. p99:tpot"
                )
            checks[(metric, q)] = PercentileCheck(metric, q, _seconds(value, f"{where}: {key}"))
        elif k == "itl":
            raise SloError(
                f"{where}: 'itl' has no per-request limit; use a percentile check such as p99:itl=100ms"
            )
        else:
            raise SloError(
                f"{where}: unknown key '{key}' (known: ttft, ttfo, tpot, e2e, pNN:<metric>, attain)"
            )
    return Slo(
        name=name,
        ttft_s=limits["ttft"],
        tpot_s=limits["tpot"],
        e2e_s=limits["e2e"],
        percentiles=tuple(checks.values()),
        attain_target=target,
        ttfo_s=limits["ttfo"],
    )


def _parse_file(path: str) -> Slo:
    """YAML: `{name?, profile?, ttft: 500ms, tpot_ms: 50, e2e: 20s, attain: 90%, percentiles: {p99:tpot: 250ms}}`."""
    doc = read_yaml(path, SloError, f"SLO file '{path}' not found", f"SLO file '{path}'")
    if not isinstance(doc, dict):
        raise SloError(
            f"SLO file '{path}': expected a mapping such as 'ttft: 500ms', got {type(doc).__name__}"
        )
    doc = dict(doc)
    name = str(doc.pop("name", "") or os.path.splitext(os.path.basename(path))[0])
    base = None
    if (profile := doc.pop("profile", None)) is not None:
        if profile not in PROFILES:
            raise SloError(f"SLO file '{path}': unknown profile '{profile}' (known: {', '.join(PROFILES)})")
        base = PROFILES[profile]
    items: list[tuple[str, Any]] = []
    pcts = doc.pop("percentiles", None) or {}
    if not isinstance(pcts, dict):
        raise SloError(f"SLO file '{path}': 'percentiles' must be a mapping such as 'p99:tpot: 250ms'")
    for key, value in pcts.items():
        if isinstance(value, dict):  # nested form {p99: {tpot: 250ms}}
            items.extend((f"{key}:{metric}", v) for metric, v in value.items())
        else:
            items.append((str(key), value))
    items.extend((str(k), v) for k, v in doc.items())
    return _build(items, base, where=f"SLO file '{path}'", name=name)


def _seconds(value: Any, where: str) -> float:
    return parse_duration_s(str(value).strip(), where, require_unit=True, error=SloError)


def _number(value: Any, where: str) -> float:
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise SloError(f"{where}: '{value}' is not a number") from None
    if out < 0 or out != out:
        raise SloError(f"{where}: '{value}' must be ≥ 0")
    return out


def _fraction(value: Any, where: str) -> float:
    text = str(value).strip()
    try:
        out = float(text[:-1]) / 100 if text.endswith("%") else float(text)
    except ValueError:
        raise SloError(f"{where}: '{text}' is not a fraction (expected e.g. 90% or 0.9)") from None
    if not 0 < out <= 1:
        raise SloError(f"{where}: '{text}' must be in (0, 100 %]")
    return out


def _opt_float(v: Any) -> float | None:
    return None if v is None else float(v)


def _num(x: float) -> str:
    """`99`, `99.9`: no trailing `.0`."""
    return f"{x:g}"


def with_target(slo: Slo, target: float | None) -> Slo:
    """The same SLO with another attainment target (the CLI's `--attain-target`)."""
    return slo if target is None else replace(slo, attain_target=target)
