"""Profiles and fault specs: every built-in loads, every mistake is one clear error."""

from __future__ import annotations

from pathlib import Path

import pytest

from simserver.faults import FaultPicker
from simserver.profiles import (
    FAULT_KINDS,
    ProfileError,
    available,
    load_config,
    load_profile,
    parse_fault_probabilities,
)


def test_builtin_profiles_load_and_contrast() -> None:
    assert {"default", "latency", "throughput", "capacity"} <= set(available())
    for name in available():
        p = load_profile(name)
        assert (
            p.name == name
            and p.description
            and p.engine.max_model_len <= p.engine.num_gpu_blocks * p.engine.block_size
        )
    lat, thr = load_profile("latency"), load_profile("throughput")
    assert lat.engine.enable_prefix_caching and not thr.engine.enable_prefix_caching
    assert lat.engine.max_num_seqs < thr.engine.max_num_seqs
    assert lat.step_time(0, 1, 500) < thr.step_time(0, 1, 500)  # faster alone…
    assert lat.step_time(0, 32, 16000) > thr.step_time(0, 32, 16000)  # …slower per sequence in a big batch


def test_config_inherits_from_base_and_overrides_some_keys(tmp_path: Path) -> None:
    cfg = tmp_path / "mine.yaml"
    cfg.write_text("base: latency\nengine: {max_num_seqs: 3}\nfaults: {probabilities: {http_500: 0.25}}\n")
    p = load_config(cfg)
    base = load_profile("latency")
    assert p.name == "mine" and p.engine.max_num_seqs == 3
    assert p.engine.num_gpu_blocks == base.engine.num_gpu_blocks and p.step_time == base.step_time
    assert p.faults.probabilities == {"http_500": 0.25}


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("engine: [1, 2\n", "valid YAML"),
        ("- a list\n", "mapping"),
        ("base: default\nengine: {max_num_seqs: 0}\n", "max_num_seqs must be > 0"),
        ("base: default\nengine: {max_num_seqs: 2.5}\n", "expected an integer"),
        ("base: default\nengine: {enable_prefix_caching: 1}\n", "true/false"),
        ("base: default\nstep_time: {base_s: fast}\n", "expected a number"),
        ("base: default\nsteptime: {}\n", "unknown key 'steptime'"),
        ("base: nothing\n", "unknown profile 'nothing'"),
        ("base: default\nengine: {max_model_len: 100000}\n", "exceeds the KV cache"),
        ("base: default\nengine: {enable_chunked_prefill: false}\n", "without chunked prefill"),
        ("base: default\nfaults: {probabilities: {http_500: 2}}\n", "must be in [0, 1]"),
    ],
)
def test_bad_config_names_the_problem(tmp_path: Path, text: str, needle: str) -> None:
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(text)
    with pytest.raises(ProfileError) as e:
        load_config(cfg)
    assert needle in str(e.value) and "\n" not in str(e.value)


def test_unknown_profile_lists_the_available_ones() -> None:
    with pytest.raises(ProfileError, match=r"available: .*default"):
        load_profile("../etc/passwd")


def test_fault_spec_parsing() -> None:
    assert parse_fault_probabilities("http_500=0.1, stall=0.05") == {"http_500": 0.1, "stall": 0.05}
    assert parse_fault_probabilities("") == {}
    for bad in ("http_500", "http_500=x", "nope=0.1", "http_500=0.6,http_503=0.6", "http_500=-0.1"):
        with pytest.raises(ProfileError):
            parse_fault_probabilities(bad)


def test_fault_draws_follow_probabilities_and_the_seed() -> None:
    picker = FaultPicker({"http_500": 0.2, "disconnect": 0.3}, seed=1)
    draws = [picker.draw() for _ in range(5000)]
    assert 0.17 < draws.count("http_500") / 5000 < 0.23
    assert 0.27 < draws.count("disconnect") / 5000 < 0.33
    again = FaultPicker({"http_500": 0.2, "disconnect": 0.3}, seed=1)
    assert [again.draw() for _ in range(100)] == draws[:100]
    assert picker.pick("TRICKLE") == "trickle" and picker.pick("none") is None
    with pytest.raises(ValueError):
        picker.pick("meteor")
    assert set(FAULT_KINDS) == {
        "http_500",
        "http_503",
        "http_429",
        "disconnect",
        "bad_sse",
        "stall",
        "trickle",
        "empty",
    }
