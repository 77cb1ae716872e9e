"""Per-class figures of a mixed run on synthetic runs whose truth is known: each class against its own
SLO, the classes adding up to the run, capacity per class and of the mix, and the sections that show them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from analysis import api
from analysis.render import markdown
from core.record import RequestRecord
from core.slo import PROFILES
from tests.support.synthetic import request, stage, write_run

approx = pytest.approx
CHAT, DATAGEN = PROFILES["chat"], PROFILES["datagen"]
STEP = {"name": "StepSchedule", "params": {"step_users": 2, "step_interval_s": 10.0}}
MIX = {
    "spec": "chat:60%:slo=chat,batch:40%:slo=datagen",
    "label": "chat 60% + batch 40%",
    "classes": [
        {"name": "chat", "dataset": "chat", "share_pct": 60.0, "slo": CHAT.to_dict()},
        {"name": "batch", "dataset": "random", "share_pct": 40.0, "slo": DATAGEN.to_dict()},
    ],
}


def tagged(tenant: str, rec: RequestRecord) -> RequestRecord:
    rec.tenant = tenant
    return rec


def mixed_run(path: Path, cancel_last: bool = False) -> Path:
    """Two 10 s levels (2 then 4 users). chat: 1 req/s of 0.5 s (TTFT 0.1 s) at level 0, TTFT 0.8 s
    at level 1 (over its 500 ms limit); batch: 0.5 req/s of 0.5 s, 20 tokens (TPOT 21 ms, within
    datagen's 35 ms) at both levels. So chat is good only at level 0, batch always."""
    rows = []
    for k, users in ((0, 2), (1, 4)):
        t0 = 10.0 * k
        for i in range(10):
            ttft = 0.1 if k == 0 else 0.8
            rows.append(
                tagged("chat", request(k, t0 + i, 0.5 if k == 0 else 1.2, ttft_s=ttft, users=users, user=1))
            )
        for i in range(5):
            rows.append(tagged("batch", request(k, t0 + 2 * i + 0.5, 0.5, users=users, user=2)))
    if cancel_last:
        rows.append(tagged("batch", request(1, 19.8, 0.1, users=4, user=3, error="cancelled")))
    stages = [stage(0, 0.0, 10.0, users=2), stage(1, 10.0, 20.0, users=4)]
    return write_run(path, rows, stages, shape=STEP, mix=MIX, dataset=MIX["label"])


def analyze(path: Path) -> api.Summary:
    return api.analyze(api.load_run(path), CHAT).summary


def test_each_class_is_judged_by_its_own_slo(tmp_path: Path) -> None:
    s = analyze(mixed_run(tmp_path / "run"))
    t = s.tenants
    assert t is not None and [c.name for c in t.classes] == ["chat", "batch"]
    chat, batch = t.classes
    assert (chat.requests, chat.good, chat.slo_attainment) == (20, 10, 0.5)
    assert (batch.requests, batch.good, batch.slo_attainment) == (10, 10, 1.0)
    assert (chat.verdict.slo, chat.verdict.passed, batch.verdict.slo, batch.verdict.passed) == (
        "chat", False, "datagen", True,
    )  # fmt: skip
    # under the run's primary SLO (chat) the batch requests are good too: the headline is not per class
    assert s.throughput.good == 20 and t.good == 20 and t.slo_attainment == approx(20 / 30)
    assert chat.ttft.p95 == approx(0.8) and batch.tpot.p50 == approx(0.4 / 19, abs=1e-6)  # µs in requests.csv


def test_the_classes_add_up_to_the_run(tmp_path: Path) -> None:
    s = analyze(mixed_run(tmp_path / "run", cancel_last=True))
    t, tp = s.tenants, s.throughput
    assert t is not None
    assert sum(c.requests for c in t.classes) == tp.requests == 31
    assert sum(c.ok for c in t.classes) == tp.ok
    assert sum(c.cancelled for c in t.classes) == tp.cancelled == 1
    assert sum(c.req_per_s for c in t.classes) == approx(tp.req_per_s, rel=1e-12)
    assert sum(c.output_tok_per_s for c in t.classes) == approx(tp.output_tok_per_s, rel=1e-12)
    assert t.goodput_req_per_s == approx(sum(c.goodput_req_per_s for c in t.classes))
    assert t.goodput_req_per_s == approx(20 / tp.duration_s)
    for k, st in enumerate(s.steps):  # per level too
        assert sum(c.levels[k].requests for c in t.classes) == st.requests


def test_capacity_per_class_and_of_the_mix(tmp_path: Path) -> None:
    t = analyze(mixed_run(tmp_path / "run")).tenants
    assert t is not None
    chat, batch = t.classes
    assert [(lv.load, lv.requests, lv.good, lv.slo_attainment) for lv in chat.levels] == [
        (2.0, 10, 10, 1.0), (4.0, 10, 0, 0.0),
    ]  # fmt: skip
    assert chat.levels[0].goodput_req_per_s == approx(1.0)
    # chat: 100 % at 2 users, 0 % at 4 → crosses 90 % at 2.2 users; batch never breaks (≥ 4)
    assert (chat.capacity.value, chat.capacity.bounded) == (approx(2.2), True)
    assert (batch.capacity.value, batch.capacity.bounded) == (4.0, False)
    assert (t.capacity.value, t.limiting) == (approx(2.2), "chat")


def test_summary_json_and_sections_only_with_a_mix(tmp_path: Path) -> None:
    run = mixed_run(tmp_path / "run")
    a = api.analyze(api.load_run(run), CHAT)
    api.write_run(a, with_plots=False)
    doc = json.loads((run / "summary.json").read_text())["tenants"]
    assert doc["label"] == "chat 60% + batch 40%" and doc["limiting_class"] == "chat"
    batch = doc["classes"][1]
    assert (batch["name"], batch["slo"], batch["share_pct"], batch["pass"]) == (
        "batch",
        "datagen",
        40.0,
        True,
    )
    assert batch["capacity"]["bounded"] is False and len(batch["levels"]) == 2
    assert "## Tenants" in (run / "summary.md").read_text()
    assert "<h2>Tenants</h2>" in (run / "report.html").read_text()
    plain = tmp_path / "plain"
    write_run(plain, [request(0, i, 0.5) for i in range(5)], [stage(0, 0.0, 10.0)])
    s = analyze(plain)
    assert s.tenants is None and "Tenants" not in markdown.summary_md(s)
    assert "tenants" not in json.loads(s.to_json())  # only a mixed run's summary.json has the key
