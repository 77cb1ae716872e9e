"""Per-replica server figures (analysis/replicas.py) on a synthetic server_metrics.csv whose truth is known:
two vLLM instances scraped together (one `t` per round, each sample labelled `instance`), known counter
increases per level → each replica's requests, share, hit rate, the busiest and the imbalance; the
summed `server` figures equal the replicas' sum; ties, a missed scrape, the replica key (instance,
engine, both; none for a single engine="0" page), natural order, and the report's lines."""

from __future__ import annotations

import csv
import html
import json
from pathlib import Path

import pandas as pd
import pytest

from analysis import api, replicas
from analysis.render import replicas as render
from analysis.render.tables import server_ran
from tests.support.synthetic import T0
from tests.unit.analysis.test_models import CHAT, analyze, two_models

approx = pytest.approx
A, B = "10.0.0.9:8000", "10.0.0.10:8000"  # A first: natural order (a string sort puts .10 first)
E2E, TTFT = "vllm:e2e_request_latency_seconds", "vllm:time_to_first_token_seconds"


def rates(rid: str, t: int, tie: bool) -> float:
    """Requests finished per second in second (t-1, t]: B 3/s throughout, A 1/s at level 0 (t ≤ 10) and
    2/s at level 1 (10 < t ≤ 20); none after 20. With `tie`, both 2/s."""
    if t <= 0 or t > 20:
        return 0.0
    if tie:
        return 2.0
    return 3.0 if rid == B else (1.0 if t <= 10 else 2.0)


def replica_rows(rid: str, labels: str, tie: bool = False, skip: set[int] | None = None) -> list[list]:
    """One instance's scrapes at T0 + t, t = 0..22 (but `skip`): counters growing by `rates` (each
    request 20 generation tokens, 100 prefix-cache queries of which A hits 50, B 90; TTFT 0.1 s, queue
    0.02 s, E2E 1 s each); running A 2, B 6; waiting A 1, B 0 up to t = 10 and 5 after."""
    rows, n = [], 0.0
    hit = 50 if rid == A else 90
    for t in range(23):
        n += rates(rid, t, tie)
        if t in (skip or set()):
            continue
        at = T0 + t
        waiting = 1 if rid == A else (0 if t <= 10 else 5)
        rows += [[at, "vllm:num_requests_running", labels, 2 if rid == A else 6],
                 [at, "vllm:num_requests_waiting", labels, waiting],
                 [at, E2E + "_count", labels, n], [at, E2E + "_sum", labels, n * 1.0],
                 [at, TTFT + "_count", labels, n], [at, TTFT + "_sum", labels, n * 0.1],
                 [at, "vllm:request_queue_time_seconds_count", labels, n],
                 [at, "vllm:request_queue_time_seconds_sum", labels, n * 0.02],
                 [at, "vllm:generation_tokens_total", labels, n * 20],
                 [at, "vllm:prefix_cache_queries_total", labels, n * 100],
                 [at, "vllm:prefix_cache_hits_total", labels, n * hit]]  # fmt: skip
    return rows


def labels(instance: str, engine: str = "0") -> str:
    return f"engine={engine};instance={instance};model_name=m"


def write_metrics(run: Path, rows: list[list]) -> Path:
    with open(run / "server_metrics.csv", "w", newline="") as fh:
        csv.writer(fh).writerows([["t", "metric", "labels", "value"], *sorted(rows, key=lambda r: r[0])])
    return run


def two_instances(tmp: Path, tie: bool = False, skip: set[int] | None = None) -> Path:
    run = two_models(tmp / "run")
    return write_metrics(run, replica_rows(A, labels(A), tie, skip) + replica_rows(B, labels(B), tie))


