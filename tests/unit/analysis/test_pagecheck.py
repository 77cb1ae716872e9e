"""Whose page was scraped (analysis/pagecheck.py), on synthetic server_metrics.csv frames whose truth is
known: two engines' pages answering one URL in turn (what vllm-router makes of `/metrics`) are dropped
with a warning naming the URL; a restart (one fall) is not; of two scraped URLs only the one answered in
turn goes; and an engine page that counted half the client's answered requests (one replica of two),
twice them (others on the server) or about as many (the run's server) is named, or not, as such."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from analysis import pagecheck, server

E2E = "vllm:e2e_request_latency_seconds_count"


def frame(rows: list[tuple[float, str, str, float]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["t", "metric", "labels", "value"])


def engine_page(t: float, n: float, labels: str = "engine=0") -> list[tuple[float, str, str, float]]:
    """One vLLM page at `t` that has finished `n` requests (20 tokens each); 2 running."""
    return [(t, E2E, labels, n), (t, "vllm:e2e_request_latency_seconds_sum", labels, n * 0.5),
            (t, "vllm:generation_tokens_total", labels, 20 * n),
            (t, "vllm:num_requests_running", labels, 2.0)]  # fmt: skip


def in_turn(labels: str = "engine=0", scrapes: int = 12) -> list:
    """Replica A (3 requests a second) and B (2 a second, from 100 before the run) answering each scrape in
    turn: B's counters are ahead, so every step from B to A falls."""
    return [
        r
        for t in range(scrapes)
        for r in engine_page(float(t), 3.0 * t if t % 2 == 0 else 100 + 2.0 * t, labels)
    ]


def test_a_page_answered_in_turn_is_dropped_with_a_warning_naming_it() -> None:
    df = frame(in_turn())
    assert pagecheck.falls(df) == {"": (5, 11)}  # B → A at t = 2, 4, 6, 8, 10
    kept, warned = pagecheck.drop(df, "http://10.0.0.1:8000/metrics")
    assert kept.empty and len(warned) == 1
    assert warned[0].startswith(
        "server_metrics.csv: the page at http://10.0.0.1:8000/metrics went back at 5 of 11 scrapes — its counters "
        "fell and rose again, so different processes answered it in turn"
    )


def test_a_restart_falls_once_and_is_kept() -> None:
    rows = [r for t in range(12) for r in engine_page(float(t), 5.0 * t if t < 6 else 2.0 * (t - 6))]
    df = frame(rows)
    assert pagecheck.falls(df) == {"": (1, 11)}
    kept, warned = pagecheck.drop(df)
    assert len(kept) == len(df) and warned == []


def test_two_falls_in_a_long_run_are_restarts_not_turns() -> None:
    rows = [r for t in range(40) for r in engine_page(float(t), float(t % 15))]  # falls at t = 15 and 30
    fell, steps = pagecheck.falls(frame(rows))[""]
    assert (fell, steps) == (2, 39) and not pagecheck.answered_in_turn(fell, steps)


def test_of_two_urls_only_the_one_answered_in_turn_is_dropped() -> None:
    steady = [r for t in range(12) for r in engine_page(float(t), 4.0 * t, "engine=0;instance=10.0.0.2:8000")]
    df = frame(in_turn("engine=0;instance=router:8000") + steady)
    kept, warned = pagecheck.drop(df, "ignored with several URLs")
    assert len(kept) == len(steady) and set(kept["labels"]) == {"engine=0;instance=10.0.0.2:8000"}
    assert len(warned) == 1 and warned[0].startswith(
        "server_metrics.csv: the page of router:8000 went back at 5"
    )


def client_rows(n: int, t0: float = 0.0, t1: float = 10.0) -> pd.DataFrame:
    """`n` requests answered in full inside [t0, t1] (sent evenly, 0.5 s each), plus one failed."""
    sends = np.linspace(t0, t1 - 0.5, n)
    return pd.DataFrame(
        {"t_start_unix": [*sends, t0], "e2e_s": [0.5] * n + [np.nan], "ok": [True] * n + [False]}
    )


@pytest.mark.parametrize(
    ("client", "said"),
    [
        (100, "the page is part of the server"),
        (55, None),
        (45, None),
        (20, "others used the server"),
        (42, None),
    ],
)
def test_an_engine_page_that_counted_another_number_of_requests_is_named(
    client: int, said: str | None
) -> None:
    d, _ = server.build(frame([r for t in range(11) for r in engine_page(float(t), 5.0 * t)]))  # 50 finished
    warned = pagecheck.coverage(d, client_rows(client))
    if said is None:  # within 0.8–1.25 of the client's, or fewer than 10 apart
        assert warned == []
    else:
        assert len(warned) == 1 and said in warned[0], warned
        said_client = f"the client {client} answered" if client > 50 else f"the client sent {client + 1}"
        assert warned[0].startswith(
            f"server_metrics.csv: the engine's page counted 50 finished requests from its first scrape to its "
            f"last, {said_client}"
        )
    assert pagecheck.coverage(None, client_rows(10)) == []


def test_requests_the_client_gave_up_on_are_not_others_traffic() -> None:
    """The engine finished 50; the client got 20 answered and gave up on 30 (a timeout, a stall): it sent
    51, so nothing says others used the server."""
    d, _ = server.build(frame([r for t in range(11) for r in engine_page(float(t), 5.0 * t)]))
    rows = client_rows(50)
    rows.loc[20:49, "ok"] = False
    assert pagecheck.coverage(d, rows) == []


def test_production_stacks_router_page_is_not_read_as_an_engine() -> None:
    """vLLM production-stack's router answers `/metrics` with `vllm:` names of its own (fixture written from
    its source): scraped alone it would be read as a vLLM engine running the 8 requests it has in flight;
    it is left out with a warning naming it. Beside an engine's page only the router's page goes."""
    from tests.support.metric_pages import FIX, scrapes

    router_page = scrapes((FIX / "production-stack-router-metrics.txt").read_text())
    d, _ = server.build(router_page)
    assert d is not None and d.gauges["running"].iloc[-1] == 8.0  # what reading it as an engine made of it
    kept, (line,) = pagecheck.drop_routers(router_page, "http://router:80/metrics")
    assert kept.empty
    assert line.startswith(
        "server_metrics.csv: the page at http://router:80/metrics is vLLM production-stack's router"
    )
    assert "left out" in line and "--server-metrics URL,URL" in line
    # the router's page and one engine's, told apart by `instance`
    both = pd.concat(
        [router_page.assign(labels=router_page["labels"] + ";instance=router:80"),
         frame([r for t in (1000.0, 1010.0) for r in engine_page(t, 12.0 if t > 1000 else 0.0, "instance=e1:8000")])],
        ignore_index=True,
    )  # fmt: skip
    kept, (line,) = pagecheck.drop_routers(both)
    assert line.startswith("server_metrics.csv: the page of router:80 is vLLM production-stack's router")
    assert set(kept["labels"]) == {"instance=e1:8000"}
    d, _ = server.build(kept)
    assert d is not None and d.gauges["running"].iloc[-1] == 2.0  # the engine's own
    # an engine's page alone has none of the router's families
    assert pagecheck.drop_routers(frame(in_turn()))[1] == []
