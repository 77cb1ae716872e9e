"""The typed results: `Summary.to_json()` writes summary.json exactly as the analysis always has.

The expected files in tests/fixtures were written by the analysis *before* its results became
typed (commit "Fixtures: summary.json as the current analysis writes it"); the comparison is on
the text, byte for byte: same keys, same order, same values (no float tolerance: the figures are
computed by the same code, only held in typed objects now). The run folder is given relative to
the repository, as when the fixtures were written, so `run.dir` matches too. Since then keys were
only added (the `reasoning` SLO profile's verdict, `slo.ttfo_s`, `run.api`, `reasoning`,
`tool_calls`, `server.replicas`: all null or absent-as-null for these runs), every earlier value unchanged.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from analysis import api
from core.slo import PROFILES, Slo, parse_slo

ROOT = Path(__file__).resolve().parents[3]


def own_slo(run) -> Slo:
    """The SLO the run was recorded with (what `python -m analysis RUN` uses without --slo)."""
    return Slo.from_dict(run.meta["slo"])


@pytest.mark.parametrize(
    ("run_dir", "specs", "expected"),
    [
        ("tests/fixtures/run_small", [], "summary.expected.json"),
        ("tests/fixtures/run_openloop", [], "summary.expected.json"),
        (
            "tests/fixtures/run_small",
            ["chat,attain=70%", "p95:itl=490ms,p99:itl=500ms", "datagen"],
            "summary.slos.expected.json",
        ),
    ],
)
def test_to_json_is_the_summary_json_written_before(
    run_dir: str, specs: list[str], expected: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(ROOT)
    run = api.load_run(run_dir)
    slos = [parse_slo(x) for x in specs] or [own_slo(run)]
    summary = api.analyze(run, slos[0], slos[1:]).summary
    assert summary.to_json() == (ROOT / run_dir / expected).read_text()


def test_to_json_before_the_itl_parse_finishes_has_null_itl(monkeypatch: pytest.MonkeyPatch) -> None:
    """A summary read before `Analysis.finish()` says "not yet" (null), never a made-up figure."""
    monkeypatch.chdir(ROOT)
    a = api.analyze(api.load_run("tests/fixtures/run_small"), PROFILES["chat"], wait=False)
    early = json.loads(a.summary.to_json())
    assert early["itl_s"] is None and early["samples"]["itl_s"] is None
    done = json.loads(a.finish().summary.to_json())
    expected = json.loads((ROOT / "tests/fixtures/run_small/summary.expected.json").read_text())
    assert done == expected
    assert {k: v for k, v in early.items() if k not in ("itl_s", "samples")} == {
        k: v for k, v in expected.items() if k not in ("itl_s", "samples")
    }


def test_typed_fields_hold_what_the_json_says(monkeypatch: pytest.MonkeyPatch) -> None:
    """Attribute names differ from JSON keys in a few places (`passed` / `pass`, `label` / `check`)."""
    monkeypatch.chdir(ROOT)
    run = api.load_run("tests/fixtures/run_openloop")
    s = api.analyze(run, own_slo(run)).summary
    j = s.to_dict()
    assert (s.throughput.goodput_req_per_s, s.capacity.value) == (
        j["goodput_req_per_s"],
        j["capacity_at_slo"],
    )
    assert [(v.slo, v.passed) for v in s.verdicts] == [(v["slo"], v["pass"]) for v in j["verdicts"]]
    assert [st.e2e.p95 for st in s.steps] == [st["e2e_p95_s"] for st in j["steps"]]
    assert s.open_loop is not None and s.open_loop.send_lag_s.p99 == j["open_loop"]["send_lag_s"]["p99"]
    assert s.server is not None and s.server["engine"] == j["server"]["engine"] == "vllm"
    assert s.capacity.levels is not None and [x.load for x in s.capacity.levels] == [2.0, 4.0]
