"""Multi-LoRA serving in the engine core (simserver/lora.py): vLLM v1's max_loras rule, the LRU adapter
slots and their load cost, the metrics vLLM shows for them, and the options' checks — each against a
truth worked out by hand from the step-by-step rule, in virtual time."""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, replace

import pytest

from simserver.engine import FINISHED, EngineCore, Seq
from simserver.lora import DEFAULT_LOAD_MS, LoraConfig, LoraSlots, lora_config, parse_lora_modules
from simserver.metrics import EngineCollector, Gauges, LagWindow, make_registry, render
from tests.unit.simserver.test_simserver_engine import Collect, profile

LOAD = 0.05  # a load time far from any step's own, so a step that loads is plain to see


@dataclass
class Step:
    admitted: list[str]  # request ids that started running in the step
    finished: list[str]
    load_s: float
    duration: float
    end: float
    deferred: int  # after the step


def core_with(max_loras: int = 1, names: str = "abc", **engine: int | bool) -> tuple[EngineCore, Collect]:
    modules = {n: f"/adapters/{n}" for n in names}
    return EngineCore(profile(**engine), lora=LoraConfig(modules, max_loras, LOAD)), Collect()


def add(core: EngineCore, sink: Collect, rid: str, lora: str | None, out: int, t: float = 0.0) -> Seq:
    p = core.profile
    s = Seq(rid, [f"{rid}-{i}" for i in range(8)], out, out, "length", sink, 0, p.engine.block_size,
            p.engine.enable_prefix_caching, lora)  # fmt: skip
    core.add(s, t)
    return s


def steps(core: EngineCore, t: float = 0.0, max_steps: int = 1000) -> list[Step]:
    """Run until idle; what each step admitted, finished and loaded."""
    log: list[Step] = []
    for _ in range(max_steps):
        if not core.has_work():
            return log
        before = {s.request_id for s in core.running}
        plan = core.schedule()
        assert plan.seqs, "no progress"
        t += plan.duration
        core.complete(plan, t)
        admitted = [s.request_id for s in plan.seqs if s.request_id not in before]
        finished = [s.request_id for s in plan.seqs if s.status == FINISHED]
        log.append(Step(admitted, finished, plan.lora_load_s, plan.duration, t, core.num_deferred))
    raise AssertionError("engine did not drain")


def step_of(log: list[Step], rid: str, what: str = "admitted") -> int:
    return next(i for i, s in enumerate(log) if rid in getattr(s, what))


# -- the scheduling rule ---------------------------------------------------------------------------


def test_an_adapter_over_the_budget_waits_for_the_running_one_then_loads() -> None:
    """max_loras=1; a, b and the base model arrive together: a and the base run at once, b is deferred
    until a's request finishes, then runs, its step carrying the load time."""
    core, sink = core_with(1)
    a, b, base = add(core, sink, "A", "a", 3), add(core, sink, "B", "b", 3), add(core, sink, "C", None, 3)
    log = steps(core)
    assert log[0].admitted == ["A", "C"] and log[0].load_s == LOAD and log[0].deferred == 1
    assert [s.deferred for s in log[:3]] == [1, 1, 0]  # after A's last step nothing holds B back
    assert step_of(log, "A", "finished") == 2 and step_of(log, "B") == 3
    assert log[3].admitted == ["B"] and log[3].load_s == LOAD
    assert [s.load_s for s in log] == [LOAD, 0, 0, LOAD, 0, 0]
    assert b.t_first_sched == pytest.approx(a.t_last_token) == pytest.approx(log[2].end)
    assert base.t_first_sched == 0.0 and core.lora is not None and core.lora.loads == 2


def test_the_load_time_is_added_to_the_step_that_loads() -> None:
    """A prefill of 8 tokens alone (P=8, K=8) is the step-time formula's; the steps that load a or b
    last LOAD longer, the decodes of the loaded adapter (D=1, K=9 then 10) do not."""
    core, sink = core_with(1)
    add(core, sink, "A", "a", 3)
    add(core, sink, "B", "b", 3)
    log = steps(core)
    one = [core.step_time(8, 0, 8) + LOAD, core.step_time(0, 1, 9), core.step_time(0, 1, 10)]
    assert [s.duration for s in log] == pytest.approx(one * 2)
    assert [s.admitted for s in log] == [["A"], [], [], ["B"], [], []]


def test_a_deferred_request_keeps_its_place_and_later_ones_pass_it() -> None:
    core, sink = core_with(1)
    for rid, lora in (("A1", "a"), ("B1", "b"), ("B2", "b"), ("C1", None), ("A2", "a")):
        add(core, sink, rid, lora, 3)
    plan = core.schedule()
    core.complete(plan, plan.duration)
    assert [s.request_id for s in plan.seqs] == ["A1", "C1", "A2"]
    assert [s.request_id for s in core.waiting] == ["B1", "B2"] and core.num_deferred == 2
    add(core, sink, "C2", None, 3, t=plan.duration)  # a base request arriving later still goes first
    log = steps(core, plan.duration)
    assert log[0].admitted == ["C2"]
    both = step_of(log, "B1")
    assert log[both].admitted == ["B1", "B2"] and log[both].load_s == LOAD  # one load for the two


