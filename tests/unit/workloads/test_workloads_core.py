"""Workloads core: token estimate, synthetic text, length distributions, spec parsing, seeded streams."""

from __future__ import annotations

import itertools
import random
import statistics

import pytest

from workloads import (
    Conversation,
    Turn,
    Workload,
    WorkloadError,
    WorkloadStream,
    count_tokens,
    open_workload,
    request_messages,
    synth_prompt,
)
from workloads.lengths import parse_length
from workloads.spec import parse_spec, split_top
from workloads.tokens import synth_text


def make_workload(n: int, groups: int = 1, turns: int = 1) -> Workload:
    convs = []
    for i in range(n):
        ts = tuple(
            Turn(({"role": "user", "content": f"q{i}.{t}"},), 10 + t, f"a{i}.{t}", 0.5 if t else 0.0)
            for t in range(turns)
        )
        prefix = ({"role": "system", "content": f"system {i % groups}"},)
        convs.append(Conversation(f"c{i}", prefix, ts, f"g{i % groups}", {}))
    return Workload("test", "test", "memory", tuple(convs))


def ids(stream: WorkloadStream, k: int) -> list[str]:
    return [stream.next_conversation().id for _ in range(k)]


# -- tokens -----------------------------------------------------------------------------------------
def test_count_tokens_is_words_plus_punctuation() -> None:
    assert count_tokens("Hello, world!") == 4
    assert count_tokens("self.assertEqual(a, b)") == 8
    assert count_tokens("") == 0
    assert count_tokens("   \n\t ") == 0


@pytest.mark.parametrize("n", [1, 7, 255, 256, 257, 3000])
def test_synth_text_has_exact_token_count(n: int) -> None:
    assert count_tokens(synth_text(n, "k")) == n


def test_synth_text_longer_extends_shorter() -> None:
    assert synth_text(900, "z").startswith(synth_text(300, "z"))
    assert synth_text(10, "a") != synth_text(10, "b")


def test_synth_prompt_shares_prefix_per_prefix_id() -> None:
    a = synth_prompt(1000, seed=1, prefix_id="doc-7", prefix_tokens=600)
    b = synth_prompt(800, seed=2, prefix_id="doc-7", prefix_tokens=600)
    c = synth_prompt(1000, seed=1, prefix_id="doc-8", prefix_tokens=600)
    head = synth_prompt(600, seed=99, prefix_id="doc-7", prefix_tokens=600)
    assert count_tokens(a) == 1000 and count_tokens(b) == 800
    assert a.startswith(head) and b.startswith(head) and not c.startswith(head[:50])
    assert a != synth_prompt(1000, seed=2, prefix_id="doc-7", prefix_tokens=600)
    assert synth_prompt(50, seed=3) == synth_prompt(50, seed=3) != synth_prompt(50, seed=4)


# -- length distributions -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "mean", "tol"),
    [("128", 128, 0), ("fixed(64)", 64, 0), ("uniform(64,256)", 160, 0.03), ("normal(500,50)", 500, 0.02),
     ("lognormal(512,128,32,2048)", 512, 0.03), ("lognormal(1000,600)", 1000, 0.05)],
)  # fmt: skip
def test_length_distribution_means(text: str, mean: float, tol: float) -> None:
    dist = parse_length(text, "test")
    rng = random.Random(7)
    xs = [dist.sample(rng) for _ in range(6000)]
    assert statistics.fmean(xs) == pytest.approx(mean, rel=tol, abs=0 if tol else 1e-9)
    assert min(xs) >= dist.lo and (dist.hi is None or max(xs) <= dist.hi)


def test_lognormal_std_is_of_the_lengths() -> None:
    rng = random.Random(1)
    xs = [parse_length("lognormal(800,400)", "t").sample(rng) for _ in range(20000)]
    assert statistics.pstdev(xs) == pytest.approx(400, rel=0.06)


def test_truncation_keeps_samples_in_bounds() -> None:
    rng = random.Random(2)
    xs = [parse_length("normal(100,80,90,120)", "t").sample(rng) for _ in range(2000)]
    assert min(xs) >= 90 and max(xs) <= 120


@pytest.mark.parametrize(
    ("text", "needle"),
    [("lognormal(512)", "mean,std"), ("uniform(9,3)", "min ≤ max"), ("gamma(1,2)", "unknown distribution"),
     ("normal(a,b)", "numbers"), ("0", "at least 1"), ("normal(100,10,200,300)", "min ≤ mean ≤ max"), ("big", "not a length")],
)  # fmt: skip
def test_bad_length_is_one_line_naming_the_option(text: str, needle: str) -> None:
    with pytest.raises(WorkloadError) as e:
        parse_length(text, "random: input")
    msg = str(e.value)
    assert msg.startswith(f"random: input={text}:") and needle in msg and "\n" not in msg


# -- spec strings ----------------------------------------------------------------------------------------
def test_split_top_keeps_commas_inside_parentheses() -> None:
    assert split_top("input=lognormal(512,128,32,2048),output=uniform(64,256)") == [
        "input=lognormal(512,128,32,2048)",
        "output=uniform(64,256)",
    ]
    assert split_top("prompt=q&system=s") == ["prompt=q", "system=s"]


