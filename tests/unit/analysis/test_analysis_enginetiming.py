"""analysis/enginetiming.py: where the time went from the server's own timing in its stream (no spans).

A copy of tests/fixtures/run_small whose rows are given engine_prefill_s / engine_decode_s /
engine_load_s here (as an Ollama run's would be), chosen so the expected values are worked out by
hand in the comments. Client figures (run_small): small-0001 TTFT 0.1 / E2E 1.0 / 10 tokens,
0002 0.2 / 2.0 / 10, 0003 0.3 / 0.3 / 1, 0005 0.4 / 4.0 / 10, 0006 0.6 / 1.5 / 4, 0007 0.5 / 2.5 / 5,
0009 0.25 / 1.25 / 11; 0004, 0008, 0010 failed.
"""

from __future__ import annotations

import csv
import html
import json
from pathlib import Path

import numpy as np
import pytest

from analysis import api
from analysis.render import spans as render
from analysis.render.tables import lead_text
from analysis.render.timingtext import breaks_because
from analysis.spans import per_request
from tests.unit.analysis.test_analysis_spans import SPANS, analyzed, small_copy, write_spans

# request id → (prefill, decode, load) as the server stated them; "" = not stated
TIMING = {
    "small-0001": (0.05, 0.85, 0.01),  # waiting: TTFT 0.1 − 0.01 − 0.05 = 0.04; E2E 0.09
    "small-0002": (0.1, 1.75, 0.02),  # waiting 0.08; E2E 0.13
    "small-0003": (0.29, 0.0, ""),  # no load stated: 0; waiting 0.01
    "small-0005": (0.05, 3.55, 0.3),  # waiting 0.05; E2E 0.1
    "small-0006": (0.05, 0.85, 0.0),  # waiting 0.55: the TTFT miss (0.6 > 0.5), a slot's queue
    "small-0007": (0.4, 1.95, 0.0),  # waiting 0.1; E2E 0.15
}  # small-0009 (completed) states none: not joined


def write_timing(run: Path, timing: dict[str, tuple]) -> None:
    """(prefill, decode, load) per request id, or (prefill, decode, load, queue): the run then gains
    the queue column (run_small was recorded before it)."""
    path = run / "requests.csv"
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    fields = list(rows[0])
    queued = any(len(v) == 4 for v in timing.values())
    if queued and "engine_queue_s" not in fields:
        fields.append("engine_queue_s")
    for r in rows:
        p, d, load, *queue = timing.get(r["request_id"], ("", "", "", ""))
        r.update(engine_prefill_s=p, engine_decode_s=d, engine_load_s=load)
        if queued:
            r["engine_queue_s"] = queue[0] if queue else ""
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=fields, lineterminator="\n")
        w.writeheader()
        w.writerows(rows)


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    run = small_copy(tmp_path)
    write_timing(run, TIMING)
    return run


def test_rows_with_the_servers_timing_join_and_nothing_else_does(run_dir: Path) -> None:
    _, s = analyzed(run_dir)
    t = s.server_timing
    assert t is not None and t.source == "stream" and t.components == ("waiting", "load", "prefill", "decode")
    assert (t.spans, t.ok, t.joined, t.unjoined, t.ambiguous) == (6, 7, 6, 1, 0)
    assert (t.failed_with_span, t.spans_without_row) == (0, 0)
    j = json.loads(s.to_json())["server_timing"]
    assert j["source"] == "stream" and j["components"] == ["waiting", "load", "prefill", "decode"]


def test_parts_add_up_to_the_client_latency(run_dir: Path) -> None:
    f = per_request(api.load_run(run_dir))
    assert f is not None and list(f[~f["joined"] & f["ok"]]["request_id"]) == ["small-0009"]
    j = f[f["joined"]]
    assert list(j["request_id"]) == [*TIMING]
    ttft = j["waiting_ttft_s"] + j["server_load_s"] + j["server_prefill_s"]
    e2e = j["waiting_s"] + j["server_load_s"] + j["server_prefill_s"] + j["server_decode_s"]
    assert np.allclose(ttft, j["ttft_s"], atol=1e-12) and np.allclose(e2e, j["e2e_s"], atol=1e-12)
    by_id = j.set_index("request_id")
    assert by_id.loc["small-0006", "waiting_ttft_s"] == pytest.approx(0.55)
    assert by_id.loc["small-0003", "server_load_s"] == 0.0  # not stated: no load