def test_base_model_requests_never_wait_for_an_adapter_slot() -> None:
    core, sink = core_with(1, max_num_seqs=8)
    for i, lora in enumerate(["a", "b", "c", "b", "c"]):
        add(core, sink, f"L{i}", lora, 5)
    for i in range(3):
        add(core, sink, f"base{i}", None, 5)
    log = steps(core)
    assert log[0].admitted == ["L0", "base0", "base1", "base2"] and log[0].deferred == 4


def test_slots_are_an_lru_cache_and_a_loaded_adapter_costs_nothing_more() -> None:
    """max_loras=2: a and b load; a again is free (and becomes the most recent); c evicts the least
    recently used idle slot (b); a is still there; b comes back in place of c."""
    core, sink = core_with(2)
    lora = core.lora
    assert lora is not None
    add(core, sink, "A1", "a", 2)
    add(core, sink, "B1", "b", 4)
    assert steps(core)[0].load_s == 2 * LOAD and list(lora.slots) == ["a", "b"]  # a went idle first
    add(core, sink, "A2", "a", 2)
    assert [s.load_s for s in steps(core)] == [0, 0] and list(lora.slots) == ["b", "a"]
    add(core, sink, "C1", "c", 2)
    assert steps(core)[0].load_s == LOAD and set(lora.slots) == {"a", "c"} and lora.loads == 3
    add(core, sink, "A3", "a", 2)
    assert steps(core)[0].load_s == 0
    add(core, sink, "B2", "b", 2)
    assert steps(core)[0].load_s == LOAD and set(lora.slots) == {"a", "b"} and lora.loads == 4


def test_a_slot_is_reused_only_once_no_running_request_uses_its_adapter() -> None:
    """max_loras=2: c waits for a slot while a and b run; b finishes first, so c takes b's slot even
    though a's was loaded earlier (a's is in use)."""
    core, sink = core_with(2)
    add(core, sink, "A", "a", 10)
    add(core, sink, "B", "b", 3)
    add(core, sink, "C", "c", 3)
    log = steps(core)
    assert log[0].admitted == ["A", "B"] and log[0].load_s == 2 * LOAD
    assert step_of(log, "C") == step_of(log, "B", "finished") + 1 < step_of(log, "A", "finished")
    assert core.lora is not None and set(core.lora.slots) == {"a", "c"}


def test_aborting_the_running_request_frees_its_adapter() -> None:
    core, sink = core_with(1)
    a = add(core, sink, "A", "a", 50)
    add(core, sink, "B", "b", 3)
    waiting_b2 = add(core, sink, "B2", "b", 3)
    plan = core.schedule()
    core.complete(plan, plan.duration)
    core.abort(waiting_b2, plan.duration)  # a waiting request leaves the queue's counts
    core.abort(a, plan.duration)
    log = steps(core, plan.duration)
    assert log[0].admitted == ["B"] and log[0].load_s == LOAD
    assert core.lora is not None and core.lora.counts == {"a": [0, 0], "b": [0, 0]}


def test_invariants_hold_through_preemption_and_aborts() -> None:
    """A random mix on a small KV cache (preemptions) with aborts: at every step no more than max_loras
    adapters run, each running adapter holds a slot, and the counts are the queue's and the batch's."""
    rng = random.Random(3)
    core, sink = core_with(2, "abcd", num_gpu_blocks=24, max_num_seqs=6)
    lora = core.lora
    assert lora is not None
    seqs = [
        add(core, sink, f"r{i}", rng.choice([None, "a", "b", "c", "d"]), rng.randint(3, 30))
        for i in range(40)
    ]
    t = 0.0
    for n in range(5000):
        if not core.has_work():
            break
        plan = core.schedule()
        t += plan.duration
        core.complete(plan, t)
        if n % 7 == 3:
            core.abort(rng.choice(seqs), t)
        running = {s.lora for s in core.running} - {None}
        assert set(lora.active) == running and len(running) <= 2 and running <= set(lora.slots)
        for name, (waiting, run) in lora.counts.items():
            assert waiting == sum(s.lora == name for s in core.waiting)
            assert run == sum(s.lora == name for s in core.running)
    assert not core.has_work() and core.stats.preemptions > 0


def test_an_engine_without_adapters_serves_a_named_one_as_the_base_model() -> None:
    core, sink = EngineCore(profile()), Collect()
    add(core, sink, "A", "a", 3)
    add(core, sink, "B", "b", 3)
    assert steps(core)[0].admitted == ["A", "B"] and core.num_deferred == 0 and core.lora is None


