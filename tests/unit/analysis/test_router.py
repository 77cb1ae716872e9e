"""A router's own page (analysis/router.py) against truth that is known: the real pages of vllm-router
0.1.17 and the SGLang Model Gateway 0.3.2 (tests/fixtures, captured in front of two simulated engines,
one failing a fifth of its requests) read as the increase from an all-zero scrape, so every figure is
the page's own number; and synthetic series for the window's edges, ties, the circuit breaker, health,
the join to the replicas' engine counts, the report's lines and the warnings."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest

from analysis import replicas, router
from analysis.render import router as render
from analysis.replicas import natural_key
from loadgen.monitors.promtext import parse

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
A, B = "http://10.0.0.9:8000", "http://10.0.0.10:8000"  # natural order puts .9 first


def page_frame(name: str, t: float = 10.0) -> pd.DataFrame:
    """The fixture page at `t`, after a scrape at 0 where every counter was 0 (a router just started) and
    every gauge as it is now."""
    rows = list(parse((FIXTURES / name).read_text()))
    counts = ("_total", "_sum", "_count", "_bucket")
    return pd.DataFrame(
        [[0.0, m, lab, 0.0 if m.endswith(counts) else float(v)] for m, lab, v in rows]
        + [[t, m, lab, float(v)] for m, lab, v in rows],
        columns=["t", "metric", "labels", "value"],
    )


def sums(name: str, metric: str, **where: str) -> dict[str, float]:
    """Per worker, the page's own values of `metric` whose labels match `where`, read from the text."""
    out: dict[str, float] = {}
    for line in (FIXTURES / name).read_text().splitlines():
        m = re.fullmatch(rf"{re.escape(metric)}\{{(.*)\}} (\S+)", line)
        if not m:
            continue
        labels = dict(re.findall(r'(\w+)="([^"]*)"', m.group(1)))
        if all(labels.get(k) == v for k, v in where.items()):
            out[labels["worker"]] = out.get(labels["worker"], 0.0) + float(m.group(2))
    return out


def total(name: str, metric: str) -> float:
    pat = re.compile(rf"{re.escape(metric)}(\{{.*\}})? (\S+)")
    return sum(
        float(m.group(2)) for x in (FIXTURES / name).read_text().splitlines() if (m := pat.fullmatch(x))
    )


@pytest.mark.parametrize(
    ("fixture", "name", "requests", "retries", "backoff"),
    [
        ("vllm-router-0.1.17-metrics.txt", "vllm-router", "vllm_router_processed_requests_total",
         "vllm_router_retries_total", "vllm_router_retry_backoff_duration_seconds_sum"),
        ("smg-0.3.2-metrics.txt", "SGLang Model Gateway", "smg_worker_cb_outcomes_total",
         "smg_worker_retries_total", "smg_worker_retry_backoff_seconds_sum"),
    ],
)  # fmt: skip
def test_a_real_routers_page_gives_its_own_counts(fixture, name, requests, retries, backoff) -> None:
    rf = router.figures(router.build(page_frame(fixture)), 0.0, 10.0)
    assert rf is not None and rf["router"] == name
    outcomes = "vllm_router_cb_outcomes_total" if name == "vllm-router" else "smg_worker_cb_outcomes_total"
    sent, failed = sums(fixture, requests), sums(fixture, outcomes, outcome="failure")
    by = {r["backend"]: r for r in rf["by_backend"]}
    assert set(by) == set(sent) and len(by) == 2
    for w, r in by.items():
        assert r["requests"] == pytest.approx(sent[w])
        assert r["failures"] == pytest.approx(failed.get(w, 0.0))
        assert r["requests_share"] == pytest.approx(sent[w] / sum(sent.values()))
        assert r["unhealthy_scrapes"] == 0 and r["circuit_opened"] is False
    assert sum(failed.values()) > 0  # the fixture's failing engine
    assert rf["requests"] == pytest.approx(sum(sent.values()))
    assert rf["retries"] == pytest.approx(total(fixture, retries)) and rf["retries"] > 0
    assert rf["retry_backoff_s"] == pytest.approx(total(fixture, backoff)) and rf["retry_backoff_s"] > 0
    top = max(sorted(sent, key=natural_key), key=lambda w: sent[w])  # ties: the first in natural order
    assert rf["busiest"] == top and rf["imbalance"] == pytest.approx(2 * sent[top] / sum(sent.values()))