def test_each_replica_is_read_alone_and_the_totals_are_their_sum(tmp_path: Path) -> None:
    s = analyze(two_instances(tmp_path))
    rs = s.server["replicas"]
    assert rs is not None and (rs["by"], rs["count"]) == ("instance", 2)
    a, b = rs["by_replica"]
    assert (a["replica"], b["replica"]) == (A, B)
    # the run's window: first send (T0) → last completion (T0 + 20.7); nothing finishes after 20
    assert (a["requests"], b["requests"]) == (approx(30), approx(60))
    assert (a["requests_share"], b["requests_share"]) == (approx(1 / 3), approx(2 / 3))
    assert (rs["busiest"], rs["imbalance"]) == (B, approx(4 / 3))
    assert (a["prefix_cache_hit_rate"], b["prefix_cache_hit_rate"]) == (approx(0.5), approx(0.9))
    assert (a["generation_tokens"], b["generation_tokens"]) == (approx(600), approx(1200))
    assert (a["running_mean"], b["running_mean"], a["waiting_max"], b["waiting_max"]) == (2, 6, 1, 5)
    assert (a["server_ttft_mean_s"], b["server_queue_mean_s"]) == (approx(0.1), approx(0.02))
    sv = s.server  # the summed view is the replica set's
    assert sv["generation_tokens"] == approx(a["generation_tokens"] + b["generation_tokens"])
    assert sv["server_gen_tok_per_s"] == approx(a["server_gen_tok_per_s"] + b["server_gen_tok_per_s"])
    assert sv["running_mean"] == approx(a["running_mean"] + b["running_mean"]) == 8
    assert sv["prefix_cache_hit_rate"] == approx((30 * 50 + 60 * 90) / (90 * 100))
    first, second = (st.server["replicas"] for st in s.steps)
    assert [r["requests"] for r in first["by_replica"]] == [approx(10), approx(30)]
    assert (first["busiest"], first["imbalance"]) == (B, approx(1.5))
    assert [r["requests"] for r in second["by_replica"]] == [approx(20), approx(30)]
    assert (second["busiest"], second["imbalance"]) == (B, approx(1.2))
    assert json.loads(s.to_json())["steps"][1]["server"]["replicas"]["busiest"] == B


def test_the_report_names_the_busiest_and_the_most_queued_replica(tmp_path: Path) -> None:
    run = two_instances(tmp_path)
    s = analyze(run)
    line = f"Replicas (2, by instance): the busiest, {B}, finished 67 % of the engine's requests (1.33× an even share)."
    assert render.line(s.server["replicas"]) == line
    md = api.summary_markdown(s)
    assert f"\n{line}\n" in md
    assert f"| {A} | 30 | 33.3 % | 29.0 | 2.0 | 2 | 1 | – | 50.0 % | 100 | 20.0 |" in md
    assert "| replica | requests | share | gen tok/s | running mean | running max | queued max |" in md
    # level 1 (where chat breaks): B queued up to 5, A up to 1 — the sum is the set's 6
    assert server_ran(s.steps[1]) == (
        f"the server ran up to 8 requests at once and queued up to 6; the most queued replica, {B}, up "
        "to 5 (the others up to 1)"
    )
    assert server_ran(s.steps[0]).endswith(f"; the most queued replica, {A}, up to 1 (the others up to 0)")
    console = api.console_text(s).splitlines()
    assert console[1].endswith(f"replica, {B}, up to 5 (the others up to 1).")
    assert line in console  # after the server's line
    api.write_run(api.analyze(api.load_run(run), CHAT), with_plots=False)
    page = (run / "report.html").read_text()
    assert f"<p>{html.escape(line)}</p>" in page and f"<td>{A}</td>" in page


def test_equal_requests_make_the_first_replica_the_busiest_at_an_even_share(tmp_path: Path) -> None:
    rs = analyze(two_instances(tmp_path, tie=True)).server["replicas"]
    assert [r["requests"] for r in rs["by_replica"]] == [approx(40), approx(40)]
    assert (rs["busiest"], rs["imbalance"]) == (A, 1.0)