# -- metrics -----------------------------------------------------------------------------------------


def scrape(core: EngineCore, **kw: int | bool) -> str:
    g = lambda: Gauges(core.num_running, core.num_waiting, 0.0, 0, 0, core.num_deferred)  # noqa: E731
    c = EngineCollector("m", core.stats, LagWindow(), g, {}, lora=core.lora, **kw)  # type: ignore[arg-type]
    return render(make_registry(c)).decode()


def test_metrics_show_lora_requests_info_and_the_deferred_waiting() -> None:
    core, sink = core_with(1)
    lora = core.lora
    assert lora is not None
    for rid, name in (("B", "b"), ("A", "a"), ("C", "c"), ("A2", "a"), ("X", None)):
        add(core, sink, rid, name, 3)
    plan = core.schedule()
    core.complete(plan, plan.duration)
    lora.stamp(1000.0)
    text = scrape(core)
    assert 'vllm:lora_requests_info{max_lora="1",running_lora_adapters="b",waiting_lora_adapters="a,c"} 1000.0' in text  # fmt: skip
    assert 'vllm:num_requests_waiting_by_reason{engine="0",model_name="m",reason="deferred"} 3.0' in text
    assert 'vllm:num_requests_waiting_by_reason{engine="0",model_name="m",reason="capacity"} 0.0' in text
    assert 'simserver:lora_adapter_loads_total{engine="0",model_name="m"} 1.0' in text
    steps(core)
    lora.stamp(2000.0)
    text = scrape(core, engine=1, replicated=True)
    # every label set ever seen stays, with the time it was last true; the latest is the state now
    assert 'vllm:lora_requests_info{engine="1",max_lora="1",running_lora_adapters="b",waiting_lora_adapters="a,c"} 1000.0' in text  # fmt: skip
    assert 'vllm:lora_requests_info{engine="1",max_lora="1",running_lora_adapters="",waiting_lora_adapters=""} 2000.0' in text  # fmt: skip
    assert 'reason="deferred"} 0.0' in text


def test_metrics_without_adapters_have_no_lora_series_and_nothing_deferred() -> None:
    core = EngineCore(profile())
    text = scrape(core)
    assert "lora" not in text
    assert 'vllm:num_requests_waiting_by_reason{engine="0",model_name="m",reason="deferred"} 0.0' in text


def test_the_info_series_are_bounded_oldest_dropped() -> None:
    slots = LoraSlots(LoraConfig({"a": "a"}))
    for i in range(1100):
        slots.counts = {f"x{i}": [1, 0]}
        slots.stamp(float(i))
    assert len(slots.info) == 1024 and min(slots.info.values()) == 76.0


# -- options -----------------------------------------------------------------------------------------


def test_lora_modules_take_names_vllm_name_path_pairs_and_json() -> None:
    assert parse_lora_modules(["a,b", "c"]) == {"a": "a", "b": "b", "c": "c"}
    assert parse_lora_modules(["a=/p/a", "b=/p/b"]) == {"a": "/p/a", "b": "/p/b"}
    assert parse_lora_modules(['{"name": "j", "path": "/p/j", "base_model_name": "x"}']) == {"j": "/p/j"}
    cfg = lora_config(["a"], None, None)
    assert cfg == LoraConfig({"a": "a"}, 1, DEFAULT_LOAD_MS / 1e3)
    assert lora_config(None, None, None) is None
    assert lora_config(["a"], 3, 0.0, 16, True) == replace(cfg, max_loras=3, load_s=0.0)


@pytest.mark.parametrize(
    ("args", "says"),
    [
        ((["a,a"], None, None), "--lora-modules: adapter 'a' is named twice"),
        (([","], None, None), "--lora-modules: expected NAME"),
        ((["=/p/a"], None, None), "--lora-modules: '=/p/a' is not NAME or NAME=PATH"),
        ((["{nope"], None, None), "--lora-modules: '{nope' is not valid JSON"),
        ((['{"path": "/p"}'], None, None), '--lora-modules: \'{"path": "/p"}\' has no "name"'),
        ((["a"], 0, None), "--max-loras must be at least 1, got 0"),
        ((["a"], None, -1.0), "--lora-load-ms must be a number of ms >= 0"),
        ((["a"], None, float("nan")), "--lora-load-ms must be a number of ms >= 0"),
        ((None, 2, None), "--max-loras needs --lora-modules"),
        ((None, None, 5.0), "--lora-load-ms needs --lora-modules"),
    ],
    ids=[
        "twice",
        "empty",
        "no-name",
        "bad-json",
        "json-no-name",
        "max-loras-0",
        "load-negative",
        "load-nan",
        "max-loras-alone",
        "load-alone",
    ],
)
def test_bad_lora_options_say_what_is_wrong(args: tuple, says: str) -> None:
    with pytest.raises(ValueError, match="^" + re.escape(says)):
        lora_config(*args)
