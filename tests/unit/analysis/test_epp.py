"""The llm-d router's endpoint picker (analysis/epp.py through analysis/router.py) against truth that is
known: its page as llm-d-router's source declares it (tests/fixtures/llm-d-epp-metrics.txt: the
`llm_d_epp_*` names beside the deprecated Inference Extension ones, same values) read as the increase
from an all-zero scrape, so every figure is the page's own number; each generation of names alone;
synthetic series for the window's edges; the report's line, warnings and the breaking level's words."""

from __future__ import annotations

import re

import pandas as pd
import pytest

from analysis import router
from analysis.render import router as render
from analysis.render.tables import router_hid
from tests.unit.analysis.test_router import FIXTURES, A, page_frame, replica_set, series, vllm_router_rows

PAGE = "llm-d-epp-metrics.txt"
TEXT = (FIXTURES / PAGE).read_text()


def values(metric: str, **where: str) -> list[tuple[dict[str, str], float]]:
    """The page's own samples of `metric` whose labels match `where`, read from the text."""
    out = []
    for line in TEXT.splitlines():
        m = re.fullmatch(rf"{re.escape(metric)}(?:\{{(.*)\}})? (\S+)", line)
        if m:
            labels = dict(re.findall(r'(\w+)="([^"]*)"', m.group(1) or ""))
            if all(labels.get(k) == v for k, v in where.items()):
                out.append((labels, float(m.group(2))))
    return out


def total(metric: str, **where: str) -> float:
    return sum(v for _, v in values(metric, **where))


def test_the_epps_page_gives_its_own_placements_refusals_and_times() -> None:
    rf = router.figures(router.build(page_frame(PAGE)), 0.0, 10.0)
    assert rf is not None and rf["router"] == "llm-d EPP"
    placed = {
        lab["endpoint_name"]: v for lab, v in values("llm_d_epp_scheduler_attempts_total", status="success")
    }
    by = {r["backend"]: r for r in rf["by_backend"]}
    assert set(by) == set(placed) and len(by) == 2
    for ep, r in by.items():
        assert r["requests"] == pytest.approx(placed[ep])
        assert r["queue_max"] == total("llm_d_epp_per_endpoint_queue_size", model_server_endpoint=ep)
        assert r["running_max"] == total("llm_d_epp_inflight_requests", endpoint_name=ep)
        assert r["failures"] is None and r["circuit_opened"] is None and r["engine_finished"] is None
    assert rf["requests"] == pytest.approx(sum(placed.values()))  # one generation: not counted twice
    unplaced = total("llm_d_epp_scheduler_attempts_total", status="failure")
    assert unplaced > 0 and rf["unplaced"] == pytest.approx(unplaced)
    errors = {lab["error_code"]: v for lab, v in values("llm_d_epp_request_error_total")}
    assert rf["errors"] == pytest.approx(errors) and errors["InferencePoolResourceExhausted"] > 0
    pick = "llm_d_epp_scheduler_e2e_duration_seconds"
    assert rf["pick_s"] == pytest.approx(total(pick + "_sum") / total(pick + "_count"))
    held = "llm_d_epp_flow_control_request_queue_duration_seconds"
    let_through = total(held + "_count", outcome="Dispatched")
    assert rf["held"] == pytest.approx(let_through) and let_through < total(held + "_count")
    assert rf["held_s"] == pytest.approx(total(held + "_sum", outcome="Dispatched") / let_through)
    assert rf["ready_endpoints"] == [2.0, 2.0] and rf["retries"] is None
    assert rf["policy"] == "kv-cache-utilization-scorer+prefix-cache-scorer+queue-scorer"  # not the picker
    split = {lab["decision_type"]: v for lab, v in values("llm_d_epp_disagg_decision_total")}
    assert rf["disagg_decisions"] == pytest.approx(split) and sum(split.values()) == sum(placed.values())
    assert render.line(rf).endswith(
        f"its disaggregation decisions: {split['decode-only']:.0f} decode-only, "
        f"{split['prefill-decode']:.0f} prefill-decode."
    )
    top = max(placed, key=lambda ep: placed[ep])
    assert rf["busiest"] == top and rf["imbalance"] == pytest.approx(2 * placed[top] / sum(placed.values()))


