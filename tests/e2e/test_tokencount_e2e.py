"""End to end: output tokens where the server states no count (`--stream-usage off`) and its chunks
carry several tokens (the simulated engine decoding speculatively streams a step's tokens in one
event). Without `--tokenizer` the rows hold the chunk counts and the report says what that costs;
with one whose count is the engine's (tests/support/simtokenizer.py), every answer's tokens are
exactly what the engine generated, as its trace says request by request."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from analysis import api
from core.slo import parse_slo
from tests.e2e.test_apis_e2e import SHORT, rows_and_trace
from tests.e2e.test_spans_e2e import locust
from tests.support import simtokenizer

pytestmark = [pytest.mark.e2e]
CAP = 24
SPEC = json.dumps({"num_speculative_tokens": 3, "acceptance": 0.6})


@pytest.mark.parametrize("counted", [True, False], ids=["tokenizer", "chunks"])
def test_output_tokens_without_a_server_count(counted: bool, sim_server, tmp_path: Path) -> None:
    trace = tmp_path / "trace.jsonl"
    sim = sim_server("--speculative-config", SPEC, "--trace", str(trace))
    extra = ["--tokenizer", str(simtokenizer.write(tmp_path / "tokenizer.json"))] if counted else []
    out = locust(sim.url, tmp_path / "res", "--stream-usage", "off", "--ignore-eos", "--max-tokens", str(CAP),
                 "--users", "4", "-t", "6s", "--stop-timeout", "5", *extra)  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    folder, pairs = rows_and_trace(tmp_path / "res", trace)
    assert len(pairs) > 10
    rows = [r for r, _ in pairs]
    generated = [t["output_tokens"] for _, t in pairs]
    chunks = [int(r["n_chunks"]) for r in rows]
    assert sum(chunks) < 0.7 * sum(generated)  # a step's tokens in one event: ~2.2 a chunk
    s = api.analyze(api.load_run(folder), parse_slo("chat")).summary
    uncounted = [w for w in s.warnings if "no token count from the server" in w]
    per_chunk = [w for w in s.warnings if "tokens per chunk" in w]
    meta = json.loads((folder / "run.json").read_text())
    if counted:
        assert {r["tokens_source"] for r in rows} == {"tokenizer"}
        assert [int(r["output_tokens"]) for r in rows] == generated
        assert meta["tokenizer"] == str(tmp_path / "tokenizer.json")
        assert not uncounted and len(per_chunk) == 1  # now that tokens are counted, the chunks show
    else:
        assert {r["tokens_source"] for r in rows} == {"chunks"}
        assert [int(r["output_tokens"]) for r in rows] == chunks
        assert meta["tokenizer"] is None
        assert len(uncounted) == 1 and "completed requests had no token count" in uncounted[0]
        assert not per_chunk  # a chunk count cannot show tokens per chunk


def test_a_reasoning_models_thinking_is_counted_too(sim_server, tmp_path: Path) -> None:
    """A reasoning model (the engine's `reasoning` profile, short thoughts) streaming a step's tokens in
    one event: the thinking's text is counted as well as the answer's, each row's output and reasoning
    tokens the engine's own. (The chat route: the Messages and Responses APIs state usage always.)"""
    config, trace = tmp_path / "short.yaml", tmp_path / "trace.jsonl"
    config.write_text(SHORT)
    sim = sim_server("--config", str(config), "--speculative-config", SPEC, "--trace", str(trace))
    tok = simtokenizer.write(tmp_path / "tokenizer.json")
    out = locust(sim.url, tmp_path / "res", "--stream-usage", "off", "--tokenizer", str(tok),
                 "--max-tokens", "200", "--users", "4", "-t", "6s", "--stop-timeout", "5")  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    _, pairs = rows_and_trace(tmp_path / "res", trace)
    assert len(pairs) > 10 and sum(t["reasoning_tokens"] > 0 for _, t in pairs) > 5
    assert sum(int(r["n_chunks"]) for r, _ in pairs) < 0.7 * sum(t["output_tokens"] for _, t in pairs)
    for r, t in pairs:
        assert r["tokens_source"] == "tokenizer"
        assert (int(r["output_tokens"]), int(r["reasoning_tokens"])) == (
            t["output_tokens"],
            t["reasoning_tokens"],
        )
