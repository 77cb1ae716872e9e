"""Speculative decoding on synthetic runs whose truth is known (analysis/specdecode.py): per level, the
requests' stated acceptance pooled over completed requests only, the server's counters over the
level's window, the client's tokens per chunk; and nothing at all for a server that does not speculate."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from pytest import approx

from analysis import api
from core.record import RequestRecord
from core.slo import PROFILES
from tests.support.synthetic import T0, request, stage, steady, write_run

STEP = {"name": "step", "params": {}}
ACCEPTED = (12, 6, 3)  # per request at levels 0, 1, 2: 6 verify steps of 3 draft tokens each
AT = ((0.9, 0.7, 0.4), (0.6, 0.3, 0.1), (0.3, 0.15, 0.05))  # per draft, by position: ACCEPTED[k] / 6


def speculated(rec: RequestRecord, accepted: int, steps: int | None = 6) -> RequestRecord:
    """20 tokens: the first alone, then `steps` chunks of 1 + accepted/steps, the rest one a chunk."""
    rec.spec_draft_tokens, rec.spec_accepted_tokens, rec.spec_steps = 18, accepted, steps
    rec.n_chunks = 20 - accepted
    return rec


def spec_run(path: Path, extra: list[RequestRecord] = ()) -> Path:
    rows, stages = [], []
    for k, acc in enumerate(ACCEPTED):
        rows += [speculated(r, acc) for r in steady(k, k + 1, 10.0 * k, 10.0 * k + 9.5, 2.0, 0.4)]
        stages.append(stage(k, 10.0 * k, 10.0 * (k + 1), users=k + 1))
    return write_run(path, rows + list(extra), stages, shape=STEP)


def counters(path: Path, levels: int = 3) -> None:
    """vLLM's spec counters scraped every second on the second: level k drafts 10 times a second, 3
    tokens each, and accepts ACCEPTED[k] / 6 per draft — so each level's window holds its truth exactly."""
    lines, drafts, tokens, accepted, at = ["t,metric,labels,value"], 0.0, 0.0, 0.0, [0.0, 0.0, 0.0]
    for t in range(10 * levels + 1):
        lines += [f"{T0 + t},vllm:spec_decode_num_drafts_total,,{drafts}",
                  f"{T0 + t},vllm:spec_decode_num_draft_tokens_total,,{tokens}",
                  f"{T0 + t},vllm:spec_decode_num_accepted_tokens_total,,{accepted}",
                  f"{T0 + t},vllm:num_requests_running,,1"]  # fmt: skip
        lines += [
            f"{T0 + t},vllm:spec_decode_num_accepted_tokens_per_pos_total,position={i},{at[i]}"
            for i in range(3)
        ]
        k = min(t // 10, levels - 1)
        drafts, tokens, accepted = drafts + 10, tokens + 30, accepted + 10 * ACCEPTED[k] / 6
        at = [a + 10 * x for a, x in zip(at, AT[k], strict=True)]
    (path / "server_metrics.csv").write_text("\n".join(lines) + "\n")


def analyze(path: Path) -> api.Summary:
    return api.analyze(api.load_run(path), PROFILES["chat"]).summary


def test_each_level_states_its_acceptance_length_and_tokens_per_chunk(tmp_path: Path) -> None:
    failed = speculated(request(1, 12.0, 0.4, users=2, error="http_500"), 18)  # stated, but not completed
    cut = speculated(request(1, 12.5, 0.3, users=2, error="cancelled", received=3), 18)
    plain = request(2, 21.0, 0.4, users=3)  # a request whose server said nothing: not in the pools
    s = analyze(spec_run(tmp_path / "r", [failed, cut, plain]))
    sp = s.speculative
    assert sp is not None and [x.step for x in sp.steps] == [0, 1, 2]
    for st, acc in zip(sp.steps, ACCEPTED, strict=True):
        r = st.requests
        assert (r.requests, r.draft_tokens, r.accepted_tokens, r.steps) == (19, 18 * 19, acc * 19, 6 * 19)
        assert r.acceptance_rate == approx(acc / 18) and r.acceptance_length == approx(1 + acc / 6)
        more = 20 if st.step == 2 else 0  # `plain`: 20 tokens in 20 chunks
        assert st.tokens_per_chunk == approx((20 * 19 + more) / ((20 - acc) * 19 + more))
        assert st.server_acceptance_rate is None  # no counters in this run
    run = sp.requests
    assert run.acceptance_rate == approx(sum(ACCEPTED) / 54) and run.requests == 57
    assert sp.tokens_per_chunk == approx((57 * 20 + 20) / (19 * sum(20 - a for a in ACCEPTED) + 20))
    md = api.summary_markdown(s)
    assert "## Speculative decoding" in md and "the server accepted 38.9 % of 1,026 draft tokens" in md
    assert "| 0 | 1 | 19 | 66.7 % | 3.00 |" in md
    (line,) = [w for w in s.warnings if "tokens per chunk" in w]
    assert "the server decodes speculatively" in line
    doc = json.loads(s.to_json())["speculative_decoding"]
    assert doc["steps"][2]["requests"]["acceptance_length"] == approx(1.5)


def test_the_servers_counters_give_each_levels_acceptance(tmp_path: Path) -> None:
    path = spec_run(tmp_path / "r")
    counters(path)
    s = analyze(path)
    sp = s.speculative
    for st, acc, at in zip(sp.steps, ACCEPTED, AT, strict=True):
        assert st.server_acceptance_rate == approx(acc / 18)
        assert st.server_acceptance_length == approx(1 + acc / 6)
        assert st.server_acceptance_rate == approx(st.requests.acceptance_rate)
        assert st.server_acceptance_by_position == approx(list(at))
    a, b = (x - T0 for x in s.server["counter_window"])  # the run's window: its first send → last answer
    held = [max(0.0, min(b, 10.0 * k + 10) - max(a, 10.0 * k)) for k in range(3)]
    accepted = sum(h * 10 * acc / 6 for h, acc in zip(held, ACCEPTED, strict=True))
    assert sp.server_acceptance_rate == approx(accepted / (30 * (b - a)))
    at_run = [sum(h * at[i] for h, at in zip(held, AT, strict=True)) / sum(held) for i in range(3)]
    assert sp.server_acceptance_by_position == approx(at_run)
    assert "(by draft position: " in api.console_text(s)


def test_a_server_that_states_no_steps_has_a_rate_and_no_length(tmp_path: Path) -> None:
    """llama-server states draft_n and draft_n_accepted, no step count: one such row leaves its level's
    length undefined, never guessed from the others'."""
    odd = speculated(request(0, 9.7, 0.2), 9, steps=None)
    sp = analyze(spec_run(tmp_path / "r", [odd])).speculative
    assert sp.steps[0].requests.steps is None and sp.steps[0].requests.acceptance_length is None
    assert sp.steps[0].requests.acceptance_rate == approx((12 * 19 + 9) / (18 * 20))
    assert sp.steps[1].requests.acceptance_length == approx(2.0)


def test_a_server_that_does_not_speculate_has_no_section(tmp_path: Path) -> None:
    rows = steady(0, 1, 0.0, 9.5, 2.0, 0.4)
    s = analyze(write_run(tmp_path / "r", rows, [stage(0, 0.0, 10.0)], shape=STEP))
    assert s.speculative is None and json.loads(s.to_json())["speculative_decoding"] is None
    assert "Speculative" not in api.summary_markdown(s) and "Speculative" not in api.console_text(s)


def test_compare_shows_the_acceptance_of_runs_that_speculated(tmp_path: Path) -> None:
    """A configuration with a drafter beside one without: the comparison's acceptance column holds the
    stated figure where there is one, the counters' where there is none, and is blank for the other."""
    from analysis.compare import compare, shown
    from analysis.render.comparison import markdown

    spec = analyze(spec_run(tmp_path / "spec"))
    counted = spec_run(tmp_path / "counted")
    counters(counted)
    with open(counted / "requests.csv", newline="") as fh:  # the rows state nothing: the counters alone
        rows = list(csv.reader(fh))
    stated = [rows[0].index(c) for c in ("spec_draft_tokens", "spec_accepted_tokens", "spec_steps")]
    with open(counted / "requests.csv", "w", newline="") as fh:
        csv.writer(fh).writerows(
            [rows[0], *([("" if i in stated else v) for i, v in enumerate(r)] for r in rows[1:])]
        )
    plain = analyze(
        write_run(tmp_path / "plain", steady(0, 1, 0.0, 9.5, 2.0, 0.4), [stage(0, 0.0, 10.0)], shape=STEP)
    )
    c = compare([spec, analyze(counted), plain], PROFILES["chat"])
    got = [r.figures.spec_acceptance_rate for r in c.runs]
    assert got[0] == approx(sum(ACCEPTED) / 54) and got[1] == approx(got[0], abs=0.01) and got[2] is None
    assert "spec_acceptance_rate" in shown(c.rows)
    assert "spec. acceptance" in markdown(c)


def test_a_mix_gives_each_class_its_own_acceptance(tmp_path: Path) -> None:
    """An ngram drafter accepts most of a text copied back and little of free prose: in a mix of the
    two, each class's figures are its own completed requests' (truth per class: 15 and 3 of 18 accepted
    in 6 verify steps), the pooled figure is no one's, and the server's counters are not split."""
    mix = {
        "spec": "chat:50%,code:50%",
        "label": "chat 50% + code 50%",
        "classes": [
            {"name": "chat", "dataset": "chat", "share_pct": 50.0, "slo": PROFILES["chat"].to_dict()},
            {"name": "code", "dataset": "code", "share_pct": 50.0, "slo": PROFILES["chat"].to_dict()},
        ],
    }
    rows = []
    for tenant, acc in (("code", 15), ("chat", 3)):
        for r in steady(0, 2, 0.0, 9.5, 1.0, 0.4):
            r.tenant = tenant
            rows.append(speculated(r, acc))
    failed = speculated(request(0, 5.2, 0.3, users=2, error="http_500"), 0)  # stated, not completed
    failed.tenant = "code"
    path = write_run(tmp_path / "r", [*rows, failed], [stage(0, 0.0, 10.0, users=2)], shape=STEP, mix=mix)
    s = analyze(path)
    sp = s.speculative
    assert [c.name for c in sp.classes] == ["chat", "code"]  # run.json's order
    chat, code = sp.classes
    assert (code.requests.requests, code.requests.draft_tokens, code.requests.accepted_tokens) == (
        10,
        180,
        150,
    )
    assert code.requests.acceptance_rate == approx(15 / 18) and code.requests.acceptance_length == approx(3.5)
    assert chat.requests.acceptance_rate == approx(3 / 18) and chat.requests.acceptance_length == approx(1.5)
    assert code.tokens_per_chunk == approx(20 / 5) and chat.tokens_per_chunk == approx(20 / 17)
    assert sp.requests.acceptance_rate == approx(18 / 36)
    md = api.summary_markdown(s)
    assert (
        "accepted by class: chat 16.7 %, code 83.3 %" in md and "| code | 10 | 83.3 % | 3.50 | 4.00 |" in md
    )
    assert "accepted by class: chat 16.7 %, code 83.3 %" in api.console_text(s)
    doc = json.loads(s.to_json())["speculative_decoding"]["classes"]
    assert [c["name"] for c in doc] == ["chat", "code"] and doc[1]["requests"]["accepted_tokens"] == 150
    # one class alone (`--mix-alone`) is the run: no split
    alone = write_run(tmp_path / "a", [r for r in rows if r.tenant == "code"], [stage(0, 0.0, 10.0, users=2)],
                      shape=STEP, mix={**mix, "classes": mix["classes"][1:]})  # fmt: skip
    assert analyze(alone).speculative.classes == []
