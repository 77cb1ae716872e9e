"""Reasoning and tool calls in the analysis: TTFO in the SLO rule, the Reasoning section only for runs
that reasoned, TTFO and reasoning-token columns in comparisons only where present."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from analysis import api
from analysis.metrics import good_mask
from analysis.render.html import render
from analysis.render.markdown import console_text, summary_md
from core.record import COLUMNS, RequestRecord
from core.slo import parse_slo

# (ttft, ttfo, e2e, output tokens, reasoning tokens, tool_ttft, tool argument chunks, ok)
ROWS = [
    (0.10, 1.10, 3.0, 120, 100, None, None, True),
    (0.20, 2.20, 4.0, 220, 200, None, None, True),
    (0.10, 0.10, 2.0, 50, 0, None, None, True),  # answered without reasoning: TTFO = TTFT
    (0.30, 3.30, 5.0, 330, 300, 3.30, 6, True),  # reasoned, then called a tool
    (0.20, None, 2.0, 64, 64, None, None, True),  # cut while reasoning: no answer, no TTFO
    (None, None, 1.0, None, None, None, None, False),  # failed
]


def write_run(folder: Path, rows: list[tuple], name: str, reasoning: bool = True) -> Path:
    folder.mkdir(parents=True)
    with open(folder / "requests.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(COLUMNS)
        for i, (ttft, ttfo, e2e, out, rtok, tool, args, ok) in enumerate(rows):
            rec = RequestRecord(run_id=name, request_id=f"r{i}", dataset="chat", t_start_unix=1000.0 + i)
            rec.ttft_s, rec.e2e_s, rec.output_tokens, rec.ok = ttft, e2e, out, ok
            rec.itl_s = [0.01, 0.02] if ok else []
            rec.error = "" if ok else "http_500"
            if reasoning:
                rec.ttfo_s, rec.reasoning_tokens = ttfo, rtok
                rec.tool_ttft_s, rec.tool_call_tokens = tool, args
            w.writerow(rec.row())
    meta = {
        "name": name,
        "run_id": name,
        "dataset": "chat",
        "api": "chat",
        "slo": parse_slo("chat").to_dict(),
    }
    (folder / "run.json").write_text(json.dumps(meta))
    return folder


@pytest.fixture
def reasoned(tmp_path: Path):
    return api.analyze(api.load_run(write_run(tmp_path / "r", ROWS, "r")), parse_slo("chat"))


def test_reasoning_figures(reasoned) -> None:
    r = reasoned.summary.reasoning
    assert r.requests == 4 and r.share == pytest.approx(4 / 5)
    assert r.ttfo.n == 4 and r.ttfo.p50 == pytest.approx(np.percentile([1.1, 2.2, 0.1, 3.3], 50))
    assert r.reasoning_time.n == 3 and r.reasoning_time.mean == pytest.approx(2.0)  # the cut one has no TTFO
    assert r.reasoning_tokens.mean == pytest.approx(166.0)
    assert r.token_share == pytest.approx(664 / 784)
    t = reasoned.summary.tool_calls
    assert (t.requests, t.tool_ttft.p50, t.argument_chunks.max) == (1, pytest.approx(3.3), 6)
    doc = json.loads(reasoned.summary.to_json())
    assert doc["reasoning"]["ttfo_s"]["max"] == pytest.approx(3.3) and doc["run"]["api"] == "chat"
    assert doc["tool_calls"]["requests"] == 1


def test_reasoning_sections_only_when_a_request_reasoned(reasoned, tmp_path: Path) -> None:
    md, page = summary_md(reasoned.summary), render(reasoned.summary, {}, [])
    assert "## Reasoning" in md and "reasoning time (TTFO − TTFT)" in md and "## Tool calls" in md
    assert "<h2>Reasoning</h2>" in page and "<h2>Tool calls</h2>" in page
    assert "reasoning: TTFO p50" in console_text(reasoned.summary)
    plain = api.analyze(
        api.load_run(write_run(tmp_path / "p", ROWS, "p", reasoning=False)), parse_slo("chat")
    )
    assert plain.summary.reasoning is None and plain.summary.tool_calls is None
    assert "Reasoning" not in summary_md(plain.summary) and "Reasoning" not in render(plain.summary, {}, [])


def test_ttfo_limit_in_the_vectorized_rule_equals_the_live_rule(reasoned) -> None:
    df = reasoned.run.df
    slo = parse_slo("ttft=1s,ttfo=2.5s")
    live = [
        bool(ok) and slo.is_good(*(None if np.isnan(x) else float(x) for x in (tt, tp, e2, fo)))
        for ok, tt, tp, e2, fo in zip(
            df["ok"], df["ttft_s"], df["tpot_s"], df["e2e_s"], df["ttfo_s"], strict=True
        )
    ]
    assert good_mask(df, slo).tolist() == live == [True, True, True, False, False, False]
    checks = api.analyze(reasoned.run, parse_slo("p50:ttfo=2s,attain=10%")).summary.percentile_checks
    assert checks[0].metric == "ttfo" and checks[0].value_s == pytest.approx(
        np.percentile([1.1, 2.2, 0.1, 3.3], 50)
    )


def test_comparison_shows_ttfo_columns_only_where_present(reasoned, tmp_path: Path) -> None:
    plain = api.analyze(
        api.load_run(write_run(tmp_path / "p", ROWS, "p", reasoning=False)), parse_slo("chat")
    )
    c = api.compare([reasoned.summary, plain.summary], parse_slo("chat"))
    table = api.comparison_table_md(c.rows)
    assert "TTFO p95 (ms)" in table and "reasoning tokens" in table
    assert "TTFO" not in api.comparison_table_md(api.compare([plain.summary], parse_slo("chat")).rows)
    fields, records = api.comparison_csv_records(c.rows)
    assert "ttfo_p95_s" in fields and records[1]["ttfo_p95_s"] is None