def series(rows: list[tuple[float, str, str, float]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["t", "metric", "labels", "value"])


def vllm_router_rows(per_s: dict[str, float], circuit_at: float | None = None) -> list:
    """Scrapes at t = 0..10: each backend's requests at `per_s`, B failing one in ten; B's circuit open
    at `circuit_at` and A unhealthy at t = 9."""
    rows = []
    for t in range(11):
        for w, rate in per_s.items():
            lab = f"worker={w}"
            rows += [(t, "vllm_router_processed_requests_total", lab, rate * t),
                     (t, "vllm_router_cb_outcomes_total", lab + ";outcome=success", rate * t * (0.9 if w == B else 1)),
                     (t, "vllm_router_cb_state", lab, 1.0 if (w == B and t == circuit_at) else 0.0),
                     (t, "vllm_router_worker_health", lab, 0.0 if (w == A and t == 9) else 1.0)]  # fmt: skip
            if w == B:
                rows.append((t, "vllm_router_cb_outcomes_total", lab + ";outcome=failure", rate * t * 0.1))
        rows.append((t, "vllm_router_retries_total", "route=/v1/chat/completions", 0.5 * t))
    return rows


def test_the_window_is_read_between_its_edges_and_the_circuit_and_health_inside_it() -> None:
    rd = router.build(series(vllm_router_rows({A: 3.0, B: 1.0}, circuit_at=2.0)))
    rf = router.figures(rd, 2.5, 7.5)  # interpolated at the edges, as the engines' counters are
    by = {r["backend"]: r for r in rf["by_backend"]}
    assert [r["backend"] for r in rf["by_backend"]] == [A, B]
    assert by[A]["requests"] == pytest.approx(15.0) and by[B]["requests"] == pytest.approx(5.0)
    assert by[B]["failures"] == pytest.approx(0.5) and by[A]["failures"] == 0
    assert rf["retries"] == pytest.approx(2.5) and rf["retry_backoff_s"] is None
    assert rf["busiest"] == A and rf["imbalance"] == pytest.approx(1.5)
    assert by[B]["circuit_opened"] is False and by[A]["unhealthy_scrapes"] == 0  # t = 2 and 9 are outside
    rf = router.figures(rd, 0.0, 10.0)
    by = {r["backend"]: r for r in rf["by_backend"]}
    assert by[B]["circuit_opened"] is True and by[A]["unhealthy_scrapes"] == 1
    assert by[A]["running_max"] is None  # round robin keeps no in-flight gauge


def test_ties_name_the_first_backend_and_an_empty_window_has_no_busiest() -> None:
    rd = router.build(series(vllm_router_rows({A: 2.0, B: 2.0})))
    rf = router.figures(rd, 0.0, 10.0)
    assert rf["busiest"] == A and rf["imbalance"] == pytest.approx(1.0)
    idle = router.figures(router.build(series(vllm_router_rows({A: 0.0, B: 0.0}))), 0.0, 10.0)
    assert idle["busiest"] is None and idle["imbalance"] is None and idle["requests"] == 0
    assert render.line(idle).endswith("no request passed to a backend in the window.")


def test_smg_counts_a_backends_requests_from_its_circuit_breakers_outcomes() -> None:
    rows = []
    for t in range(11):
        for w, ok, bad in ((A, 4.0, 0.0), (B, 2.0, 2.0)):
            rows += [(t, "smg_worker_cb_outcomes_total", f"outcome=success;worker={w}", ok * t),
                     (t, "smg_worker_cb_outcomes_total", f"outcome=failure;worker={w}", bad * t),
                     (t, "smg_worker_requests_active", f"worker={w}", 3.0 if w == A else 7.0)]  # fmt: skip
    rf = router.figures(router.build(series(rows)), 0.0, 10.0)
    by = {r["backend"]: r for r in rf["by_backend"]}
    assert rf["router"] == "SGLang Model Gateway"
    assert (by[A]["requests"], by[A]["failures"]) == (pytest.approx(40.0), pytest.approx(0.0))
    assert (by[B]["requests"], by[B]["failures"]) == (pytest.approx(40.0), pytest.approx(20.0))
    assert (by[A]["running_max"], by[B]["running_max"]) == (3.0, 7.0)
    assert rf["retries"] is None


def test_each_backend_is_joined_to_the_replica_scraped_at_its_host_and_port() -> None:
    rd = router.build(series(vllm_router_rows({A: 3.0, B: 1.0})))
    reps = {"by": "instance", "count": 2, "busiest": None, "imbalance": None,
            "by_replica": [{"replica": "10.0.0.9:8000", "requests": 29.0}, {"replica": "10.0.0.11:8000", "requests": 9.0}]}  # fmt: skip
    by = {r["backend"]: r for r in router.figures(rd, 0.0, 10.0, reps)["by_backend"]}
    assert by[A]["engine_finished"] == 29.0 and by[B]["engine_finished"] is None  # B's page not scraped


def test_no_router_on_the_page_is_none_and_the_warnings_say_what_it_hid() -> None:
    engine_only = series([(t, "vllm:num_requests_running", "engine=0", 1.0) for t in range(3)])
    assert router.build(engine_only) is None and router.figures(None, 0, 1) is None
    rf = router.figures(router.build(series(vllm_router_rows({A: 3.0, B: 1.0}, circuit_at=4.0))), 0.0, 10.0)
    warned = router.warnings(rf)
    assert (
        warned[0]
        == "the router (vllm-router) counted failed requests at its backends: http://10.0.0.10:8000 1 of 10"
    )
    assert warned[1].startswith("the router (vllm-router) retried 5 requests: the client's TTFT")
    assert [w for w in warned if "stopped sending" in w] == [
        "the router (vllm-router) stopped sending to http://10.0.0.9:8000 for a while: its health check failed at 1 scrapes",
        "the router (vllm-router) stopped sending to http://10.0.0.10:8000 for a while: its circuit breaker opened",
    ]
    assert render.line(rf) == (
        "Router (vllm-router, 2 backends): the busiest, http://10.0.0.9:8000, got 75 % of 40 requests "
        "(1.50× an even share); 1 failed at a backend, 5 retried."
    )


def test_a_cache_aware_policy_that_had_no_tokens_to_match_is_named() -> None:
    """vllm-router 0.1.17's cache_aware in front of HTTP backends (the real page: 12 requests over 4 shared
    prompts, tests/fixtures) counted every placement `missing_tokens` — it sent them by load — and the
    report says so instead of letting the run pass for cache-aware routing."""
    fixture = "vllm-router-0.1.17-cache-aware-metrics.txt"
    rf = router.figures(router.build(page_frame(fixture)), 0.0, 10.0)
    assert rf is not None
    assert rf["prefix_decisions"] == {
        "missing_tokens": total(fixture, "vllm_router_prefix_routing_decisions_total")
    }
    assert rf["prefix_decisions"]["missing_tokens"] == 12.0 == rf["requests"]
    (warned,) = [w for w in router.warnings(rf) if "token ids" in w]
    assert warned.startswith("the router (vllm-router) placed 12 of 12 requests without their token ids")
    assert "this run measures that fallback, not cache-aware routing" in warned
    assert render.line(rf).endswith("retried; its cache-aware placements: 12 missing tokens.")
    # placements by prefix in the main: counted, not warned; a router without the counter has none
    rows = [(t, "vllm_router_prefix_routing_decisions_total", f"outcome={o};policy=cache_aware", v * t)
            for t in (0.0, 10.0) for o, v in (("prefix_hit", 0.8), ("missing_tokens", 0.2))]  # fmt: skip
    rf = router.figures(router.build(series(vllm_router_rows({A: 3.0, B: 1.0}) + rows)), 0.0, 10.0)
    assert rf["prefix_decisions"] == pytest.approx({"missing_tokens": 2.0, "prefix_hit": 8.0})
    assert not [w for w in router.warnings(rf) if "token ids" in w]
    smg = router.figures(router.build(page_frame("smg-0.3.2-metrics.txt")), 0.0, 10.0)
    assert smg is not None and smg["prefix_decisions"] is None


def test_the_policy_the_routers_page_names_is_read_and_said() -> None:
    """Both real pages name their policy in a `policy` label (smg on its worker selections, vllm-router on its
    cache-aware decisions): the Router line says it, and a starved replica is explained as a cache-aware
    policy's doing only under one (round robin starving a replica has other reasons)."""
    ca = router.figures(router.build(page_frame("vllm-router-0.1.17-cache-aware-metrics.txt")), 0.0, 10.0)
    rr = router.figures(router.build(page_frame("smg-0.3.2-metrics.txt")), 0.0, 10.0)
    assert (
        ca is not None and rr is not None and (ca["policy"], rr["policy"]) == ("cache_aware", "round_robin")
    )
    assert render.line(ca).startswith(
        "Router (vllm-router, policy cache_aware, 1 backend): "
    )  # it sent all to one
    assert render.line(rr).startswith("Router (SGLang Model Gateway, policy round_robin, 2 backends): ")
    plain = router.figures(router.build(series(vllm_router_rows({A: 4.0}))), 0.0, 10.0)  # names no policy
    assert (
        plain is not None
        and plain["policy"] is None
        and render.line(plain).startswith("Router (vllm-router, 1 backend)")
    )
    rs = replica_set({"10.0.0.9:8000": 1.0, "10.0.0.10:8000": 0.0})
    (line,) = router.policy_starved(dict(plain, router=router.SMG.name, policy="round_robin"), rs).values()
    assert line.startswith(
        "the router (SGLang Model Gateway, policy round_robin) sent replica 10.0.0.10:8000 0.0%"
    )
    assert "cache" not in line
    (line,) = router.policy_starved(dict(plain, router=router.SMG.name, policy="cache_aware"), rs).values()
    assert "a cache-aware policy does so" in line and "`--cache-threshold` 0.8 or 0.9" in line


def replica_set(shares: dict[str, float]) -> dict:
    rows = [{"replica": k, "requests": 40.0 * v, "requests_share": v} for k, v in shares.items()]
    return {"by": "instance", "count": len(rows), "by_replica": rows, "busiest": None, "imbalance": 2.0}


def test_a_replica_the_policy_starved_is_said_to_be_the_policys_not_the_replicas() -> None:
    """smg's cache_aware sent every agentic session to one replica (they all share a system prompt): the
    engines' pages alone would point at the other replica's placement; the router's page says its
    policy kept the load away. A backend the router sent its share but that finished little, or one
    that failed, keeps the replica's own line."""
    a, b = "10.0.0.9:8000", "10.0.0.10:8000"
    rs = replica_set({a: 1.0, b: 0.0})
    rf = router.figures(router.build(series(vllm_router_rows({A: 4.0}))), 0.0, 10.0)  # B never listed (smg)
    (line,) = replicas.starved_warnings(rs, router.policy_starved(rf, rs))
    assert line.startswith(
        f"the router (vllm-router) sent replica {b} 0.0% of the requests where an even share is 50%"
    )
    assert "its policy put the load on the other backends" in line
    assert "a cache threshold above the share every prompt has in common spreads new sessions;" in line
    smg = dict(rf, router=router.SMG.name)  # the gateway's option, as measured, is named for it alone
    assert "`--cache-threshold` 0.8 or 0.9 did so" in router.policy_starved(smg, rs)[b]
    # the router spread them evenly: the replica, not the policy, finished too few
    even = router.figures(router.build(series(vllm_router_rows({A: 2.0, B: 2.0}))), 0.0, 10.0)
    assert router.policy_starved(even, rs) == {}
    (line,) = replicas.starved_warnings(rs, router.policy_starved(even, rs))
    assert line.startswith(f"replica {b} finished 0.0% of the engine's requests") and "placement" in line
    # little sent, but what was sent failed there (B fails one in ten): the replica's line stays
    few = router.figures(router.build(series(vllm_router_rows({A: 8.0, B: 1.0}))), 0.0, 10.0)
    assert router.policy_starved(few, rs) == {}
    assert router.policy_starved(None, rs) == {} and replicas.starved_warnings(None) == []


def test_the_answer_says_what_the_router_retried_at_the_level_where_the_slo_breaks() -> None:
    from analysis.render.tables import router_hid

    rd = router.build(series(vllm_router_rows({A: 3.0, B: 1.0})))
    rf = router.figures(rd, 0.0, 10.0)
    rf["steps"] = [{"step": 0, **router.figures(rd, 0.0, 1.0)}, {"step": 1, **router.figures(rd, 2.0, 10.0)}]
    assert router_hid(rf, 1) == "the router retried 4 requests there (1 failed at http://10.0.0.10:8000)"
    assert router_hid(rf, 0) is None  # half a retry in that window rounds to none
    assert router_hid(rf, 7) is None and router_hid(None, 1) is None


def test_a_comparison_shows_each_runs_spread_from_its_replicas_or_else_its_router(tmp_path: Path) -> None:
    """Replica pages give the imbalance of the engines' finished requests; a run with only a router's page
    gives the router's; a run with neither leaves the column blank. Neither column is ranked."""
    from analysis.compare import METRICS, compare, shown
    from analysis.render.comparison import markdown
    from tests.support.synthetic import T0
    from tests.unit.analysis.test_models import CHAT, analyze, two_models
    from tests.unit.analysis.test_replicas import two_instances, write_metrics

    replicas = analyze(two_instances(tmp_path / "reps"))
    routed = two_models(tmp_path / "routed" / "run")
    write_metrics(routed, [[T0 + t, m, lab, v] for t, m, lab, v in vllm_router_rows({A: 3.0, B: 1.0})])
    plain = analyze(two_models(tmp_path / "plain" / "run"))
    c = compare([replicas, analyze(routed), plain], CHAT)
    got = [(r.figures.replica_imbalance, r.figures.router_retries) for r in c.runs]
    assert got[0] == (pytest.approx(4 / 3), None)
    assert got[1] == (pytest.approx(1.5), pytest.approx(5.0))  # the router's 3:1, over the run's 10 s
    assert got[2] == (None, None)
    assert {"replica_imbalance", "router_retries"} <= set(shown(c.rows))
    assert METRICS["replica_imbalance"] == METRICS["router_retries"] == 0
    assert "replica imbalance (×)" in markdown(c) and "router retries" in markdown(c)
