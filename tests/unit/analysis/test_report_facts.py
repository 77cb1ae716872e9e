"""Reports show no raw internals: readable names, rounded figures (analysis/fmt.py `fact`, `params`);
and the workloads' JSON stats carry no binary float artefacts (workloads/stats.py)."""

from __future__ import annotations

import json
import re

from analysis import fmt
from analysis.render.html import meta_table

ARTEFACT = re.compile(r"\d\.\d*(?:0000|9999)\d")  # 292.99999999999994, 386.60000000000014


def test_run_facts_read_as_words_and_rounded_figures() -> None:
    from shapes.step import StepSchedule

    step = StepSchedule(step_users=2, interval_s=10.0, duration_s=600.0, warmup_s=2.5)
    meta = {
        "shape": {"name": "step", "title": "step ramp", "params": step.describe()},
        "workers": 0,
        "t_start_unix": 1796407086.5902085,
        "user_class": "ChatUser",
        "loadgen": {"workers": {"w1": {"lag_ms": {"p50": 0.27901, "p99": 4.05213, "max": 39.7361},
                                       "cpu_percent": {"mean": 3.21999, "max": 6.1},
                                       "read_lag_ms": {"p50": 0.01, "p99": 12.4567, "max": 30.0}},
                                "w2": {"lag_ms": {}, "cpu_percent": {}}}},
    }  # fmt: skip
    html = meta_table(meta, "/results/run-1")
    assert "step ramp (" in html and "step users 2" in html and "10 s" in html, html
    assert "name=" not in html and "params" not in html and "{" not in html and "Schedule" not in html
    assert "none (one local process)" in html and "1796407086" not in html and "user class" in html
    assert "lag p50 0.3 ms, p99 4.1 ms, max 39.7 ms; CPU mean 3.2 %, max 6.1 %; read lag p99 12.5 ms" in html
    assert "load generator w2" in html and html.count("read lag") == 1  # a run.json without read lags
    assert not re.search(r"\d\.\d{4,}", html), html


def test_fact_rounds_numbers_and_names_units() -> None:
    assert (
        fmt.fact(10.2034) == "10.2"
        and fmt.fact(292.99999999999994) == "293"
        and fmt.fact(123456.7) == "123,457"
    )
    assert fmt.params({"rate_rps": 5.0, "duration_s": 60.0, "label": "", "max_users": 0}) == (
        "rate 5 req/s, duration 60 s, max users 0"
    )


def test_workload_stats_json_has_no_float_artefacts() -> None:
    from workloads import load_workload
    from workloads.stats import compute

    for name in ("chat", "agentic", "code"):
        text = json.dumps(compute(load_workload(name)))
        assert not ARTEFACT.search(text), (name, ARTEFACT.search(text))
