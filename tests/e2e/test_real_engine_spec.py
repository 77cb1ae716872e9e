"""Speculative decoding against the real vLLM (CPU): an ngram drafter (`--speculative-config`, K = 3)
that states each request's drafting (`--per-request-spec-decode-metrics summary`), and a step run
through Goodput at temperature 0 (a random-weight model repeats itself, so the drafter finds matches).

What must hold: every completed row carries the engine's draft tokens, accepted tokens and verify
steps, and their sums are the engine's own counters' increase over the run, exactly; the report's
acceptance from the rows and from the counters agree; and vLLM streams a step's tokens in one delta,
so the client receives more than one token per chunk and the report says why.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from itertools import pairwise
from pathlib import Path

import pytest

from analysis import api
from core.slo import parse_slo
from tests.e2e.test_real_engine import REQUIRE_ENV, measured_run, record_figures
from tests.support.real_engine import Engine, skip_unless_available, start_engine, unavailable_reason

pytestmark = [pytest.mark.e2e, pytest.mark.real_engine, pytest.mark.alone]

K = 3
SPEC_COLUMNS = ("spec_draft_tokens", "spec_accepted_tokens", "spec_steps")
SPEC = {"method": "ngram", "num_speculative_tokens": K, "prompt_lookup_max": 3, "prompt_lookup_min": 1}


@pytest.fixture(scope="module")
def drafting() -> Iterator[Engine]:
    skip_unless_available(unavailable_reason(), REQUIRE_ENV)
    flags = ("--speculative-config", json.dumps(SPEC), "--per-request-spec-decode-metrics", "summary")
    eng = start_engine(timeout_s=300, flags=flags)
    try:
        record_figures("speculative_engine", {"startup_s": round(eng.startup_s, 1)})
        yield eng
    finally:
        eng.stop()


def repeating_prompts(path: Path, n: int = 24) -> Path:
    """OpenAI batch JSONL: short prompts that repeat themselves, temperature 0, 32 tokens."""
    words = ("one two three", "red green blue", "north south east west", "alpha beta gamma")
    with open(path, "w") as fh:
        for i in range(n):
            text = " ".join([words[i % len(words)]] * (3 + i % 4))
            body = {"messages": [{"role": "user", "content": text}], "max_tokens": 32, "temperature": 0}
            fh.write(json.dumps({"custom_id": f"r{i}", "body": body}) + "\n")
    return path


def test_the_rows_drafting_is_the_engines_and_the_report_gives_its_acceptance(
    drafting: Engine, tmp_path: Path
) -> None:
    data = repeating_prompts(tmp_path / "repeat.jsonl")
    w = measured_run(drafting, tmp_path / "res", "spec", "--dataset", str(data), "--max-tokens", "32",
                     "--step-interval", "5s", run_s=10, drain_s=30)  # fmt: skip
    ok = w.ok
    assert len(ok) == len(w.rows) >= 10, [
        (r["error"], r["error_detail"]) for r in w.rows if r["ok"] != "true"
    ]
    assert all(r["spec_draft_tokens"] and r["spec_accepted_tokens"] and r["spec_steps"] for r in ok)
    rows = (w.ours("spec_draft_tokens"), w.ours("spec_accepted_tokens"), w.ours("spec_steps"))
    assert rows == (w.d.spec_draft_tokens, w.d.spec_accepted, w.d.spec_drafts)
    assert rows[1] > 0, rows  # the drafter found matches and the model accepted some

    summary = api.analyze(api.load_run(w.path), parse_slo("chat")).summary
    sp = json.loads(summary.to_json())["speculative_decoding"]
    measured = sp["requests"]  # the start-up's requests left out, as everywhere
    assert measured["acceptance_rate"] == pytest.approx(rows[1] / rows[0], abs=0.05)
    assert sp["server_acceptance_rate"] == pytest.approx(rows[1] / rows[0], abs=0.05)
    assert sp["server_acceptance_length"] == pytest.approx(1 + rows[1] / rows[2], abs=0.15)
    # by draft position: a draft token counts only after every earlier one was accepted, so the
    # acceptance never rises with the position; over drafts, the positions add up to the length − 1
    at = sp["server_acceptance_by_position"]
    assert len(at) == K and all(a >= b for a, b in pairwise(at)), at
    assert sum(at) == pytest.approx(sp["server_acceptance_length"] - 1)
    # a step's verified and accepted tokens arrive in one delta: more than one token a chunk
    assert sp["tokens_per_chunk"] > 1.0
    if sp["tokens_per_chunk"] >= 1.5:
        (line,) = [x for x in summary.warnings if "tokens per chunk" in x]
        assert "decodes speculatively" in line
    assert "## Speculative decoding" in api.summary_markdown(summary)
    record_figures("speculative", {"rows": len(ok), "drafted_accepted_steps_rows": list(rows),
                                   "counters": [w.d.spec_draft_tokens, w.d.spec_accepted, w.d.spec_drafts],
                                   "acceptance": measured["acceptance_rate"], "by_position": at,
                                   "tokens_per_chunk": sp["tokens_per_chunk"]})  # fmt: skip


def test_a_mix_splits_the_drafting_by_class_and_the_classes_add_up_to_the_engines(
    drafting: Engine, tmp_path: Path
) -> None:
    """Two tenants at once — prompts that repeat themselves and random token prompts — against the
    same drafter: each class's stated figures are its own rows' sums, the classes' rows add up to the
    engine's counters exactly, and the report's run figure is the classes' pooled."""
    data = repeating_prompts(tmp_path / "repeat.jsonl")
    mix = f"{data}:50%:name=copy,random:input=uniform(24,48),output=32:50%:name=prose"
    w = measured_run(drafting, tmp_path / "res", "specmix", "--mix", mix, "--max-tokens", "32",
                     "--step-interval", "5s", run_s=10, drain_s=30)  # fmt: skip
    ok = w.ok
    assert len(ok) == len(w.rows) >= 10 and {r["tenant"] for r in ok} == {"copy", "prose"}, [
        (r["tenant"], r["error"], r["error_detail"]) for r in w.rows if r["ok"] != "true"
    ]
    rows = (w.ours("spec_draft_tokens"), w.ours("spec_accepted_tokens"), w.ours("spec_steps"))
    assert rows == (w.d.spec_draft_tokens, w.d.spec_accepted, w.d.spec_drafts)

    # the start-up's requests kept, so that every completed row is in the figures: exact sums
    summary = api.analyze(api.load_run(w.path), parse_slo("chat"), include_startup=True).summary
    sp = json.loads(summary.to_json())["speculative_decoding"]
    assert [c["name"] for c in sp["classes"]] == ["copy", "prose"]
    for c in sp["classes"]:
        mine = [r for r in ok if r["tenant"] == c["name"]]
        got = c["requests"]
        assert (got["requests"], got["draft_tokens"], got["accepted_tokens"], got["steps"]) == (
            len(mine),
            *(sum(int(r[col]) for r in mine) for col in SPEC_COLUMNS),
        ), c["name"]
        # an ngram drafter may find no match at all in a class's text and draft nothing: then no rate
        # (a CI run here: random-token prompts, 0 draft tokens), never a made-up 0 %
        rate = got["accepted_tokens"] / got["draft_tokens"] if got["draft_tokens"] else None
        assert got["acceptance_rate"] == pytest.approx(rate)
    run = sp["requests"]
    assert (run["draft_tokens"], run["accepted_tokens"], run["steps"]) == rows  # = the engine's counters
    record_figures("speculative_mix", {c["name"]: {"requests": c["requests"]["requests"],
                                                   "acceptance": c["requests"]["acceptance_rate"],
                                                   "tokens_per_chunk": c["tokens_per_chunk"]}
                                       for c in sp["classes"]})  # fmt: skip
