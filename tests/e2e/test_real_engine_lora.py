"""Multi-LoRA serving against the real vLLM (CPU): two rank-8 adapters of the tiny model
(`scripts/build_tiny_lora.py`, `make real-engine-lora`) served with `--enable-lora --max-loras 1` — one adapter slot — and a
step run through Goodput whose conversations name one adapter each (`--models a,b`).

What must hold, from the engine's own statements: every row names the adapter its body asked for,
both adapters are sent; with one slot the engine never runs the two adapters at once, so the rows'
engine-side service windows (from when it scheduled them to the answer's end) of different adapters
do not overlap, and requests waited for the slot (its queue time) while the other adapter ran; its
`/metrics` says so too (`lora_requests_info` with `max_lora` 1, requests `deferred`); and the report's
per-model figures add up to the run's.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from analysis import api
from core.slo import parse_slo
from tests.conftest import ROOT
from tests.e2e.test_real_engine import REQUIRE_ENV, measured_run, record_figures
from tests.support.real_engine import (
    Engine,
    engine_dir,
    skip_unless_available,
    start_engine,
    unavailable_reason,
)

pytestmark = [pytest.mark.e2e, pytest.mark.real_engine, pytest.mark.alone]

ADAPTERS = ("a", "b")
# a row's window ends at its last byte's arrival, a few ms after the engine finished it and scheduled
# the other adapter's requests (measured: ≤ 3 ms on 2 cores)
OVERLAP_S = 0.05


@pytest.fixture(scope="module")
def lora_engine() -> Iterator[Engine]:
    skip_unless_available(unavailable_reason(), REQUIRE_ENV)
    # `make real-engine-lora`: adapters a and b into .real-engine/lora (built once, again when changed)
    built = subprocess.run(["bash", str(ROOT / "scripts" / "real_engine.sh"), "lora"],
                           capture_output=True, text=True, timeout=300)  # fmt: skip
    assert built.returncode == 0, (built.stdout + built.stderr)[-2000:]
    out = engine_dir() / "lora"
    flags = ("--enable-lora", "--max-loras", "1", "--max-lora-rank", "8",
             "--lora-modules", *(f"{n}={out / n}" for n in ADAPTERS))  # fmt: skip
    eng = start_engine(timeout_s=300, flags=flags)
    try:
        record_figures("lora_engine", {"startup_s": round(eng.startup_s, 1)})
        yield eng
    finally:
        eng.stop()


def service(row: dict[str, str]) -> tuple[float, float]:
    """The row's engine-side window: from when the engine scheduled it — its first token's arrival less
    the engine's stated time from scheduling to that token (`engine_prefill_s`, vLLM's per-request
    `time_to_first_token_ms`) — to the answer's last byte. (Its start + its stated queue time would
    be too early: the API server's own work before the engine queues a request is in neither.)"""
    t0 = float(row["t_start_unix"])
    return t0 + float(row["ttft_s"]) - float(row["engine_prefill_s"]), t0 + float(row["e2e_s"])


def test_one_adapter_slot_serialises_the_adapters_and_the_report_splits_by_model(
    lora_engine: Engine, tmp_path: Path
) -> None:
    w = measured_run(lora_engine, tmp_path / "res", "lora", "--models", ",".join(ADAPTERS),
                     "--dataset", "random:input=uniform(16,48),output=24", "--max-tokens", "24",
                     "--step-users", "4", "--step-interval", "5s", "--scrape-interval", "250ms",
                     run_s=10, drain_s=30)  # fmt: skip
    ok = w.ok
    assert len(ok) == len(w.rows) >= 12, [
        (r["error"], r["error_detail"]) for r in w.rows if r["ok"] != "true"
    ]
    assert {r["model"] for r in ok} == set(ADAPTERS), [r["model"] for r in ok]
    assert all(r["served_model"] == r["model"] for r in ok)  # vLLM's chunks name the adapter that answered
    assert w.meta["models"]["models"] == {"a": 50.0, "b": 50.0}
    # a conversation names one adapter: a session never shows two
    by_session: dict[str, set[str]] = {}
    for r in ok:
        by_session.setdefault(r["session"], set()).add(r["model"])
    assert all(len(m) == 1 for m in by_session.values())

    # one slot: no two rows of different adapters were in the engine at once
    assert all(r["engine_queue_s"] and r["engine_prefill_s"] for r in ok), "vLLM states each request's timing"
    windows = sorted((*service(r), r["model"]) for r in ok)
    batched, worst = 0, 0.0  # pairs of one adapter in the engine at once: the check is not vacuous
    for i, (s1, e1, m1) in enumerate(windows):
        for s2, e2, m2 in windows[i + 1 :]:
            if s2 >= e1:
                break
            batched += m1 == m2 and min(e1, e2) - s2 > OVERLAP_S
            worst = max(worst, min(e1, e2) - s2) if m1 != m2 else worst
            assert m1 == m2 or min(e1, e2) - s2 <= OVERLAP_S, ((s1, e1, m1), (s2, e2, m2))
    assert batched > 0
    waited = [float(r["engine_queue_s"]) for r in ok]
    assert max(waited) > 0.2, waited  # requests waited for the slot while the other adapter ran

    # the engine's page said so: one slot, and requests deferred for it
    page = (w.path / "server_metrics.csv").read_text()
    assert "vllm:lora_requests_info" in page and "max_lora=1" in page
    deferred = [
        line for line in page.splitlines() if "waiting_by_reason" in line and "reason=deferred" in line
    ]
    assert any(float(line.rsplit(",", 1)[1]) > 0 for line in deferred), deferred[:5]

    summary = api.analyze(api.load_run(w.path), parse_slo("chat"), include_startup=True).summary
    doc = json.loads(summary.to_json())
    models = {m["name"]: m for m in doc["models"]["by_model"]}
    assert set(models) == set(ADAPTERS)
    assert sum(m["requests"] for m in models.values()) == len(w.rows)
    for name, m in models.items():
        assert m["requests"] == sum(1 for r in w.rows if r["model"] == name)
    assert "## Models" in api.summary_markdown(summary)
    record_figures("lora", {"rows": len(ok), "per_adapter": {n: models[n]["requests"] for n in ADAPTERS},
                            "max_queue_s": round(max(waited), 3), "worst_overlap_s": round(worst, 4),
                            "ttft_p95_s": {n: models[n]["ttft_s"]["p95"] for n in ADAPTERS}})  # fmt: skip