@pytest.mark.parametrize("generation", ["inference extension", "llm_d_router_epp_"])
def test_each_generation_of_its_names_reads_the_same(generation: str) -> None:
    """A page with the Inference Extension's names alone (before llm-d-router), and one whose new names had
    the short-lived `llm_d_router_epp_` prefix, give the same figures — but the in-flight gauge, which only
    the new names have."""
    df = page_frame(PAGE)
    new = df["metric"].str.startswith("llm_d_epp_")
    if generation == "inference extension":
        df = df[~new]
    else:
        renamed = df[new].assign(metric=df.loc[new, "metric"].str.replace("llm_d_epp_", "llm_d_router_epp_"))
        df = pd.concat([renamed, df[~new]])
    rf = router.figures(router.build(df), 0.0, 10.0)
    whole = router.figures(router.build(page_frame(PAGE)), 0.0, 10.0)
    assert rf is not None and whole is not None
    inflight = generation != "inference extension"
    for a, b in zip(rf["by_backend"], whole["by_backend"], strict=True):
        assert a == (b if inflight else dict(b, running_max=None))
    assert {k: v for k, v in rf.items() if k != "by_backend"} == {
        k: v for k, v in whole.items() if k != "by_backend"
    }


def epp_rows(ready_drop_at: float | None = None) -> list:
    """Scrapes at t = 0..10: pod-a placed 3/s, pod-b 1/s; 0.5/s shed; every dispatched request held 20 ms
    until t = 5 and 4 ms after; picking 0.5 ms; a ready endpoint lost at `ready_drop_at`."""
    rows, held_sum = [], 0.0
    for t in range(11):
        held_sum += 0 if t == 0 else 4.0 * (0.020 if t <= 5 else 0.004)
        for ep, rate in (("pod-a", 3.0), ("pod-b", 1.0)):
            rows.append(
                (t, "llm_d_epp_scheduler_attempts_total", f"endpoint_name={ep};status=success", rate * t)
            )
            rows.append((t, "llm_d_epp_per_endpoint_queue_size", f"model_server_endpoint={ep}", float(t % 3)))
        rows += [
            (t, "llm_d_epp_scheduler_attempts_total", "endpoint_name=;status=failure", 0.5 * t),
            (t, "llm_d_epp_request_error_total", "error_code=InferencePoolResourceExhausted", 0.5 * t),
            (t, "llm_d_epp_scheduler_e2e_duration_seconds_sum", "", 4.5 * t * 0.0005),
            (t, "llm_d_epp_scheduler_e2e_duration_seconds_count", "", 4.5 * t),
            (t, "llm_d_epp_flow_control_request_queue_duration_seconds_sum", "outcome=Dispatched", held_sum),
            (t, "llm_d_epp_flow_control_request_queue_duration_seconds_count", "outcome=Dispatched", 4.0 * t),
            (t, "llm_d_epp_ready_endpoints", "name=pool", 1.0 if ready_drop_at is not None and t >= ready_drop_at else 2.0),
        ]  # fmt: skip
    return rows


def test_the_window_is_read_between_its_edges() -> None:
    rd = router.build(series(epp_rows(ready_drop_at=8.0)))
    rf = router.figures(rd, 6.0, 10.0)  # after the slow spell: 4 ms a request held
    assert rf is not None and rf["requests"] == pytest.approx(16.0) and rf["unplaced"] == pytest.approx(2.0)
    assert rf["held_s"] == pytest.approx(0.004) and rf["held"] == pytest.approx(16.0)
    assert rf["pick_s"] == pytest.approx(0.0005) and rf["errors"] == {"InferencePoolResourceExhausted": 2.0}
    assert rf["ready_endpoints"] == [1.0, 2.0]
    early = router.figures(rd, 0.0, 5.0)
    assert (
        early is not None
        and early["held_s"] == pytest.approx(0.020)
        and early["ready_endpoints"] == [2.0, 2.0]
    )
    assert [r["queue_max"] for r in early["by_backend"]] == [2.0, 2.0]
    idle = router.figures(rd, 2.0, 2.0)  # no time: nothing observed, no mean
    assert idle is not None and idle["held_s"] is None and idle["pick_s"] is None