def test_mean_decomposition_and_misses(run_dir: Path) -> None:
    _, s = analyzed(run_dir)
    t = s.server_timing
    assert t.e2e.n == 6 and sum(t.e2e.parts_s.values()) == pytest.approx(t.e2e.total_s)
    assert t.ttft.parts_s == pytest.approx(
        {"waiting": (0.04 + 0.08 + 0.01 + 0.05 + 0.55 + 0.1) / 6, "load": 0.33 / 6, "prefill": 0.94 / 6}
    )
    # TTFT shares from step 0 (5 requests within 0.5 s < MIN_REFERENCE): 0001-0003, mean TTFT 0.2 =
    # waiting 0.13/3 + load 0.03/3 + prefill 0.44/3.
    sh = {x.metric: x for x in t.shares}
    assert sh["ttft"].n == 3 and sh["ttft"].fractions == pytest.approx(
        {"waiting": 0.13 / 0.6, "load": 0.03 / 0.6, "prefill": 0.44 / 0.6}
    )
    ttft, tpot = t.misses
    assert (ttft.missed, ttft.by_component) == (1, {"waiting": 1})  # 0006: waiting 0.55 vs a 0.108 s share
    assert (tpot.missed, tpot.by_component) == (3, {"decode": 3})  # 0005-0007: decode over its 96 %
    assert render.headline(t) == "100% of the TPOT misses at 2 users were decode (3 of 3)."


def test_what_the_misses_were_where_it_breaks(run_dir: Path) -> None:
    """The report's answer line says what the misses were at the level where the SLO breaks."""
    _, s = analyzed(run_dir)
    t = s.server_timing
    assert breaks_because(t, 2.0) == "there, 100% of the TPOT misses were decode"  # 3 TPOT misses > 1 TTFT
    assert breaks_because(t, 2.0, named=True) == "at 2 users, 100% of the TPOT misses were decode"
    assert breaks_because(t, 1.0) is None  # no miss at 1 user
    assert breaks_because(None, 2.0) is None and breaks_because(t, None) is None
    # run_small met the SLO at no level, and its lowest (1 user) missed nothing: the answer is as it was
    assert lead_text(s) == "Answer: no complete load level was served within chat at 90 %."


def test_the_report_names_its_source(run_dir: Path) -> None:
    _, s = analyzed(run_dir)
    md = "\n".join(render.markdown(s))
    assert f"## {render.STREAM_TITLE}" in md and render.EXPLAIN_STREAM in md
    assert "6 of 7 completed requests carried the server's own timing (85.7 %); 1 without it." in md
    assert "| model load (ms) |" in md and "queue (ms)" not in md
    assert (
        "| prefill (with the slot wait) (ms) |" in md
    )  # a server stating a load is Ollama: its prefill clock
    assert html.escape(render.STREAM_TITLE) in render.html(s, [])
    # the console's line: the run's mean TTFT (0.35 s over the six) split as in the table
    assert render.console_line(s.server_timing) == (
        "where the time went (the server's own timing): TTFT 350 ms = waiting 138 + model load 55.0 + prefill 157 ms; "
        "100% of the TPOT misses at 2 users were decode (3 of 3)."
    )
    assert render.console_line(s.server_timing) in api.console_text(s).splitlines()


def test_without_a_stated_load_there_is_no_load_component(run_dir: Path) -> None:
    """llama-server states prefill and decode only: no column of zeros claims a model load."""
    write_timing(run_dir, {k: (p, d, "") for k, (p, d, _) in TIMING.items()})
    _, s = analyzed(run_dir)
    t = s.server_timing
    assert t.components == ("waiting", "prefill", "decode") and set(t.ttft.parts_s) == {"waiting", "prefill"}
    md = "\n".join(render.markdown(s))
    assert "model load" not in md and "| prefill (ms) |" in md and "slot wait" not in md
    assert sum(t.ttft.parts_s.values()) == pytest.approx(t.ttft.total_s)  # the load went into waiting


