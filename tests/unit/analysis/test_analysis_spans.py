"""analysis/spans.py: the engine's spans joined with the rows, the decomposition and the share rule.

A copy of tests/fixtures/run_small with a server_spans.csv written here (the receiver's columns),
whose figures are chosen so every expected value below is worked out by hand in the comments.
"""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from analysis import api
from analysis.render import spans as render
from analysis.spans import attribute, per_request, shares
from core.slo import PROFILES
from loadgen.monitors.spanrows import SPAN_COLUMNS, client_request_id

ROOT = Path(__file__).resolve().parents[3]
SMALL = ROOT / "tests" / "fixtures" / "run_small"
# request id → (queue, prefill, decode, ttft, e2e) as the engine reported them (seconds)
SPANS = {
    "chatcmpl-small-0001": (0.02, 0.05, 0.8, 0.08, 0.95),  # client: ttft 0.1, e2e 1.0, 10 tokens
    "chatcmpl-small-0002": (0.05, 0.1, 1.7, 0.19, 1.9),  # client: 0.2, 2.0, 10 tokens
    "chatcmpl-small-0003": (0.0, 0.2, 0.0, 0.25, 0.26),  # two spans for one id: ambiguous
    "cmpl-small-0003-0": (0.0, 0.2, 0.0, 0.25, 0.26),
    "chatcmpl-small-0004": (0.0, 0.01, 0.0, 0.02, 0.03),  # the client saw http_429: failed with a span
    "chatcmpl-small-0005": (0.3, 0.05, 3.5, 0.38, 3.9),  # client: 0.4, 4.0, 10 tokens
    "chatcmpl-small-0006": (0.5, 0.05, 0.8, 0.58, 1.45),  # client: 0.6, 1.5, 4 tokens
    "chatcmpl-small-0007": (0.1, 0.3, 1.9, 0.45, 2.4),  # client: 0.5, 2.5, 5 tokens
    "chatcmpl-other-0001": (0.0, 0.1, 0.1, 0.1, 0.2),  # another client's request
}  # small-0009 (completed) has no span: unjoined


