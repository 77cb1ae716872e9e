"""A `--shape search` run read by the analysis: every probe a load level, an early-stopped probe judged
(not truncated), drains without rows, the capacity's interval, the search section and its plot."""

from __future__ import annotations

import json
from pathlib import Path

from analysis import api
from core.slo import PROFILES
from tests.support.synthetic import request, stage, write_run


def search_run(path: Path) -> Path:
    """Probes at 2, 4, 8 (stopped early), drain, 6, 5 req/s; attainment 1.0, 1.0, 0.2, 0.5, 0.95."""
    plan = [  # step, rate, start, end, attainment, stopped early
        (0, 2.0, 0.0, 10.0, 1.0, False),
        (1, 4.0, 10.0, 20.0, 1.0, False),
        (2, 8.0, 20.0, 26.0, 0.2, True),
        (4, 6.0, 30.0, 40.0, 0.5, False),
        (5, 5.0, 40.0, 50.0, 0.95, False),
    ]
    rows, stages, probes = [], [], []
    for step, rate, t0, t1, att, early in plan:
        n = round((t1 - t0) * rate)
        for i in range(n):
            ttft = 0.1 if (i % 20) < round(att * 20) else 0.9  # the chat SLO's TTFT limit is 0.5 s
            rows.append(request(step, t0 + i / rate, 1.2, ttft_s=ttft, scheduled=t0 + i / rate))
        stages.append(stage(step, t0, t1, rate_rps=rate, label=f"{rate:g} req/s"))
        probes.append({"step": step, "load": rate, "label": f"{rate:g} req/s", "planned_s": 10.0,
                       "ran_s": t1 - t0, "verdict": "pass" if att >= 0.9 else "fail",
                       "reason": "over-saturated: …" if early else "", "stopped_early": early,
                       "live_attainment": att, "live_ended": n, "live_ok_rps": rate})  # fmt: skip
    stages.insert(3, stage(3, 26.0, 30.0, users=0, rate_rps=0.0, label="drain"))
    params = {"search_by": "rate", "unit": "req/s", "precision": 0.25, "probe_duration_s": 10.0, "warmup_s": 0.0,
              "synchronous_rps": 2.0, "outcome": "bracketed within 25%: 5 req/s pass, 6 fail", "probes": probes}  # fmt: skip
    return write_run(path, rows, stages, shape={"name": "SearchSchedule", "params": params})


def test_search_probes_are_levels_and_the_answer_carries_its_interval(tmp_path: Path) -> None:
    a = api.analyze(api.load_run(search_run(tmp_path / "run")), PROFILES["chat"])
    s = a.summary
    assert [st.step for st in s.steps] == [0, 1, 2, 4, 5]  # the drain sent nothing: no level
    assert all(st.truncated is None for st in s.steps)  # the stopped probe ran as the search meant
    c = s.capacity
    assert c.unit == "req/s" and c.bounded and c.between == (5.0, 6.0)
    assert c.value is not None and c.interval is not None and c.interval.contains(c.value)
    assert c.levels is not None and all(lv.interval is not None for lv in c.levels)
    j = json.loads(s.to_json())
    assert j["capacity"]["interval"] == c.interval.to_list() and "interval_method" in j["capacity"]
    assert j["intervals"]["resampled"] == "requests" and len(j["intervals"]["ttft_s"]["p95"]) == 2
    md = api.summary_markdown(s)
    assert "## Capacity search" in md and "## Intervals (95 %)" in md
    assert "| 2 (2) | 8 req/s | 6 s | fail (stopped early) | 20.0 % | 25.0 % | over-saturated: … |" in md
    report = api.write_run(a)
    assert report is not None and (report.parent / "plots" / "capacity_interval.png").is_file()
    assert "Capacity search" in report.read_text()


def test_a_probe_cut_by_the_end_of_the_run_is_truncated(tmp_path: Path) -> None:
    path = search_run(tmp_path / "run")
    meta = json.loads((path / "run.json").read_text())
    meta["stages"][-1]["t_end_unix"] = meta["stages"][-1]["t_start_unix"] + 4.0  # -t ended it at 4 of 10 s
    (path / "run.json").write_text(json.dumps(meta))
    s = api.analyze(api.load_run(path), PROFILES["chat"]).summary
    assert s.steps[-1].truncated == "the run stopped 4.0 s into this 10 s stage"
    assert s.capacity.excluded == [5]
