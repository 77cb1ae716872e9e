"""Per-model figures (several models or LoRA adapters in one run) on synthetic runs whose truth is known:
every model under the run's SLO, the models adding up to the run, capacity per model, the sentence
that names the worst model, and the runs that have no section (one model, rows from before `model`)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from analysis import api
from analysis.models import UNNAMED
from core.record import RequestRecord
from core.slo import PROFILES
from tests.support.synthetic import T0, request, stage, write_run

approx = pytest.approx
CHAT = PROFILES["chat"]
STEP = {"name": "StepSchedule", "params": {"step_users": 2, "step_interval_s": 10.0}}
STAGES = [stage(0, 0.0, 10.0, users=2), stage(1, 10.0, 20.0, users=4)]
MODEL_KEYS = ["slo", "slo_describe", "attain_target", "capacity", "limiting_model", "worst", "by", "by_model"]
PER_MODEL_KEYS = [
    "name", "requests", "ok", "cancelled", "good", "req_per_s", "output_tok_per_s", "goodput_req_per_s",
    "slo_attainment", "attain_target", "pass", "percentile_checks", "ttft_s", "tpot_s", "e2e_s", "capacity",
    "levels", "engine_queue_s",
]  # fmt: skip


def named(model: str, rec: RequestRecord, queue_s: float | None = None) -> RequestRecord:
    rec.model, rec.engine_queue_s = model, queue_s
    return rec


def two_models(path: Path, extra: list[RequestRecord] | None = None) -> Path:
    """Two 10 s levels (2 then 4 users), 1 req/s per model. a: TTFT 60 ms throughout. b: TTFT 100 ms at
    level 0, 900 ms at level 1 (over chat's 500 ms), each stating its engine queue (i + 1) × 10 ms at
    level 0 and 0.5 s + i × 10 ms at level 1. So b is good only at level 0, a always."""
    rows = []
    for k, users in ((0, 2), (1, 4)):
        for i in range(10):
            t = 10.0 * k + i
            rows.append(named("a", request(k, t, 0.5, ttft_s=0.06, users=users, user=1)))
            queue = (i + 1) * 0.01 if k == 0 else 0.5 + i * 0.01
            b = request(
                k, t + 0.5, 0.5 if k == 0 else 1.2, ttft_s=0.1 if k == 0 else 0.9, users=users, user=2
            )
            rows.append(named("b", b, queue))
    return write_run(path, rows + (extra or []), STAGES, shape=STEP)


def analyze(path: Path) -> api.Summary:
    return api.analyze(api.load_run(path), CHAT).summary


def test_each_model_is_judged_by_the_runs_slo(tmp_path: Path) -> None:
    m = analyze(two_models(tmp_path / "run")).models
    assert m is not None and [f.name for f in m.models] == ["a", "b"] and m.slo == "chat"
    a, b = m.models
    assert (a.requests, a.ok, a.good, a.slo_attainment) == (20, 20, 20, 1.0)
    assert (b.requests, b.ok, b.good, b.slo_attainment) == (20, 20, 10, 0.5)
    assert (a.verdict.passed, b.verdict.passed) == (True, False)
    assert a.ttft.p95 == approx(0.06) and b.ttft.p95 == approx(0.9) and b.e2e.max == approx(1.2)
    # the engine's queue where the rows state it (b's), by the one percentile definition (numpy's linear)
    queues = [(i + 1) * 0.01 for i in range(10)] + [0.5 + i * 0.01 for i in range(10)]
    assert (a.engine_queue_p50_s, a.engine_queue_p95_s) == (None, None)
    assert b.engine_queue_p50_s == approx((queues[9] + queues[10]) / 2)
    assert b.engine_queue_p95_s == approx(queues[18] + 0.05 * (queues[19] - queues[18]))


def test_the_models_add_up_to_the_run(tmp_path: Path) -> None:
    """With a cancelled request, a failed one and a row that names no model (its own group)."""
    extra = [
        named("b", request(1, 19.8, 0.1, users=4, user=3, error="cancelled")),
        named("a", request(1, 15.2, 0.4, users=4, user=4, error="http_500")),
        request(0, 4.2, 0.3, users=2, user=5),
    ]
    s = analyze(two_models(tmp_path / "run", extra))
    m, tp = s.models, s.throughput
    assert m is not None and [f.name for f in m.models] == ["a", "b", UNNAMED]
    assert sum(f.requests for f in m.models) == tp.requests == 43
    assert sum(f.ok for f in m.models) == tp.ok == 41
    assert sum(f.cancelled for f in m.models) == tp.cancelled == 1
    assert sum(f.good for f in m.models) == tp.good == 31
    assert sum(f.req_per_s for f in m.models) == approx(tp.req_per_s, rel=1e-12)
    assert sum(f.output_tok_per_s for f in m.models) == approx(tp.output_tok_per_s, rel=1e-12)
    assert sum(f.goodput_req_per_s for f in m.models) == approx(tp.goodput_req_per_s, rel=1e-12)
    for k, st in enumerate(s.steps):  # per level too
        assert sum(f.levels[k].requests for f in m.models) == st.requests
        assert sum(f.levels[k].good for f in m.models) == st.good


def test_capacity_per_model_and_the_sentence(tmp_path: Path) -> None:
    s = analyze(two_models(tmp_path / "run"))
    m = s.models
    a, b = m.models
    assert [(lv.load, lv.requests, lv.good, lv.slo_attainment) for lv in b.levels] == [
        (2.0, 10, 10, 1.0), (4.0, 10, 0, 0.0),
    ]  # fmt: skip
    # b: 100 % at 2 users, 0 % at 4 → crosses 90 % at 2.2 users; a never breaks (≥ 4)
    assert (b.capacity.value, b.capacity.bounded) == (approx(2.2), True)
    assert (a.capacity.value, a.capacity.bounded) == (4.0, False)
    assert (m.capacity.value, m.limiting) == (approx(2.2), "b")
    assert (m.worst.model, m.worst.metric, m.worst.best) == ("b", "ttft", "a")
    line = (
        "Requests for b waited longest: TTFT p95 900 ms vs 60.0 ms for a; every model within chat up to "
        "2.2 users [2.2–2.2] (breaks at 4) — b breaks first."
    )
    assert line in api.console_text(s).splitlines()
    md = api.summary_markdown(s)
    assert f"## Models\n\n{line}\n" in md
    assert "| b | 20 | 0.97 | 19.3 | 0.48 | 50.0 % (90 %) | 900 | 21.1 | 1,200 | 300 / 580 |" in md
    assert "| 1 | 4 | 100.0 % | 0.0 % |" in md  # each model's attainment per level


def test_summary_json_keys_and_the_report_section(tmp_path: Path) -> None:
    run = two_models(tmp_path / "run")
    a = api.analyze(api.load_run(run), CHAT)
    api.write_run(a, with_plots=False)
    doc = json.loads((run / "summary.json").read_text())["models"]
    assert list(doc) == MODEL_KEYS and doc["limiting_model"] == "b" and doc["by"] == "model"
    assert [list(x) for x in doc["by_model"]] == [PER_MODEL_KEYS, PER_MODEL_KEYS]
    a_, b = doc["by_model"]
    assert a_["engine_queue_s"] is None and list(b["engine_queue_s"]) == ["p50", "p95"]
    assert list(b["levels"][0]) == ["step", "load", "requests", "good", "slo_attainment",
                                    "goodput_req_per_s", "truncated"]  # fmt: skip
    assert doc["worst"] == {"model": "b", "metric": "ttft", "p95_s": approx(0.9), "vs_model": "a",
                            "vs_p95_s": approx(0.06), "completed": True, "alike": False}  # fmt: skip
    html = (run / "report.html").read_text()
    assert "<h2>Models</h2>" in html and "Requests for b waited longest" in html


def strip_model(path: Path) -> None:
    """requests.csv as a run from before the `model` column wrote it."""
    with open(path / "requests.csv", newline="") as fh:
        rows = list(csv.reader(fh))
    i = rows[0].index("model")
    with open(path / "requests.csv", "w", newline="") as fh:
        csv.writer(fh).writerows([r[:i] + r[i + 1 :] for r in rows])


def test_no_section_for_one_model_or_a_run_before_the_column(tmp_path: Path) -> None:
    old = two_models(tmp_path / "old")
    with_column = analyze(old)
    strip_model(old)
    assert "model" not in (old / "requests.csv").read_text().splitlines()[0].split(",")
    s = analyze(old)
    assert s.models is None and "models" not in json.loads(s.to_json())
    assert "## Models" not in api.summary_markdown(s) and "Models" not in api.console_text(s)
    # everything else is the run's as it was
    assert s.throughput == with_column.throughput and s.steps == with_column.steps
    one = [named("a", request(0, i, 0.5)) for i in range(5)] + [request(0, 5.5, 0.5)]
    s = analyze(write_run(tmp_path / "one", one, [stage(0, 0.0, 10.0)]))
    assert s.models is None and "models" not in json.loads(s.to_json())  # one name (and unnamed rows)


def test_a_router_that_chose_the_model_groups_the_rows_by_the_answer(tmp_path: Path) -> None:
    """Every request named `auto`; the router answered from a (TTFT 60 ms) or b (900 ms): the groups are
    the answers' models, a failed request that no answer named is its own group, and the report says
    why the groups are not what the requests named."""
    rows = two_models(tmp_path / "src")
    recs = []
    with open(rows / "requests.csv", newline="") as fh:
        for r in csv.DictReader(fh):
            rec = request(int(r["step"]), float(r["t_start_unix"]) - T0, float(r["e2e_s"]),
                          ttft_s=float(r["ttft_s"]), users=int(r["target_users"]), user=int(r["user"]))  # fmt: skip
            rec.model, rec.served_model = "auto", r["model"]
            recs.append(rec)
    failed = named("auto", request(1, 15.2, 0.1, users=4, user=3, error="http_503"))
    run = write_run(tmp_path / "run", [*recs, failed], STAGES, shape=STEP)
    a = api.analyze(api.load_run(run), CHAT)
    m = a.summary.models
    assert m is not None and m.by == "served_model"
    assert [(f.name, f.requests, f.ok) for f in m.models] == [("a", 20, 20), ("b", 20, 20), (UNNAMED, 1, 0)]
    assert m.worst is not None and m.worst.model == UNNAMED  # none of its requests completed
    text = api.summary_markdown(a.summary)
    assert "## Models (as the answers named them)" in text
    assert "Every request named one model, but the answers named 2: a router's choice" in text
    # the run that named its models is grouped as before, whatever the answers named
    assert analyze(rows).models.by == "model"


def test_a_model_none_of_whose_requests_completed_fares_worst(tmp_path: Path) -> None:
    failed = [named("c", request(k, 10.0 * k + 0.3 + i, 0.2, users=2 + 2 * k, user=3, error="http_500"))
              for k in range(2) for i in range(0, 10, 2)]  # fmt: skip
    s = analyze(two_models(tmp_path / "run", failed))
    c = s.models.of("c")
    assert (c.requests, c.ok, c.good, c.slo_attainment, c.req_per_s, c.output_tok_per_s) == (
        10,
        0,
        0,
        0.0,
        0.0,
        0.0,
    )
    assert c.ttft.p95 is None and c.capacity.value is None
    assert s.models.worst.model == "c" and not s.models.worst.completed
    assert s.models.limiting == "c"
    assert (
        api.console_text(s).count(
            "No request for c completed (10 sent, none within chat); no complete load level met chat for "
            "every model (c never did)."
        )
        == 1
    )
    doc = json.loads(s.to_json())["models"]["by_model"][2]
    assert doc["ttft_s"]["p95"] is None and doc["slo_attainment"] == 0.0 and doc["engine_queue_s"] is None


def test_a_model_whose_requests_were_all_cancelled_is_not_judged(tmp_path: Path) -> None:
    cut = [named("d", request(1, 12.0 + 0.1 * i, 0.5, users=4, user=6, error="cancelled")) for i in range(2)]
    s = analyze(two_models(tmp_path / "run", cut))
    d = s.models.of("d")  # 2 of the level's 22 requests cancelled: under 10 %, the level stays whole
    assert (d.requests, d.cancelled, d.ok, d.good, d.slo_attainment) == (2, 2, 0, 0, None)
    assert d.levels[1].slo_attainment is None and d.verdict.slo_attainment is None
    assert s.models.worst.model == "b"  # d had nothing judged: it is no one's worst
    assert s.models.limiting == "b" and "Requests for b waited longest" in api.console_text(s)


def one_level(path: Path, b_ttft: float, b_errors: int = 0) -> api.Summary:
    """One 10 s level: a and b at 1 req/s, a TTFT 100 ms; b's TTFT given, its first `b_errors` failed."""
    rows = [named("a", request(0, i, 0.9, ttft_s=0.1, users=2, user=1)) for i in range(10)]
    rows += [named("b", request(0, i + 0.5, 0.9, ttft_s=b_ttft, users=2, user=2, error="http_500" if i < b_errors
                                else "")) for i in range(10)]  # fmt: skip
    return analyze(write_run(path, rows, [stage(0, 0.0, 10.0, users=2)]))


def test_ties_and_a_worst_on_attainment_alone(tmp_path: Path) -> None:
    s = one_level(tmp_path / "same", 0.1)
    assert s.models.worst.alike and not s.is_ramp
    assert "Requests for a, b fared alike: TTFT p95 100 ms, attainment 100.0 %." in api.console_text(s)
    # the same latencies, b failing 2 of its 10: b fared worst, on attainment
    s = one_level(tmp_path / "errors", 0.1, b_errors=2)
    assert (s.models.worst.model, s.models.worst.metric) == ("b", None)
    assert "Requests for b met chat least often: attainment 80.0 % vs 100.0 % for a." in api.console_text(s)
    # both within the SLO, b slower: the latency names it, its attainment beside a's only when they differ
    s = one_level(tmp_path / "slower", 0.3)
    assert "Requests for b waited longest: TTFT p95 300 ms vs 100 ms for a." in api.console_text(s)
    s = one_level(tmp_path / "late", 0.7)
    assert (
        "Requests for b waited longest: TTFT p95 700 ms vs 100 ms for a; chat attainment 0.0 % vs 100.0 % for a."
        in api.console_text(s)
    )


def test_no_model_breaks_and_the_largest_gap_names_the_latency(tmp_path: Path) -> None:
    """A ramp both models hold: no model breaks first. b's answers take twice a's (E2E 1.0 s vs 0.5 s) at
    the same TTFT: its TPOT is 2.1× a's, the largest gap, so the sentence names TPOT."""
    rows = [named(m, request(k, 10.0 * k + i + (m == "b") * 0.5, 1.0 if m == "b" else 0.5, ttft_s=0.06,
                             users=2 + 2 * k, user=1 + (m == "b")))
            for k in range(2) for i in range(10) for m in "ab"]  # fmt: skip
    s = analyze(write_run(tmp_path / "run", rows, STAGES, shape=STEP))
    m = s.models
    assert m.limiting is None and (m.capacity.value, m.capacity.bounded) == (4.0, False)
    assert (m.worst.model, m.worst.metric) == ("b", "tpot")
    assert (
        "Requests for b streamed slowest: TPOT p95 49.5 ms vs 23.2 ms for a; every model within chat at every "
        "complete level (≥ 4 users [4–…])." in api.console_text(s).splitlines()
    )
    assert json.loads(s.to_json())["models"]["limiting_model"] is None


def test_when_no_model_met_the_slo_at_any_level_the_sentence_says_so(tmp_path: Path) -> None:
    rows = [named(m, request(k, 10.0 * k + i + (m == "b") * 0.5, 1.0 if m == "a" else 1.2, ttft_s=0.6 if m == "a" else 0.8,
                             users=2 + 2 * k, user=1 + (m == "b")))
            for k in range(2) for i in range(10) for m in "ab"]  # fmt: skip
    s = analyze(write_run(tmp_path / "run", rows, STAGES, shape=STEP))
    assert [f.capacity.value for f in s.models.models] == [None, None]
    assert (
        "Requests for b waited longest: TTFT p95 800 ms vs 600 ms for a; no complete load level met chat for "
        "every model (none did)." in api.console_text(s).splitlines()
    )


def test_the_models_come_in_the_runs_order_and_a_listed_model_without_requests_shows(tmp_path: Path) -> None:
    """run.json `models` (written by --models): its order; c drew no request and shows with none."""
    run = two_models(tmp_path / "run")
    meta = json.loads((run / "run.json").read_text())
    meta["models"] = {"spec": "c,b,a", "models": {"c": 20.0, "b": 40.0, "a": 40.0}}
    (run / "run.json").write_text(json.dumps(meta))
    s = analyze(run)
    assert [f.name for f in s.models.models] == ["c", "b", "a"]
    c = s.models.of("c")
    assert (c.requests, c.req_per_s, c.slo_attainment, c.ttft.p95) == (0, 0.0, None, None)
    assert (s.models.worst.model, s.models.limiting) == ("b", "b")
    assert sum(f.requests for f in s.models.models) == s.throughput.requests
    assert "| c | 0 | 0.00 | 0.0 | 0.00 | – (90 %) |" in api.summary_markdown(s)


def test_a_comparison_puts_each_models_runs_side_by_side(tmp_path: Path) -> None:
    """Two configurations of the same adapters: comparison.md's Models table holds a's rows, then b's,
    each in the runs' order, with each run's own figures; a run of one model adds no row."""
    one = two_models(tmp_path / "one")
    other = write_run(tmp_path / "other", [named("b", request(0, t, 0.5, ttft_s=0.05, users=2, user=1))
                                           for t in range(10)] + [named("a", request(0, t + 0.5, 1.2, ttft_s=0.7, users=2, user=2))
                                                                  for t in range(10)], STAGES[:1], shape=STEP)  # fmt: skip
    single = write_run(tmp_path / "single", [named("a", request(0, t, 0.5, users=2)) for t in range(5)],
                       STAGES[:1], shape=STEP)  # fmt: skip
    summaries = [analyze(d) for d in (one, other, single)]
    c = api.compare(summaries, CHAT, mode="median")
    md = api.comparison_markdown(c)
    section = md[md.index("## Models") :].split("\n\n")[2].splitlines()[2:]
    cells = [[x.strip() for x in line.strip("|").split("|")] for line in section]
    assert [(r[1], r[7]) for r in cells] == [("a", "60.0"), ("a", "700"), ("b", "900"), ("b", "50.0")]
    assert len({r[0] for r in cells}) == 2  # two configurations; the one-model run is not there
    from analysis.render.comparison import html

    assert "<h2>Models</h2>" in html(c, [])


def test_runs_that_split_their_traffic_otherwise_are_not_repeats(tmp_path: Path) -> None:
    from dataclasses import replace

    from analysis.compare import config_key

    info = analyze(two_models(tmp_path / "run")).run
    assert info.models is None  # no run.json `models`: one model
    split = replace(info, models="a,b")
    assert config_key(split) != config_key(replace(info, models="a:90%,b:10%"))
    assert config_key(split) == config_key(replace(info, models="a,b"))