def test_parse_spec_kinds() -> None:
    names = ("random", "agentic")
    s = parse_spec("random:input=lognormal(512,128,32,2048),output=uniform(64,256)", names)
    assert (s.kind, s.target, s.options) == (
        "builtin",
        "random",
        {"input": "lognormal(512,128,32,2048)", "output": "uniform(64,256)"},
    )
    f = parse_spec("data/my.parquet?prompt=question&max_tokens=256", names)
    assert (f.kind, f.target, f.options) == (
        "file",
        "data/my.parquet",
        {"prompt": "question", "max_tokens": "256"},
    )
    h = parse_spec("hf:org/set?split=test", names)
    assert (h.kind, h.target, h.options) == ("hf", "org/set", {"split": "test"})
    with pytest.raises(WorkloadError, match="given twice"):
        parse_spec("random:n=1,n=2", names)
    with pytest.raises(WorkloadError, match="not key=value"):
        parse_spec("random:fast", names)


@pytest.mark.parametrize(
    ("spec", "needle"),
    [("random:foo=1", "random: unknown option foo (expected n, seed, like, input, output)"),
     ("shared-prefix:groups=0", "shared-prefix: groups=0 must be at least 1"),
     ("random:n=many", "random: n=many is not a whole number"),
     ("random:input=lognormal(512)", "random: input=lognormal(512):"),
     ("random:like=agentic,input=5", "either like= or input=/output="),
     ("", "empty dataset"), ("nope", "unknown dataset 'nope'"), ("missing/set.jsonl", "no such file")],
)  # fmt: skip
def test_bad_specs_are_clear(spec: str, needle: str) -> None:
    with pytest.raises(WorkloadError) as e:
        open_workload(spec, seed=0)
    assert needle in str(e.value) and "\n" not in str(e.value)


# -- streams -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("order", ["shuffled", "sequential", "grouped", "interleaved"])
def test_stream_is_deterministic(order: str) -> None:
    w = make_workload(23, groups=4)
    a = WorkloadStream(w, seed=5, worker_index=1, worker_count=3, order=order)
    b = WorkloadStream(w, seed=5, worker_index=1, worker_count=3, order=order)
    assert ids(a, 60) == ids(b, 60)


def test_seed_changes_shuffled_order_and_epochs_reshuffle() -> None:
    w = make_workload(30)
    assert ids(WorkloadStream(w, seed=1), 30) != ids(WorkloadStream(w, seed=2), 30)
    s = WorkloadStream(w, seed=1)
    first, second = ids(s, 30), [x.removesuffix("~1") for x in ids(s, 30)]  # later passes are tagged
    assert sorted(first) == sorted(second) == sorted(c.id for c in w.conversations)
    assert first != second


@pytest.mark.parametrize(("size", "workers"), [(12, 3), (10, 3), (7, 4)])
def test_worker_slices_are_disjoint_and_cover_an_epoch(size: int, workers: int) -> None:
    w = make_workload(size)
    seen: list[str] = []
    for i in range(workers):
        s = WorkloadStream(w, seed=9, worker_index=i, worker_count=workers)
        seen += ids(s, len(range(i, size, workers)))  # this worker's positions in epoch 0
    assert sorted(seen) == sorted(c.id for c in w.conversations)


def test_more_workers_than_conversations_still_get_requests() -> None:
    w = make_workload(2)
    for i in range(5):
        assert len(ids(WorkloadStream(w, seed=0, worker_index=i, worker_count=5), 3)) == 3


def test_orders() -> None:
    w = make_workload(12, groups=3)  # groups g0, g1, g2 of 4 each
    group = {c.id: c.group for c in w.conversations}
    assert ids(WorkloadStream(w, seed=0, order="sequential"), 12) == [f"c{i}" for i in range(12)]
    grouped = [group[x] for x in ids(WorkloadStream(w, seed=3, order="grouped"), 12)]
    assert sum(a != b for a, b in itertools.pairwise(grouped)) == 2  # three contiguous runs
    inter = [group[x] for x in ids(WorkloadStream(w, seed=3, order="interleaved"), 12)]
    assert all(len(set(inter[k : k + 3])) == 3 for k in range(0, 12, 3))  # round-robin over the groups
    with pytest.raises(WorkloadError, match="--order"):
        WorkloadStream(w, seed=0, order="random")
    with pytest.raises(WorkloadError, match="worker 3 of 3"):
        WorkloadStream(w, seed=0, worker_index=3, worker_count=3)


def test_next_request_flattens_turns_with_recorded_replies() -> None:
    w = make_workload(2, turns=3)
    s = WorkloadStream(w, seed=0, order="sequential")
    got = [s.next_request() for _ in range(4)]
    assert [(c.id, t) for _, _, c, t in got] == [("c0", 0), ("c0", 1), ("c0", 2), ("c1", 0)]
    messages, max_tokens, conv, turn = got[2]
    assert [m["content"] for m in messages] == ["system 0", "q0.0", "a0.0", "q0.1", "a0.1", "q0.2"]
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user", "assistant", "user"]
    assert max_tokens == 12 and messages == request_messages(conv, turn)
    messages.append({"role": "user", "content": "mutating my copy is fine"})
    assert len(request_messages(conv, turn)) == 6


def test_open_workload_keyword_options_override_the_spec() -> None:
    s = open_workload("random:n=50", seed=0, n=5, input="fixed(20)")
    assert s.size == 5 and not s.multi_turn
    messages, max_tokens, _, turn = s.next_request()
    assert count_tokens(messages[-1]["content"]) == 20 and turn == 0 and max_tokens >= 1
    assert s.describe()["conversations"] == 5