def write_spans(run: Path, spans: dict[str, tuple[float, ...]]) -> None:
    with open(run / "server_spans.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=SPAN_COLUMNS)
        w.writeheader()
        for rid, (q, p, d, ttft, e2e) in spans.items():
            row = dict.fromkeys(SPAN_COLUMNS, "")
            row.update(request_id=rid, x_request_id=client_request_id(rid), span_name="llm_request",
                       queue_s=q, prefill_s=p, decode_s=d, ttft_s=ttft, e2e_s=e2e)  # fmt: skip
            w.writerow(row)


def small_copy(tmp_path: Path) -> Path:
    """A fresh copy of run_small (without its summaries) to add server timing to."""
    run = tmp_path / "run_small"
    shutil.copytree(SMALL, run, ignore=shutil.ignore_patterns("summary*.json"))
    return run


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    run = small_copy(tmp_path)
    write_spans(run, SPANS)
    return run


def analyzed(run: Path):
    r = api.load_run(run)
    return r, api.analyze(r, PROFILES["chat"]).summary


def test_join_counts_every_row_once_and_guesses_nothing(run_dir: Path) -> None:
    _, s = analyzed(run_dir)
    t = s.server_timing
    assert t is not None and t.spans == 9 and t.ok == 7
    assert (t.joined, t.unjoined, t.ambiguous) == (5, 1, 1)  # 1,2,5,6,7 | 9 | 3
    assert t.joined + t.unjoined + t.ambiguous == t.ok
    assert (t.failed_with_span, t.spans_without_row) == (1, 1)
    assert t.joined_share == pytest.approx(5 / 7)
    j = json.loads(s.to_json())["server_timing"]
    assert j["joined"] == 5 and j["steps"][1]["label"] == "2 users"


def test_parts_add_up_to_the_client_latency_and_server_parts_are_the_spans(run_dir: Path) -> None:
    r = api.load_run(run_dir)
    f = per_request(r)
    assert f is not None and list(f["request_id"])[:2] == ["small-0001", "small-0002"]
    assert list(f[f["joined"] & ~f["ok"]]["request_id"]) == [
        "small-0004"
    ]  # failed, yet the engine reported it
    j = f[f["joined"] & f["ok"]]
    assert list(j["request_id"]) == ["small-0001", "small-0002", "small-0005", "small-0006", "small-0007"]
    e2e = (
        j["client_remainder_s"]
        + j["server_other_s"]
        + j["server_queue_s"]
        + j["server_prefill_s"]
        + j["server_decode_s"]
    )
    ttft = (
        j["client_ttft_remainder_s"] + j["server_ttft_other_s"] + j["server_queue_s"] + j["server_prefill_s"]
    )
    assert np.allclose(e2e, j["e2e_s"], atol=1e-12) and np.allclose(ttft, j["ttft_s"], atol=1e-12)
    first = j.iloc[0]  # small-0001: client 0.1 / 1.0 against the span's 0.08 / 0.95
    assert first["client_ttft_remainder_s"] == pytest.approx(0.02)
    assert first["client_remainder_s"] == pytest.approx(0.05)
    assert first["server_other_s"] == pytest.approx(0.95 - 0.02 - 0.05 - 0.8)
    assert f[~f["joined"]]["server_queue_s"].isna().all()


def test_mean_decomposition_per_run_and_step(run_dir: Path) -> None:
    _, s = analyzed(run_dir)
    t = s.server_timing
    assert t.e2e.n == 5 and t.e2e.total_s == pytest.approx((1.0 + 2.0 + 4.0 + 1.5 + 2.5) / 5)
    assert t.e2e.parts_s["queue"] == pytest.approx((0.02 + 0.05 + 0.3 + 0.5 + 0.1) / 5)
    assert sum(t.e2e.parts_s.values()) == pytest.approx(t.e2e.total_s)
    assert sum(t.ttft.parts_s.values()) == pytest.approx(t.ttft.total_s) and "decode" not in t.ttft.parts_s
    s0, s1 = t.steps
    assert (s0.ok, s0.joined, s1.ok, s1.joined) == (3, 2, 4, 3)
    assert s1.ttft.parts_s["queue"] == pytest.approx((0.3 + 0.5 + 0.1) / 3)


def test_misses_go_to_the_component_over_its_share(run_dir: Path) -> None:
    _, s = analyzed(run_dir)
    t = s.server_timing
    # 4 requests within the TTFT limit < MIN_REFERENCE: the shares come from step 0 (small-0001/0002):
    # mean TTFT 0.15 = client 0.015 + engine other 0.025 + queue 0.035 + prefill 0.075.
    sh = {x.metric: x for x in t.shares}
    assert sh["ttft"].reference == "the lowest load step's requests" and sh["ttft"].n == 2
    assert sh["ttft"].fractions == pytest.approx(
        {"client": 0.1, "engine_other": 1 / 6, "queue": 0.7 / 3, "prefill": 0.5}
    )
    # small-0006 (TTFT 0.6): queue 0.5 against a share of 0.117 s of the 0.5 s limit → queue.
    ttft, tpot = t.misses
    assert (ttft.metric, ttft.missed, ttft.by_component, ttft.top_share) == ("ttft", 1, {"queue": 1}, 1.0)
    # TPOT > 250 ms: small-0005, 0006, 0007, each mostly decode beyond its 93 % share.
    assert (tpot.judged, tpot.missed, tpot.by_component) == (5, 3, {"decode": 3})
    assert [m.missed for m in t.steps[0].misses] == [0, 0]
    assert render.headline(t) == "100% of the TPOT misses at 2 users were decode (3 of 3)."
    # the console's line: the five joined requests' mean TTFT 0.36 s = client (0.02 + 0.01 + 0.02 + 0.02 +
    # 0.05) / 5 + engine other 0.032 + queue 0.194 + prefill 0.11
    assert render.console_line(t) == (
        "where the time went (engine spans): TTFT 360 ms = client 24.0 + engine other 32.0 + queue 194 + "
        "prefill 110 ms; 100% of the TPOT misses at 2 users were decode (3 of 3)."
    )


def test_share_rule_picks_the_excess_not_the_largest_part() -> None:
    # Reference: 20 requests of 1 s, 0.9 decode + 0.1 client; limit 1 s → shares 0.9 s and 0.1 s.
    # The miss (1.3 s): decode 0.95 (+0.05 over its share), client 0.35 (+0.25): the client's.
    total = np.array([1.0] * 20 + [1.3])
    parts = {"client": np.array([0.1] * 20 + [0.35]), "decode": np.array([0.9] * 20 + [0.95])}
    every = np.ones(21, dtype=bool)
    sh = shares("e2e", 1.0, every, every, total, parts)
    assert sh.reference == "requests within the limit" and sh.n == 20
    assert sh.fractions == pytest.approx({"client": 0.1, "decode": 0.9})
    m = attribute(every, total, parts, sh, "e2e", 1.0)
    assert (m.judged, m.missed, m.by_component, m.top) == (21, 1, {"client": 1}, "client")


def test_without_spans_the_section_says_how_to_turn_them_on(tmp_path: Path) -> None:
    run = small_copy(tmp_path)
    _, s = analyzed(run)
    assert s.server_timing is None and json.loads(s.to_json())["server_timing"] is None
    md = "\n".join(render.markdown(s))
    assert "## Where the time went" in md and "--otlp-listen" in md and "--otlp-traces-endpoint" in md
    write_spans(run, {})  # the receiver ran, nothing came
    _, s = analyzed(run)
    assert (
        s.server_timing.spans == 0
        and s.server_timing.unjoined == 7
        and "--otlp-listen" in "\n".join(render.markdown(s))
    )


def test_a_broken_span_file_is_a_warning_not_a_failure(run_dir: Path) -> None:
    (run_dir / "server_spans.csv").write_text("request_id,queue_s\nx,1\n")
    _, s = analyzed(run_dir)
    t = s.server_timing
    assert t.spans == 0 and t.warnings and "missing column(s)" in t.warnings[0]
    assert t.warnings[0] in "\n".join(render.markdown(s))
