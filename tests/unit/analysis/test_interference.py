"""The interference view on synthetic runs: a mixed run's classes against one-class runs of them."""

from __future__ import annotations

from pathlib import Path

import pytest

from analysis import api
from core.record import RequestRecord
from core.slo import PROFILES
from tests.support.synthetic import request, stage, write_run

CHAT, DATAGEN = PROFILES["chat"], PROFILES["datagen"]


def klass(name: str, dataset: str, share: float, slo) -> dict:
    return {"name": name, "dataset": dataset, "share_pct": share, "slo": slo.to_dict()}


def tagged(tenant: str, rec: RequestRecord) -> RequestRecord:
    rec.tenant = tenant
    return rec


def one_level(path: Path, classes: list[dict], rows: list[RequestRecord]) -> Path:
    mix = {"spec": "-", "label": " + ".join(c["name"] for c in classes), "classes": classes}
    return write_run(path, rows, [stage(0, 0.0, 20.0, users=4)], mix=mix, target="http://x", model="m")


def test_each_class_in_the_mix_against_it_alone(tmp_path: Path) -> None:
    """chat: TTFT 0.3 s in the mix, 0.12 s alone, both within chat's 500 ms; in the mix 4 of its 20
    requests take 0.7 s (over the limit): goodput 16 vs 20 requests over the same 19.x s windows."""
    mixed_rows = [tagged("chat", request(0, i, 0.9, ttft_s=0.7 if i % 5 == 0 else 0.3)) for i in range(20)]
    mixed_rows += [tagged("batch", request(0, i + 0.5, 0.5)) for i in range(0, 20, 2)]
    mixed = one_level(
        tmp_path / "mixed",
        [klass("chat", "chat", 67.0, CHAT), klass("batch", "random", 33.0, DATAGEN)],
        mixed_rows,
    )
    alone = one_level(
        tmp_path / "alone",
        [klass("chat", "chat", 100.0, CHAT)],
        [tagged("chat", request(0, i, 0.9, ttft_s=0.12)) for i in range(20)],
    )
    sm, sa = (api.analyze(api.load_run(p), CHAT).summary for p in (mixed, alone))
    (x,) = api.interference("office", sm, [sa])  # batch has no alone run: not listed
    d = {dl.metric: dl for dl in x.deltas}
    assert (x.tenant, x.slo, x.mix) == ("chat", "chat", "office")
    assert d["ttft_p95_s"].in_mix == pytest.approx(0.7) and d["ttft_p95_s"].alone == pytest.approx(0.12)
    assert d["ttft_p95_s"].change() == "+580 ms"
    assert d["slo_attainment"].change() == "−20.0 pp"
    rel = sm.tenants.of("chat").goodput_req_per_s / sa.tenants.classes[0].goodput_req_per_s - 1
    assert d["goodput_req_per_s"].relative == pytest.approx(rel)
    assert d["goodput_req_per_s"].change() == f"{rel * 100:+.0f} %".replace("-", "−")
    assert x.phrase().startswith("chat: TTFT p95 +580 ms, TPOT p95 ")
    # a comparison of the three pairs them by target and model and shows the view
    c = api.compare([sm, sa], CHAT)
    md = api.comparison_markdown(c)
    assert "## Interference" in md and "chat: TTFT p95 +580 ms" in md and "## Tenants" in md
    # given pairs replace the pairing (the arena's servers change port per run)
    assert "## Interference" not in api.comparison_markdown(api.Comparison(CHAT, "median", c.rows, c.runs,
                                                                           c.summaries, interference=[]))  # fmt: skip


def test_a_class_with_another_slo_alone_is_not_paired(tmp_path: Path) -> None:
    rows = [tagged("chat", request(0, i, 0.5)) for i in range(10)] + [
        tagged("batch", request(0, i + 0.5, 0.5)) for i in range(10)
    ]
    mixed = one_level(
        tmp_path / "m", [klass("chat", "chat", 50, CHAT), klass("batch", "random", 50, DATAGEN)], rows
    )
    alone = one_level(tmp_path / "a", [klass("chat", "chat", 100, DATAGEN)], rows[:10])
    sm, sa = (api.analyze(api.load_run(p), CHAT).summary for p in (mixed, alone))
    assert api.interference("m", sm, [sa]) == []
