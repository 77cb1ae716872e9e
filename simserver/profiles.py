"""Engine profiles: YAML data files in `simserver/profiles/`, loaded into frozen dataclasses.

Profiles are data, not code, so a new engine configuration is a file and a comparison between
two of them is a diff. A `--config FILE.yaml` may name a `base:` profile and override only the
keys it sets; every key is checked, so a typo fails at start-up instead of silently using a default.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

PROFILE_DIR = Path(__file__).resolve().parent / "profiles"
FAULT_KINDS = ("http_500", "http_503", "http_429", "disconnect", "bad_sse", "stall", "trickle", "empty")


class ProfileError(ValueError):
    """A profile or config file that cannot be used: one line naming the file and the key."""


@dataclass(frozen=True, slots=True)
class EngineParams:
    """Scheduler and KV-cache limits, named as vLLM names its engine arguments."""

    max_num_seqs: int = 16
    max_num_batched_tokens: int = 512
    enable_chunked_prefill: bool = True
    long_prefill_token_threshold: int = 0
    block_size: int = 16
    num_gpu_blocks: int = 512
    enable_prefix_caching: bool = True
    max_model_len: int = 8192


@dataclass(frozen=True, slots=True)
class StepTime:
    """Cost model of one forward pass (seconds).

    t = base_s + prefill_token_s·P + decode_seq_s·D + kv_token_s·K, where P is the number of prompt
    (or recomputed) tokens computed in the step, D the number of sequences decoding one token, and K
    the KV-cache tokens attention reads (each scheduled sequence's context after the step). base_s is
    the weight read every step pays; the other terms are compute (P), per-sequence sampling and
    bookkeeping (D) and memory bandwidth of attention (K).
    """

    base_s: float = 0.010
    prefill_token_s: float = 0.0001
    decode_seq_s: float = 0.0005
    kv_token_s: float = 0.0000002

    def __call__(self, prefill_tokens: int, decode_seqs: int, kv_tokens: int) -> float:
        return (
            self.base_s
            + self.prefill_token_s * prefill_tokens
            + self.decode_seq_s * decode_seqs
            + self.kv_token_s * kv_tokens
        )


@dataclass(frozen=True, slots=True)
class OutputLen:
    """Where the model would emit EOS: lognormal(median, sigma) tokens; sigma 0 means always `median`."""

    median_tokens: float = 200.0
    sigma: float = 0.6


@dataclass(frozen=True, slots=True)
class ReasoningParams:
    """Reasoning ("thinking") tokens a request generates before its answer; tokens_median 0 = none.

    They are ordinary decode tokens to the engine; only the wire format tells them apart (a delta
    field of their own). `skip_probability` is the share of requests that answer without reasoning.
    """

    tokens_median: float = 0.0
    tokens_sigma: float = 0.8
    skip_probability: float = 0.0
    delta_field: str = "reasoning"


@dataclass(frozen=True, slots=True)
class ToolCallParams:
    """How often a chat request that carries `tools` is answered with a tool call, and its size."""

    call_probability: float = 0.0
    string_words_max: int = 4


@dataclass(frozen=True, slots=True)
class SpecParams:
    """Speculative decoding (vLLM's --speculative-config): K draft tokens verified per decode step,
    each next one accepted with probability `acceptance` (simserver/specdecode.py). K 0 = off."""

    num_speculative_tokens: int = 0
    acceptance: float = 0.7


@dataclass(frozen=True, slots=True)
class FaultParams:
    """Fault probabilities (per request) and the knobs of the slow faults."""

    probabilities: dict[str, float] = field(default_factory=dict)
    stall_s: float = 30.0
    trickle_interval_s: float = 0.5
    retry_after_s: int = 1


@dataclass(frozen=True, slots=True)
class Profile:
    """One simulated engine: what it serves, how it schedules and how fast its steps are."""

    name: str = "default"
    description: str = ""
    model: str = "sim-llm"
    engine: EngineParams = field(default_factory=EngineParams)
    step_time: StepTime = field(default_factory=StepTime)
    output: OutputLen = field(default_factory=OutputLen)
    reasoning: ReasoningParams = field(default_factory=ReasoningParams)
    tool_calls: ToolCallParams = field(default_factory=ToolCallParams)
    faults: FaultParams = field(default_factory=FaultParams)
    speculative: SpecParams = field(default_factory=SpecParams)


_SECTIONS = {
    "engine": EngineParams,
    "step_time": StepTime,
    "output": OutputLen,
    "reasoning": ReasoningParams,
    "tool_calls": ToolCallParams,
    "faults": FaultParams,
    "speculative": SpecParams,
}
REASONING_FIELDS = ("reasoning", "reasoning_content")  # newer vLLM/OpenRouter/Ollama; older vLLM, DeepSeek


def available() -> list[str]:
    return sorted(p.stem for p in PROFILE_DIR.glob("*.yaml"))


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as e:
        raise ProfileError(f"{path}: cannot read ({e.strerror})") from e
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise ProfileError(f"{path}:{where} is not valid YAML ({getattr(e, 'problem', e)})") from e
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ProfileError(f"{path}: expected a mapping of profile keys at the top level")
    return data


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def _coerce(where: str, key: str, value: Any, typ: Any) -> Any:
    """Check one scalar against its dataclass type; ints are accepted where floats are expected."""
    if typ in ("bool", bool):
        if not isinstance(value, bool):
            raise ProfileError(f"{where}.{key}: expected true/false, got {value!r}")
        return value
    if typ in ("int", int):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ProfileError(f"{where}.{key}: expected an integer, got {value!r}")
        return value
    if typ in ("float", float):
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise ProfileError(f"{where}.{key}: expected a number, got {value!r}")
        return float(value)
    if typ in ("str", str):
        if not isinstance(value, str):
            raise ProfileError(f"{where}.{key}: expected a string, got {value!r}")
        return value
    return value


def _section(src: str, name: str, cls: type, data: Any) -> Any:
    if not isinstance(data, dict):
        raise ProfileError(f"{src}: '{name}' must be a mapping")
    known = {f.name: f for f in fields(cls)}
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        if key not in known:
            raise ProfileError(f"{src}: unknown key '{name}.{key}' (known: {', '.join(known)})")
        if key == "probabilities":
            kwargs[key] = parse_fault_probabilities(value, f"{src}: {name}.probabilities")
        else:
            kwargs[key] = _coerce(f"{src}: {name}", key, value, known[key].type)
    return cls(**kwargs)


def _validate(src: str, p: Profile) -> None:
    e, s, o, f = p.engine, p.step_time, p.output, p.faults
    positive = {
        "engine.max_num_seqs": e.max_num_seqs,
        "engine.max_num_batched_tokens": e.max_num_batched_tokens,
        "engine.block_size": e.block_size,
        "engine.num_gpu_blocks": e.num_gpu_blocks,
        "engine.max_model_len": e.max_model_len,
        "output.median_tokens": o.median_tokens,
        "faults.trickle_interval_s": f.trickle_interval_s,
    }
    for key, v in positive.items():
        if v <= 0:
            raise ProfileError(f"{src}: {key} must be > 0, got {v}")
    for key in ("base_s", "prefill_token_s", "decode_seq_s", "kv_token_s"):
        if getattr(s, key) < 0:
            raise ProfileError(f"{src}: step_time.{key} must be >= 0")
    if s(1, 1, 1) <= 0:
        raise ProfileError(f"{src}: step_time gives a zero step time; set base_s > 0")
    if o.sigma < 0 or e.long_prefill_token_threshold < 0 or f.stall_s < 0 or f.retry_after_s < 0:
        raise ProfileError(
            f"{src}: output.sigma, long_prefill_token_threshold, stall_s, retry_after_s must be >= 0"
        )
    _validate_answer(src, p.reasoning, p.tool_calls)
    sp = p.speculative
    if sp.num_speculative_tokens < 0 or not 0.0 < sp.acceptance <= 1.0:
        raise ProfileError(
            f"{src}: speculative.num_speculative_tokens must be >= 0 (0: off) and speculative.acceptance "
            f"in (0, 1], got {sp.num_speculative_tokens} and {sp.acceptance}"
        )
    if e.max_model_len > e.num_gpu_blocks * e.block_size:
        raise ProfileError(
            f"{src}: engine.max_model_len ({e.max_model_len}) exceeds the KV cache "
            f"({e.num_gpu_blocks} blocks x {e.block_size} = {e.num_gpu_blocks * e.block_size} tokens)"
        )
    if not e.enable_chunked_prefill and e.max_num_batched_tokens < e.max_model_len:
        raise ProfileError(
            f"{src}: without chunked prefill engine.max_num_batched_tokens must be >= max_model_len "
            "(a prompt must fit in one step)"
        )


def _validate_answer(src: str, r: ReasoningParams, t: ToolCallParams) -> None:
    if r.tokens_median < 0 or r.tokens_sigma < 0:
        raise ProfileError(f"{src}: reasoning.tokens_median and reasoning.tokens_sigma must be >= 0")
    for key, v in (("reasoning.skip_probability", r.skip_probability), ("tool_calls.call_probability", t.call_probability)):  # fmt: skip
        if not 0.0 <= v <= 1.0:
            raise ProfileError(f"{src}: {key} must be in [0, 1], got {v}")
    if r.delta_field not in REASONING_FIELDS:
        raise ProfileError(
            f"{src}: reasoning.delta_field must be one of {', '.join(REASONING_FIELDS)}, got {r.delta_field!r}"
        )
    if t.string_words_max < 1:
        raise ProfileError(f"{src}: tool_calls.string_words_max must be >= 1, got {t.string_words_max}")


def from_dict(data: dict[str, Any], src: str) -> Profile:
    """Build and validate a profile from a (merged) mapping; `src` names the file in errors."""
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        if key == "base":
            continue
        if key in _SECTIONS:
            kwargs[key] = _section(src, key, _SECTIONS[key], value)
        elif key in ("name", "description", "model"):
            kwargs[key] = _coerce(src, key, value, str)
        else:
            raise ProfileError(
                f"{src}: unknown key '{key}' (known: name, description, model, {', '.join(_SECTIONS)})"
            )
    profile = Profile(**kwargs)
    _validate(src, profile)
    return profile


def _raw(name: str, seen: tuple[str, ...] = ()) -> dict[str, Any]:
    """A named profile's mapping with its `base:` chain merged underneath."""
    path = PROFILE_DIR / f"{name}.yaml"
    if not name or "/" in name or not path.is_file():
        raise ProfileError(f"unknown profile '{name}' (available: {', '.join(available())})")
    data = _read_yaml(path)
    return _with_base(data, str(path), (*seen, name))


def _with_base(data: dict[str, Any], src: str, seen: tuple[str, ...]) -> dict[str, Any]:
    base = data.get("base")
    if base is None:
        return data
    if not isinstance(base, str):
        raise ProfileError(f"{src}: 'base' must be a profile name")
    if base in seen:
        raise ProfileError(f"{src}: profile base chain loops through '{base}'")
    return _merge(_raw(base, seen), data)


def load_profile(name: str) -> Profile:
    return from_dict({"name": name, **_raw(name)}, str(PROFILE_DIR / f"{name}.yaml"))


def load_config(path: str | Path) -> Profile:
    """A user config file: a full profile, or `base: NAME` plus the keys it changes."""
    p = Path(path)
    data = _read_yaml(p)
    merged = _with_base(data, str(p), ())
    merged.setdefault("name", p.stem)
    return from_dict(merged, str(p))


def parse_fault_probabilities(spec: Any, where: str = "--faults") -> dict[str, float]:
    """`http_500=0.01,stall=0.002` (or a YAML mapping) → {kind: p}; the sum must stay ≤ 1."""
    items: list[tuple[str, Any]]
    if isinstance(spec, dict):
        items = list(spec.items())
    elif isinstance(spec, str):
        items = []
        for part in filter(None, (x.strip() for x in spec.split(","))):
            kind, sep, value = part.partition("=")
            if not sep:
                raise ProfileError(f"{where}: '{part}' is not KIND=P (e.g. http_500=0.01)")
            items.append((kind.strip(), value.strip()))
    else:
        raise ProfileError(f"{where}: expected KIND=P,... or a mapping")
    out: dict[str, float] = {}
    for kind, value in items:
        if kind not in FAULT_KINDS:
            raise ProfileError(f"{where}: unknown fault '{kind}' (known: {', '.join(FAULT_KINDS)})")
        try:
            p = float(value)
        except (TypeError, ValueError):
            raise ProfileError(f"{where}: probability of {kind} must be a number, got {value!r}") from None
        if not 0.0 <= p <= 1.0:
            raise ProfileError(f"{where}: probability of {kind} must be in [0, 1], got {p}")
        out[kind] = p
    if sum(out.values()) > 1.0 + 1e-9:
        raise ProfileError(f"{where}: probabilities add up to {sum(out.values()):.3f} > 1")
    return out
