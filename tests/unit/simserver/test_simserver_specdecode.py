"""Speculative decoding in the simulated engine: acceptance draws, exact lengths, counters, the CLI."""

from __future__ import annotations

import random
from dataclasses import replace

import pytest

from simserver.__main__ import main
from simserver.engine import EngineCore, Seq
from simserver.metrics import EngineCollector, Gauges, LagWindow, make_registry, render
from simserver.offline import random_chat, simulate, step_ramp
from simserver.profiles import EngineParams, OutputLen, Profile, SpecParams, StepTime
from simserver.specdecode import parse_speculative_config


class Steps:
    """A sink that records every delivery: one token (on_token) or a verify step's tokens (on_step)."""

    def __init__(self) -> None:
        self.deliveries: dict[str, list[list[int]]] = {}
        self.finish: dict[str, str] = {}

    def on_token(self, seq: Seq, index: int, finish: str | None, now: float) -> None:
        self.on_step(seq, [index], finish, now)

    def on_step(self, seq: Seq, indices: list[int], finish: str | None, now: float) -> None:
        self.deliveries.setdefault(seq.request_id, []).append(list(indices))
        if finish is not None:
            self.finish[seq.request_id] = finish


def spec_profile(k: int = 3, p: float = 0.6, **engine: int) -> Profile:
    e = {"max_num_seqs": 8, "max_num_batched_tokens": 256, "block_size": 4, "num_gpu_blocks": 1024}
    e.update(engine)
    return Profile(
        engine=EngineParams(max_model_len=1024, **e),  # type: ignore[arg-type]
        step_time=StepTime(base_s=0.01, prefill_token_s=0.001, decode_seq_s=0.002, kv_token_s=0.0001),
        output=OutputLen(median_tokens=10, sigma=0),
        speculative=SpecParams(k, p),
    )


def drain(core: EngineCore, sink: Steps, lengths: list[int], t: float = 0.0) -> list[Seq]:
    """Requests of the given lengths (max_tokens = target), run until the engine is idle."""
    for i, n in enumerate(lengths):
        prompt = [f"p{i}-{j}" for j in range(12)]
        core.add(Seq(f"r{i}", prompt, n, n, "length", sink, i * 97, 4, True), t)
    seqs = list(core.waiting)
    for _ in range(100_000):
        if not core.has_work():
            break
        plan = core.schedule()
        assert plan.seqs
        t += plan.duration
        core.complete(plan, t)
    assert not core.has_work()
    return seqs


def expected_accepted(k: int, p: float) -> float:
    """E[a] of the truncated geometric: P(a >= j) = p^j for j = 1..K, so E[a] = Σ p^j."""
    return sum(p**j for j in range(1, k + 1))


def test_acceptance_rate_is_the_truncated_geometric_mean_over_k() -> None:
    core = EngineCore(spec_profile(3, 0.6), seed=7)
    seqs = drain(core, Steps(), [random.Random(i).randint(40, 120) for i in range(250)])
    s = core.stats
    assert s.spec_drafts > 8000
    assert s.spec_draft_tokens == 3 * s.spec_drafts  # budget and context never cap a draft here
    assert s.spec_accepted / s.spec_draft_tokens == pytest.approx(expected_accepted(3, 0.6) / 3, abs=0.015)
    # per position: P(a > i) = p^(i+1)
    for i, n in enumerate(s.spec_per_pos):
        assert n / s.spec_drafts == pytest.approx(0.6 ** (i + 1), abs=0.02)
    # the per-request counts sum to the engine's, exactly
    assert sum(q.spec.steps for q in seqs) == s.spec_drafts
    assert sum(q.spec.drafted for q in seqs) == s.spec_draft_tokens
    assert sum(q.spec.accepted for q in seqs) == s.spec_accepted
    # steps that accepted exactly j = steps that accepted more than j-1, less those that accepted more than j
    more = [s.spec_drafts, *s.spec_per_pos, 0]
    assert [sum(q.spec.hist[j] for q in seqs) for j in range(4)] == [more[j] - more[j + 1] for j in range(4)]


def test_every_request_gets_exactly_its_length_and_steps_carry_one_plus_accepted() -> None:
    lengths = [1, 2, 3, 4, 5, 17, 64, 1, 2, 200]
    sink = Steps()
    core = EngineCore(spec_profile(3, 0.8), seed=3)
    seqs = drain(core, sink, lengths)
    for q, n in zip(seqs, lengths, strict=True):
        got = sink.deliveries[q.request_id]
        assert sum(map(len, got)) == n == q.num_output  # never more than max_tokens
        assert sink.finish[q.request_id] == "length"
        assert len(got[0]) == 1  # the prefill step's first token comes alone, undrafted
        assert q.spec.steps == len(got) - 1  # every later step verified a draft
        assert all(len(d) <= 4 for d in got)
        c = q.spec
        assert c is not None
        assert n <= 1 + c.steps + c.accepted <= n + 3  # only the last step can be cut
        if c.steps:  # every verify step but the last delivered exactly 1 + its accepted drafts
            inner = [len(d) - 1 for d in got[1:-1]]
            last = c.accepted - sum(inner)
            assert len(got[-1]) - 1 <= last <= 3
            assert [[*inner, last].count(j) for j in range(4)] == c.hist
    one, two = seqs[0].spec, seqs[1].spec
    assert one is not None and two is not None
    assert (one.steps, one.drafted, one.hist) == (0, 0, [0, 0, 0, 0])  # max_tokens 1: no draft at all
    assert (two.steps, two.drafted) == (1, 3)  # max_tokens 2: one verify step of K drafts, cut to 1 token
    assert sink.deliveries["r1"][1:] == [sink.deliveries["r1"][1][:1]]
    assert core.stats.generation_tokens == sum(lengths)


