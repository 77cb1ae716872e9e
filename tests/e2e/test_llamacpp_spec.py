"""Speculative decoding against the real llama-server: a drafter (the tiny model drafting for itself)
with llama.cpp's synthetic acceptance (`--spec-synth-rates`, its benchmarking switch: each draft
position accepted with a set probability, so the truth is known), and a step run through Goodput.

What must hold: every completed row states the server's draft and accepted tokens (its `timings`),
and their sums are the server's own counters' increase over the run, exactly; the report's
acceptance (rows and counters) is the synthetic one within sampling noise, and so is each draft
position's (its per-position counter); llama-server streams each
token in its own event even when a step yields several, so its chunks say nothing of the acceptance
and no chunking warning is raised.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from analysis import api
from core.slo import parse_slo
from tests.e2e.test_llamacpp_engine import REQUIRE_ENV, goodput_run, save
from tests.support.llamacpp_engine import llamacpp_dir, start_llamacpp, unavailable_reason
from tests.support.real_engine import Engine, skip_unless_available

pytestmark = [pytest.mark.e2e, pytest.mark.llamacpp, pytest.mark.alone]

RATES = (0.8, 0.5, 0.3)  # unconditional acceptance of draft positions 0, 1, 2 (llama.cpp's synthetic mode)
ACCEPTED_PER_DRAFT = sum(RATES)  # 1.6: a verify step yields 2.6 tokens on average


@pytest.fixture(scope="module")
def drafting() -> Iterator[Engine]:
    skip_unless_available(unavailable_reason(), REQUIRE_ENV)
    model = str(llamacpp_dir() / "model" / "tiny-llama.gguf")
    flags = ("-md", model, "--spec-type", "draft-simple", "--spec-draft-n-max", str(len(RATES)),
             "--spec-synth-rates", ",".join(map(str, RATES)))  # fmt: skip
    eng = start_llamacpp(timeout_s=120, flags=flags)
    try:
        yield eng
    finally:
        eng.stop()


def test_the_rows_speculative_counts_are_the_servers_and_the_report_gives_its_acceptance(
    drafting: Engine, tmp_path: Path
) -> None:
    w = goodput_run(drafting, tmp_path / "res", "spec",
                    "--dataset", "random:input=uniform(50,100),output=48", "--max-tokens", "48",
                    "--step-interval", "5s", run_s=10, drain_s=30)  # fmt: skip
    w.assert_all_ok()
    ok = w.ok
    assert len(ok) >= 10 and {r["finish_reason"] for r in ok} == {"length"}
    assert all(r["spec_draft_tokens"] and r["spec_accepted_tokens"] for r in ok)
    assert {r["spec_steps"] for r in ok} == {""}  # llama-server states no step count
    drafted, accepted = w.ours("spec_draft_tokens"), w.ours("spec_accepted_tokens")
    assert (drafted, accepted) == (w.d.spec_draft_tokens, w.d.spec_accepted)
    assert w.ours("output_tokens") == w.d.tokens_predicted == 48 * len(ok)

    summary = api.analyze(api.load_run(w.run_dir), parse_slo("chat")).summary
    s = json.loads(summary.to_json())
    sp = s["speculative_decoding"]
    measured = sp["requests"]  # the start-up's requests (each user's first) left out, as everywhere
    assert measured["requests"] < len(ok) and measured["draft_tokens"] < drafted
    assert measured["acceptance_rate"] == pytest.approx(accepted / drafted, abs=0.03)
    # the synthetic acceptance, within noise (drafts near an answer's end are cut short)
    assert sp["requests"]["acceptance_rate"] == pytest.approx(ACCEPTED_PER_DRAFT / len(RATES), abs=0.08)
    length = 1 + w.d.spec_accepted / w.d.spec_drafts
    assert length == pytest.approx(1 + ACCEPTED_PER_DRAFT, abs=0.3)
    assert sp["server_acceptance_rate"] == pytest.approx(accepted / drafted, abs=0.05)  # the run's window
    # by draft position, from its labelled counter over its drafts: the synthetic rates themselves, and
    # together the accepted tokens per verify step
    by_pos = sp["server_acceptance_by_position"]
    assert by_pos == pytest.approx(list(RATES), abs=0.08)
    assert sum(by_pos) == pytest.approx(sp["server_acceptance_length"] - 1, abs=1e-6)
    assert sp["tokens_per_chunk"] == pytest.approx(1.0, abs=0.05)  # one token an event, speculating or not
    assert not [x for x in s["warnings"] if "tokens per chunk" in x]
    assert [st["step"] for st in sp["steps"]] == [0, 1]
    assert "## Speculative decoding" in api.summary_markdown(summary)
    save("speculative", {"rows": len(ok), "drafted_accepted_rows": [drafted, accepted],
                         "drafted_accepted_counters": [w.d.spec_draft_tokens, w.d.spec_accepted],
                         "acceptance": sp["requests"]["acceptance_rate"], "length_counters": round(length, 3),
                         "by_position": [round(x, 3) for x in by_pos]})  # fmt: skip