# vLLM (--enable-per-request-metrics) and SGLang state their queue apart: (prefill, decode, load, queue)
TIMING_QUEUE = {
    "small-0001": (0.05, 0.85, "", 0.01),  # other: TTFT 0.1 − 0.01 − 0.05 = 0.04
    "small-0002": (0.1, 1.75, "", 0.02),  # other 0.08
    "small-0003": (0.29, 0.0, "", ""),  # no queue stated: 0; other 0.01
    "small-0005": (0.05, 3.55, "", 0.3),  # other 0.05
    "small-0006": (0.05, 0.85, "", 0.5),  # other 0.05: the TTFT miss (0.6 > 0.5) is the queue
    "small-0007": (0.4, 1.95, "", 0.0),  # other 0.1
}


def test_a_stated_queue_is_its_own_component_and_the_rest_is_other(run_dir: Path) -> None:
    """Where the server states its queue (vLLM's queue_time_ms, SGLang's queue_time), a slot's wait is
    no longer in the rest: the rest is `other` (tokenization, network, HTTP) and a miss goes to queue."""
    write_timing(run_dir, TIMING_QUEUE)
    _, s = analyzed(run_dir)
    t = s.server_timing
    assert t.components == ("other", "queue", "prefill", "decode")
    assert t.ttft.parts_s == pytest.approx({"other": 0.33 / 6, "queue": 0.83 / 6, "prefill": 0.94 / 6})
    assert sum(t.e2e.parts_s.values()) == pytest.approx(t.e2e.total_s)
    assert t.parts_of("tpot") == ("other", "decode")
    ttft, _ = t.misses
    assert (ttft.missed, ttft.by_component) == (1, {"queue": 1})
    f = per_request(api.load_run(run_dir)).set_index("request_id")
    assert f.loc["small-0006", "waiting_ttft_s"] == pytest.approx(0.05)
    assert f.loc["small-0003", "server_queue_s"] == 0.0 and np.isnan(f.loc["small-0009", "server_queue_s"])
    md = "\n".join(render.markdown(s))
    assert "| other (tokenization, network, HTTP) (ms) | queue (ms) | prefill (ms) |" in md
    assert "| waiting" not in md and "slot wait" not in md
    assert render.console_line(t) == (
        "where the time went (the server's own timing): TTFT 350 ms = other 55.0 + queue 138 + prefill 157 ms; "
        "100% of the TPOT misses at 2 users were decode (3 of 3)."
    )
    j = json.loads(s.to_json())["server_timing"]
    assert j["components"] == ["other", "queue", "prefill", "decode"]


def test_spans_come_first(run_dir: Path) -> None:
    write_spans(run_dir, SPANS)
    _, s = analyzed(run_dir)
    assert s.server_timing.source == "spans" and "queue" in s.server_timing.components


def test_a_model_load_inside_measured_requests_is_warned(run_dir: Path) -> None:
    _, s = analyzed(run_dir)
    assert not [w for w in s.warnings if "load" in w]  # 0.3 s at most: a runner handed over, not a load
    write_timing(run_dir, {**TIMING, "small-0005": (0.05, 0.8, 2.75)})
    _, s = analyzed(run_dir)
    (w,) = [w for w in s.warnings if "waited for the model to load" in w]
    assert w.startswith("1 measured request waited for the model to load") and "the longest 2.8 s" in w
    assert "keep_alive" in w


def test_an_older_run_without_the_columns_has_no_server_timing(tmp_path: Path) -> None:
    run = small_copy(tmp_path)
    with open(run / "requests.csv", newline="") as fh:
        rows = list(csv.reader(fh))
    keep = [i for i, c in enumerate(rows[0]) if not c.startswith("engine_")]  # the four columns off
    with open(run / "requests.csv", "w", newline="") as fh:
        csv.writer(fh).writerows([[r[i] for i in keep] for r in rows])
    _, s = analyzed(run)
    assert s.server_timing is None and "llama-server" in "\n".join(render.markdown(s))