def test_the_generated_text_is_the_same_as_without_speculation() -> None:
    """Speculation changes when tokens come, not which: the text and the prefix-cache hashes match."""
    plain, spec = Steps(), Steps()
    a = EngineCore(replace(spec_profile(), speculative=SpecParams()), seed=5)
    b = EngineCore(spec_profile(4, 0.9), seed=5)
    sa, sb = drain(a, plain, [33, 50]), drain(b, spec, [33, 50])
    for x, y in zip(sa, sb, strict=True):
        flat = [i for d in spec.deliveries[y.request_id] for i in d]
        assert [i for d in plain.deliveries[x.request_id] for i in d] == flat
        assert x.block_hashes == y.block_hashes and x.tail == y.tail
    assert a.stats.spec_drafts == 0 and not a.stats.spec_per_pos


def test_draft_tokens_are_charged_to_the_step_time_and_the_budget() -> None:
    core = EngineCore(spec_profile(3, 0.5, max_num_batched_tokens=64), seed=1)
    sink = Steps()
    core.add(Seq("x", [f"w{i}" for i in range(8)], 50, 50, "length", sink, 0, 4, True), 0.0)
    plan = core.schedule()
    core.complete(plan, plan.duration)  # prefill: the first token, no draft
    plan = core.schedule()
    assert plan.ns == [4] and plan.draft_tokens == 3 and plan.decode_seqs == 1
    st = core.step_time
    assert plan.duration == pytest.approx(st(3, 1, plan.kv_tokens))
    assert plan.kv_tokens == 9 + 3  # context after the step, drafts included


def test_offline_simulation_runs_with_speculation_and_decodes_faster() -> None:
    def run(sp: SpecParams) -> float:
        prof = replace(spec_profile(), speculative=sp, output=OutputLen(median_tokens=120, sigma=0.3))
        res = simulate(prof, step_ramp(5.0, 2, 2, 6), 20.0, lambda r: random_chat(r, (50, 80), (100, 160)))
        tpots = [t for r in res.records if (t := r.tpot) is not None]
        assert res.records and all(r.output_tokens >= 1 for r in res.records)
        return sum(tpots) / len(tpots)

    assert run(SpecParams(3, 0.8)) < 0.7 * run(SpecParams())


def test_metrics_show_the_spec_counters_only_when_on() -> None:
    def scrape(core: EngineCore) -> str:
        c = EngineCollector("m", core.stats, LagWindow(), lambda: Gauges(0, 0, 0.0, 0, 0), {}, engine=0)
        return render(make_registry(c)).decode()

    off = EngineCore(replace(spec_profile(), speculative=SpecParams()))
    assert "spec_decode" not in scrape(off)
    on = EngineCore(spec_profile(2, 0.7), seed=2)
    drain(on, Steps(), [30, 40])
    text = scrape(on)
    s = on.stats
    assert f'vllm:spec_decode_num_drafts_total{{engine="0",model_name="m"}} {float(s.spec_drafts)}' in text
    assert f'vllm:spec_decode_num_draft_tokens_total{{engine="0",model_name="m"}} {float(s.spec_draft_tokens)}' in text  # fmt: skip
    assert f'vllm:spec_decode_num_accepted_tokens_total{{engine="0",model_name="m"}} {float(s.spec_accepted)}' in text  # fmt: skip
    for i in range(2):
        line = f'vllm:spec_decode_num_accepted_tokens_per_pos_total{{engine="0",model_name="m",position="{i}"}} {float(s.spec_per_pos[i])}'  # fmt: skip
        assert line in text


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("{num_speculative_tokens: 3}", "not valid JSON"),
        ("[3]", "expected a JSON object"),
        ('{"method": "ngram"}', "num_speculative_tokens must be an integer >= 1"),
        ('{"num_speculative_tokens": 0}', "num_speculative_tokens must be an integer >= 1"),
        ('{"num_speculative_tokens": 2.5}', "num_speculative_tokens must be an integer >= 1"),
        ('{"num_speculative_tokens": 3, "acceptance": 0}', "acceptance must be a number in (0, 1]"),
        ('{"num_speculative_tokens": 3, "acceptance": 1.5}', "acceptance must be a number in (0, 1]"),
        ('{"num_speculative_tokens": 3, "acceptence": 0.5}', "unknown key 'acceptence'"),
    ],
)
def test_bad_speculative_config_is_one_line_and_exit_2(
    text: str, says: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--speculative-config", text]) == 2
    err = capsys.readouterr().err
    assert err.startswith("simserver: error: --speculative-config: ") and says in err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_spec_metrics_without_speculative_decoding_is_refused_as_vllm_does(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["--per-request-spec-decode-metrics", "summary"]) == 2
    err = capsys.readouterr().err
    assert "--per-request-spec-decode-metrics requires speculative decoding to be enabled" in err
    assert err.count("\n") == 1
    assert main(["--per-request-spec-decode-metrics", "detailed"]) == 2
    assert "invalid choice" in capsys.readouterr().err


def test_a_vllm_command_line_carries_over() -> None:
    got = parse_speculative_config('{"method": "ngram", "num_speculative_tokens": 5, "prompt_lookup_max": 4}')
    assert got == SpecParams(5, 0.7)
    assert parse_speculative_config('{"num_speculative_tokens": 1, "acceptance": 1}') == SpecParams(1, 1.0)