def test_a_missed_scrape_round_interpolates_the_replicas_counter(tmp_path: Path) -> None:
    s = analyze(two_instances(tmp_path, skip={5, 15}))
    a, b = s.server["replicas"]["by_replica"]
    assert (a["requests"], b["requests"]) == (approx(30), approx(60))
    first, second = (st.server["replicas"]["by_replica"][0] for st in s.steps)
    assert (first["requests"], second["requests"]) == (approx(10), approx(20))


def test_without_a_replica_set_replicas_is_null(tmp_path: Path) -> None:
    """A single vLLM engine labels engine="0" alone: one replica, no section."""
    run = write_metrics(two_models(tmp_path / "run"), replica_rows(A, "engine=0;model_name=m"))
    s = analyze(run)
    assert s.server is not None and s.server["replicas"] is None
    assert all(st.server["replicas"] is None for st in s.steps)
    assert "Replicas (" not in api.summary_markdown(s) and "most queued" not in api.console_text(s)
    assert render.markdown(None) == [] and render.html(None) == ""


def frame(label_sets: list[str]) -> pd.DataFrame:
    """A sample of vllm:num_requests_running per label set, at two scrapes."""
    return pd.DataFrame(
        [(t, "vllm:num_requests_running", x, 1.0) for t in (T0, T0 + 1) for x in label_sets],
        columns=["t", "metric", "labels", "value"],
    )


def test_the_replica_key() -> None:
    assert replicas.split(frame(["engine=0;model_name=m"])) is None
    assert replicas.split(frame(["model_name=m"])) is None
    by, frames = replicas.split(frame(["engine=1;model_name=m", "engine=0;model_name=m"]))
    assert (by, list(frames)) == ("engine", ["0", "1"])
    both = [labels(i, e) for i in (B, A) for e in "10"]
    by, frames = replicas.split(frame(both))
    assert by == "instance+engine"
    assert list(frames) == [f"{A} engine=0", f"{A} engine=1", f"{B} engine=0", f"{B} engine=1"]
    by, frames = replicas.split(frame([labels(B), labels(A), "model_name=m"]))  # unlabelled: no one's
    assert (by, list(frames), [len(f) for f in frames.values()]) == ("instance", [A, B], [2, 2])


def test_replicas_come_in_natural_order() -> None:
    by, frames = replicas.split(frame([f"engine={e}" for e in ("10", "9", "2", "1")]))
    assert (by, list(frames)) == ("engine", ["1", "2", "9", "10"])
    assert sorted(["w10", "w9", "x1"], key=replicas.natural_key) == ["w9", "w10", "x1"]


def test_no_finished_requests_leave_no_busiest_replica(tmp_path: Path) -> None:
    """Only gauges on the page: the table still shows each replica, the line says what is missing."""
    rows = [
        r for rid in (A, B) for r in replica_rows(rid, labels(rid)) if "running" in r[1] or "waiting" in r[1]
    ]
    rs = analyze(write_metrics(two_models(tmp_path / "run"), rows)).server["replicas"]
    assert rs is not None and (rs["busiest"], rs["imbalance"]) == (None, None)
    assert [r["requests"] for r in rs["by_replica"]] == [None, None]
    assert (
        render.line(rs)
        == "Replicas (2, by instance): no finished requests counted by the engine in the window."
    )


def test_a_replica_far_below_an_even_share_is_warned_about() -> None:
    from analysis.replicas import starved_warnings

    def rs(shares: list[float | None]) -> dict:
        rows = [{"replica": f"r{i}", "requests_share": s} for i, s in enumerate(shares)]
        return {"by": "instance", "count": len(shares), "by_replica": rows, "busiest": "r0", "imbalance": 1.0}

    (line,) = starved_warnings(rs([0.986, 0.014]))
    assert line.startswith("replica r1 finished 1.4% of the engine's requests where an even share is 50%")
    assert starved_warnings(rs([0.74, 0.26])) == []  # above half an even share (25 %)
    assert len(starved_warnings(rs([0.5, 0.4, 0.1, 0.0]))) == 2  # 10 % and 0 % of a 25 % share
    assert starved_warnings(rs([None, None]) | {"imbalance": None}) == [] and starved_warnings(None) == []
