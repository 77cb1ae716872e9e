"""End to end: Goodput against the simulated engine decoding speculatively, whose acceptance is set.

The engine drafts K = 3 tokens a step and accepts each next one with probability p = 0.6 (a run of
acceptances, so a step accepts E[a] = p + p² + p³ = 1.176 tokens: 39.2 % of its draft, 2.176 tokens a
step), and states each request's drafting as vLLM, SGLang and llama-server do. Through each of those
routes the rows' sums must be the engine's own counters' increase over the run, exactly, and the
report's acceptance the setting's within sampling noise. vLLM and SGLang stream a step's tokens in
one event; llama-server each token in its own, as the real one does.
"""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from analysis import api
from core.slo import parse_slo
from tests.e2e.test_spans_e2e import locust, only_run

pytestmark = [pytest.mark.e2e]
K, P = 3, 0.6
ACCEPTED = sum(P**i for i in range(1, K + 1))  # accepted draft tokens per verify step
NAMES = {"vllm:spec_decode_num_draft_tokens_total": 0, "vllm:spec_decode_num_accepted_tokens_total": 1,
         "vllm:spec_decode_num_drafts_total": 2}  # fmt: skip


def counters(url: str) -> list[float]:
    """The engine's draft tokens, accepted tokens and drafts (verify steps) so far."""
    with urllib.request.urlopen(url + "/metrics", timeout=10) as r:
        text = r.read().decode()
    out = [0.0, 0.0, 0.0]
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name in NAMES:
                out[NAMES[s.name]] += s.value
    return out


@pytest.mark.parametrize("which", ["chat", "sglang", "llamacpp"])
def test_rows_state_the_engines_drafting_and_the_report_its_acceptance(
    which: str, sim_server, tmp_path: Path
) -> None:
    sim = sim_server("--speculative-config", json.dumps({"num_speculative_tokens": K, "acceptance": P}),
                     "--per-request-spec-decode-metrics", "summary")  # fmt: skip
    before = counters(sim.url)
    out = locust(sim.url, tmp_path / "res", "--api", which, "--step-users", "4", "--step-interval", "4s",
                 "-t", "8s", "--max-tokens", "48", "--stop-timeout", "5")  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    d = [a - b for a, b in zip(counters(sim.url), before, strict=True)]
    run = api.load_run(only_run(tmp_path / "res"))
    df = run.df
    ok = df[df["ok"]]
    assert len(ok) == len(df) > 20
    assert [ok["spec_draft_tokens"].sum(), ok["spec_accepted_tokens"].sum()] == d[:2]
    if which == "llamacpp":  # llama-server states no step count
        assert ok["spec_steps"].isna().all()
    else:
        assert ok["spec_steps"].sum() == d[2]

    s = api.analyze(run, parse_slo("chat")).summary
    sp = s.speculative
    assert sp.requests.acceptance_rate == pytest.approx(ACCEPTED / K, abs=0.04)
    assert sp.server_acceptance_rate == pytest.approx(ACCEPTED / K, abs=0.04)
    assert sp.server_acceptance_length == pytest.approx(1 + ACCEPTED, abs=0.12)
    # the i-th draft token is accepted when it and all before it are: p^i
    assert sp.server_acceptance_by_position == pytest.approx([P**i for i in range(1, K + 1)], abs=0.05)
    assert sum(sp.server_acceptance_by_position) == pytest.approx(sp.server_acceptance_length - 1)
    if which != "llamacpp":
        assert sp.requests.acceptance_length == pytest.approx(1 + ACCEPTED, abs=0.12)
    said = [w for w in s.warnings if "tokens per chunk" in w]
    if which == "llamacpp":  # llama-server sends each token on its own, a step's accepted ones too
        assert sp.tokens_per_chunk == pytest.approx(1.0) and not said
    else:  # one event a step: about 2.2 tokens a chunk (an answer's last step is cut short)
        assert sp.tokens_per_chunk == pytest.approx(1 + ACCEPTED, abs=0.3)
        assert len(said) == 1 and "decodes speculatively" in said[0]
    assert [st.step for st in sp.steps] == [0, 1]