def test_the_line_and_the_warnings_say_what_it_refused_and_held() -> None:
    rf = router.figures(router.build(series(epp_rows(ready_drop_at=8.0))), 0.0, 10.0)
    assert rf is not None
    assert render.line(rf) == (
        "Router (llm-d EPP, 2 backends): the busiest, pod-a, got 75 % of 40 requests (1.50× an even share); "
        "it counted 5 errors (InferencePoolResourceExhausted 5); picking took 0.50 ms a request; "
        "its queue held each 12.0 ms."
    )
    warned = router.warnings(rf)
    assert warned[0].startswith(
        "the router (llm-d EPP) counted 5 failed requests by its error code: InferencePoolResourceExhausted 5 "
        "(InferencePoolResourceExhausted: it shed the request with 429, judging the pool saturated, or found no"
    )
    assert warned[1] == "the router (llm-d EPP) could place 5 requests on no backend (its scheduler failed)"
    assert warned[2].startswith(
        "the router (llm-d EPP) held the 40 requests it let through 12.0 ms on average"
    )
    assert warned[3] == "the router (llm-d EPP) counted 1 to 2 ready backends during the window"
    assert router.warnings(router.figures(router.build(series(epp_rows())), 0.0, 10.0))[-1].startswith(
        "the router (llm-d EPP) held"
    )  # the ready set held: no line for it


def test_the_breaking_level_says_what_the_epp_refused_and_held_there() -> None:
    rd = router.build(series(epp_rows()))
    rf = router.figures(rd, 0.0, 10.0)
    assert rf is not None
    rf["steps"] = [{"step": 0, **router.figures(rd, 0.0, 5.0)}, {"step": 1, **router.figures(rd, 6.0, 6.5)}]
    assert router_hid(rf, 0) == (
        "the router counted 2 errors there (InferencePoolResourceExhausted); "
        "the router held each request 20.0 ms in its own queue there"
    )
    assert (
        router_hid(rf, 1) == "the router held each request 4.00 ms in its own queue there"
    )  # 0.25 shed: none
    # the Router section's per-level table says the same where the router answers or holds requests itself
    from types import SimpleNamespace

    summary = SimpleNamespace(steps=[SimpleNamespace(step=0, load=2.0), SimpleNamespace(step=1, load=4.0)])
    assert render.step_headers(rf)[-2:] == ["its own errors", "held in its queue (ms)"]
    assert [row[-2:] for row in render.step_rows(rf, summary)] == [["2", "20.0"], ["0", "4.00"]]
    vllm_router = router.figures(router.build(series(vllm_router_rows({A: 1.0}))), 0.0, 10.0)
    assert vllm_router is not None and render.step_headers(vllm_router) == render.STEP_HEADERS


def test_the_older_pd_handlers_decisions_are_read_where_the_new_counter_is_absent() -> None:
    """llm-d's deprecated `pd-profile-handler` counts two decision types under a name of its own."""
    rows = epp_rows() + [
        (t, "llm_d_inference_scheduler_pd_decision_total", f"decision_type={d}", k * t)
        for t in range(11)
        for d, k in (("decode-only", 1.0), ("prefill-decode", 3.0))
    ]
    rf = router.figures(router.build(series(rows)), 5.0, 10.0)
    assert rf is not None and rf["disagg_decisions"] == {"decode-only": 5.0, "prefill-decode": 15.0}
    plain = router.figures(router.build(series(epp_rows())), 0.0, 10.0)
    assert plain is not None and plain["disagg_decisions"] is None


def test_pods_it_names_are_not_taken_for_replicas_it_starved() -> None:
    """The EPP names an endpoint by its pod, the replicas' pages by URL: with no backend to join, a starved
    replica keeps its own line rather than one saying the router sent it nothing."""
    rf = router.figures(router.build(series(epp_rows())), 0.0, 10.0)
    assert router.policy_starved(rf, replica_set({"10.0.0.9:8000": 1.0, "10.0.0.10:8000": 0.0})) == {}
