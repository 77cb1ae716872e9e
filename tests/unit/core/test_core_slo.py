"""SLO profiles and the `--slo` parser: values of the profiles table, good/bad specs, YAML files, per-request rule."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from core.slo import PROFILES, PercentileCheck, Slo, SloError, fmt_duration, parse_slo

ROOT = Path(__file__).resolve().parents[3]


def test_profiles_match_design_table() -> None:
    expect = {
        "chat": (0.5, 0.25),
        "summarization": (10.0, 0.25),
        "datagen": (None, 0.035),
        "mlperf-llama2-70b": (2.0, 0.2),
        "mlperf-interactive": (0.45, 0.04),
        "reasoning": (2.0, 0.08),  # MLPerf Inference DeepSeek-R1 Server (loadgen/mlperf.conf)
    }
    assert set(PROFILES) == set(expect)
    for name, (ttft, tpot) in expect.items():
        slo = parse_slo(name)
        assert (slo.name, slo.ttft_s, slo.tpot_s, slo.e2e_s) == (name, ttft, tpot, None)
        assert slo.attain_target == 0.9
    assert {(c.metric, c.q, c.limit_s) for c in parse_slo("mlperf-interactive").percentiles} == {
        ("ttft", 99.0, 0.45),
        ("tpot", 99.0, 0.04),
    }


@pytest.mark.parametrize(
    ("spec", "ttft", "tpot", "e2e"),
    [
        ("ttft=500ms,tpot=50ms,e2e=20s", 0.5, 0.05, 20.0),
        ("ttft=0.5s", 0.5, None, None),
        (" tpot = 800us ", None, 0.0008, None),
        ("tpot=800µs", None, 0.0008, None),
        ("ttft_ms=250,e2e_s=3", 0.25, None, 3.0),
        ("chat,e2e=20s", 0.5, 0.25, 20.0),
        ("chat,ttft=1s", 1.0, 0.25, None),
    ],
)
def test_parse_specs(spec: str, ttft: float | None, tpot: float | None, e2e: float | None) -> None:
    slo = parse_slo(spec)
    assert slo.ttft_s == pytest.approx(ttft) if ttft is not None else slo.ttft_s is None
    assert slo.tpot_s == pytest.approx(tpot) if tpot is not None else slo.tpot_s is None
    assert slo.e2e_s == pytest.approx(e2e) if e2e is not None else slo.e2e_s is None


def test_percentile_checks_and_target() -> None:
    slo = parse_slo("ttft=2s,p99:tpot=250ms,p99.9:itl=1s,attain=95%")
    assert slo.percentiles == (PercentileCheck("tpot", 99.0, 0.25), PercentileCheck("itl", 99.9, 1.0))
    assert slo.attain_target == pytest.approx(0.95)
    assert parse_slo("tpot=1s,target=0.8").attain_target == pytest.approx(0.8)
    assert "p99 TPOT ≤ 250 ms" in slo.describe() and "target 95 %" in slo.describe()


@pytest.mark.parametrize(
    ("spec", "needle"),
    [
        ("", "empty"),
        ("chatbot", "unknown profile 'chatbot'"),
        ("ttft=500", "'500' needs a unit"),
        ("ttft=fast", "'fast' is not a duration"),
        ("ttft=-5ms", "'-5ms' is not a duration"),
        ("latency=1s", "unknown key 'latency'"),
        ("ttft=1s,,tpot=1s", "empty part"),
        ("ttft=1s,ttft=2s", "'ttft' given twice"),
        ("itl=50ms", "'itl' has no per-request limit"),
        ("p99:foo=1s", "'p99:foo'"),
        ("p0:tpot=1s", "'p0:tpot'"),
        ("attain=150%", "must be in"),
        ("attain=lots", "not a fraction"),
        ("ttft=1s,chat", "must come first"),
        ("missing.yaml", "not found"),
    ],
)
def test_bad_specs_are_one_clear_line(spec: str, needle: str) -> None:
    with pytest.raises(SloError) as e:
        parse_slo(spec)
    msg = str(e.value)
    assert needle in msg
    assert "\n" not in msg


def test_yaml_file(tmp_path: Path) -> None:
    p = tmp_path / "app.yaml"
    p.write_text(
        "name: my-app\nprofile: chat\ne2e: 20s\ntpot_ms: 100\nattain: 95%\npercentiles:\n  p99:tpot: 250ms\n  p95:\n    ttft: 1s\n"
    )
    slo = parse_slo(str(p))
    assert (slo.name, slo.ttft_s, slo.tpot_s, slo.e2e_s, slo.attain_target) == (
        "my-app",
        0.5,
        0.1,
        20.0,
        0.95,
    )
    assert {(c.metric, c.q, c.limit_s) for c in slo.percentiles} == {
        ("tpot", 99.0, 0.25),
        ("ttft", 95.0, 1.0),
    }


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("ttft: [1, 2\n", "not readable YAML"),
        ("- ttft: 1s\n", "expected a mapping"),
        ("ttft: 500\n", "needs a unit"),
        ("profile: nope\n", "unknown profile 'nope'"),
        ("colour: red\n", "unknown key 'colour'"),
    ],
)
def test_bad_yaml_names_the_file(tmp_path: Path, text: str, needle: str) -> None:
    p = tmp_path / "slo.yml"
    p.write_text(text)
    with pytest.raises(SloError) as e:
        parse_slo(str(p))
    assert needle in str(e.value) and str(p) in str(e.value) and "\n" not in str(e.value)


def test_is_good_rules() -> None:
    slo = Slo("t", ttft_s=0.5, tpot_s=0.05, e2e_s=10.0)
    assert slo.is_good(0.5, 0.05, 10.0)  # limits are inclusive (vLLM --goodput)
    assert not slo.is_good(0.51, 0.01, 1.0)
    assert not slo.is_good(0.1, 0.051, 1.0)
    assert not slo.is_good(0.1, 0.01, 10.01)
    assert slo.is_good(0.1, None, 1.0)  # undefined TPOT (≤ 1 output token) passes, as vLLM counts it 0
    assert not slo.is_good(None, 0.01, 1.0)  # no first token: fails TTFT
    assert not slo.is_good(0.1, 0.01, None)
    assert Slo("none").is_good(None, None, None)


def test_dict_round_trip_for_run_json() -> None:
    slo = parse_slo("ttft=300ms,tpot=150ms,p99:tpot=200ms,attain=80%")
    back = Slo.from_dict(slo.to_dict())
    assert back == slo
    assert Slo.from_dict({"profile": "datagen"}) == PROFILES["datagen"]  # older run.json: name only
    assert Slo.from_dict({"profile": "x", "ttft_s": 1}).ttft_s == 1.0


def test_fmt_duration() -> None:
    assert [fmt_duration(x) for x in (2.0, 0.5, 0.035, 0.0008)] == ["2 s", "500 ms", "35 ms", "800 µs"]


def test_slo_module_is_pure_python() -> None:
    """The Locust load path imports it: no pandas/numpy/matplotlib/pyarrow may come along."""
    code = (
        "import sys, core.slo as s; s.parse_slo('chat'); "
        "bad = [m for m in ('pandas', 'numpy', 'matplotlib', 'pyarrow', 'yaml') if m in sys.modules]; "
        "print(','.join(bad))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_ttfo_limit_and_percentile() -> None:
    slo = parse_slo("reasoning,ttfo=10s,p95:ttfo=20s")
    assert (slo.ttft_s, slo.ttfo_s, slo.tpot_s) == (2.0, 10.0, 0.08)
    assert PercentileCheck("ttfo", 95.0, 20.0) in slo.percentiles
    assert "TTFO ≤ 10 s" in slo.describe()
    assert slo.is_good(1.0, 0.05, 30.0, ttfo_s=9.0)
    assert not slo.is_good(1.0, 0.05, 30.0, ttfo_s=11.0)
    assert not slo.is_good(1.0, 0.05, 30.0, ttfo_s=None)  # no answer came: not good
    assert parse_slo("chat").is_good(0.4, 0.1, 3.0)  # TTFO is not checked without a limit
    assert Slo.from_dict(slo.to_dict()) == slo
    assert parse_slo("ttfo_ms=1500").ttfo_s == 1.5
