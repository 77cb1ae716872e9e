"""LoRA adapters from the server's /metrics (analysis/lora.py) on a synthetic server_metrics.csv whose
truth is known: the current state of vLLM's lora_requests_info among its stale label sets, the requests
deferred for an adapter slot, per window and per level, and the report's lines."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pandas as pd
import pytest

from analysis import api
from analysis.engines import ENGINES, VLLM
from analysis.render.server import lora_line
from analysis.samples import Samples
from tests.support.synthetic import T0
from tests.unit.analysis.test_models import CHAT, analyze, two_models

approx = pytest.approx
INFO, BY_REASON = "vllm:lora_requests_info", "vllm:num_requests_waiting_by_reason"
DEFERRED = [1, 2, 3, 1, 2, 3, 0, 0, 0, 0]  # at level 1's ten scrapes; none at level 0 or after


def info_labels(running: str, waiting: str, max_lora: int = 1, engine: str | None = None) -> str:
    """server_metrics.csv's labels of one lora_requests_info set: `k=v;k=v`, keys sorted."""
    pairs = {"max_lora": str(max_lora), "running_lora_adapters": running, "waiting_lora_adapters": waiting}
    if engine is not None:
        pairs["engine"] = engine
    return ";".join(f"{k}={v}" for k, v in sorted(pairs.items()))


def lora_scrapes(path: Path, deferred: bool = True) -> None:
    """One scrape a second, at T0 + t + 0.5 for t in 0..20 (two 10 s levels, then the run's tail).
    Level 0: adapter a runs alone. Level 1: a and b take turns in the one slot (max_lora 1), the other
    waiting, b first. Every label set ever set stays on the page with the time it was last current —
    among them a stale `a,b` from before the run, which must never count as running. The queue: 1 for
    capacity at level 1, plus DEFERRED deferred for an adapter slot."""
    last = {("a,b", ""): T0 - 100.0}  # a state of the server from before this run
    rows = [["t", "metric", "labels", "value"]]
    for t in range(21):
        at = T0 + t + 0.5
        level1 = 10 <= t < 20
        now = ("a", "") if not level1 else (("b", "a") if t % 2 == 0 else ("a", "b"))
        last[now] = at - 0.2  # set by the engine's last step before the scrape
        rows += [[at, INFO, info_labels(r, w), v] for (r, w), v in last.items()]
        d = DEFERRED[t - 10] if level1 else 0
        rows += [[at, "vllm:num_requests_running", "", 2], [at, "vllm:num_requests_waiting", "", d + level1]]
        if deferred:
            rows += [[at, BY_REASON, "engine=0;model_name=m;reason=capacity", int(level1)],
                     [at, BY_REASON, "engine=0;model_name=m;reason=deferred", d]]  # fmt: skip
    with open(path / "server_metrics.csv", "w", newline="") as fh:
        csv.writer(fh).writerows(rows)


def test_the_mapping_is_vllms_alone() -> None:
    assert VLLM.lora_info == (INFO,) and VLLM.waiting_by_reason == (BY_REASON,)
    assert all(not e.lora_info and not e.waiting_by_reason for e in ENGINES if e is not VLLM)


def test_the_latest_label_set_is_the_state_and_deferred_requests_are_counted(tmp_path: Path) -> None:
    run = two_models(tmp_path / "run")
    lora_scrapes(run)
    s = analyze(run)
    sv = s.server
    assert sv["sources"]["lora"] == INFO and sv["sources"]["waiting_deferred"] == BY_REASON
    # never 2 running: the stale `a,b` set is older than the current one at every scrape
    assert (sv["lora_running_max"], sv["lora_running_max_adapters"], sv["lora_max_loras"]) == (1, ["a"], 1)
    # the run's window (first send → b's last completion at 20.7 s) holds all 21 scrapes, 6 with deferred
    assert (sv["scrapes"], sv["waiting_deferred_share"], sv["waiting_deferred_max"]) == (
        21,
        approx(6 / 21),
        3,
    )
    first, second = (st.server for st in s.steps)
    assert (first["waiting_deferred_share"], first["waiting_deferred_max"]) == (0.0, 0)
    assert first["lora_running_max_adapters"] == ["a"]
    assert (second["waiting_deferred_share"], second["waiting_deferred_max"]) == (approx(0.6), 3)
    assert second["lora_running_max_adapters"] == ["b"]  # the first of its scrapes at the peak
    assert json.loads(s.to_json())["steps"][1]["server"]["waiting_deferred_max"] == 3
    line = (
        "LoRA adapters: up to 1 running at once (a; max_loras 1); requests waited for an adapter slot in "
        "29 % of scrapes (up to 3 deferred) — raise --max-loras or spread adapters across replicas."
    )
    text = api.console_text(s)
    assert line in text.splitlines() and f"\n{line}\n" in api.summary_markdown(s)
    assert text.splitlines()[1] == (
        "Answer: serves 2.4 users within chat at 90 % (95 % interval [2.4–2.4]); breaks at 4 — there, the "
        "server ran up to 2 requests at once and queued up to 4, and deferred up to 3 for an adapter slot."
    )


def test_without_the_deferred_series_the_line_says_what_it_can(tmp_path: Path) -> None:
    run = two_models(tmp_path / "run")
    lora_scrapes(run, deferred=False)
    s = analyze(run)
    assert s.server["waiting_deferred_share"] is None and s.server["waiting_deferred_max"] is None
    assert s.server["lora_running_max"] == 1 and "waiting_deferred" not in s.server["sources"]
    text = api.console_text(s)
    assert "LoRA adapters: up to 1 running at once (a; max_loras 1)." in text.splitlines()
    assert text.splitlines()[1].endswith("there, the server ran up to 2 requests at once and queued up to 4.")
    api.write_run(api.analyze(api.load_run(run), CHAT), with_plots=False)
    assert (
        "<p>LoRA adapters: up to 1 running at once (a; max_loras 1).</p>" in (run / "report.html").read_text()
    )


def test_a_server_without_lora_has_no_figures_and_no_line(tmp_path: Path) -> None:
    run = two_models(tmp_path / "run")
    lora_scrapes(run)
    text = (run / "server_metrics.csv").read_text().splitlines()
    (run / "server_metrics.csv").write_text(
        "\n".join(x for x in text if INFO not in x and BY_REASON not in x)
    )
    s = analyze(run)
    assert all(s.server[k] is None for k in ("lora_max_loras", "lora_running_max", "lora_running_max_adapters",
                                              "waiting_deferred_share", "waiting_deferred_max"))  # fmt: skip
    assert lora_line(s.server) is None and "LoRA" not in api.console_text(s) + api.summary_markdown(s)


def test_a_replica_set_counts_the_busiest_engine_and_sums_the_deferred(tmp_path: Path) -> None:
    """Two engines, each its own label sets (`engine`): 0 runs a, 1 runs b and c (max_lora 2); each
    defers 1 at every scrape."""
    run = two_models(tmp_path / "run")
    rows = [["t", "metric", "labels", "value"]]
    for t in range(21):
        at = T0 + t + 0.5
        rows += [[at, INFO, info_labels("a", "c", 2, "0"), at - 0.1], [at, INFO, info_labels("b,c", "", 2, "1"), at - 0.3],
                 [at, INFO, info_labels("", "", 2, "1"), T0 - 5.0], [at, "vllm:num_requests_running", "", 3]]  # fmt: skip
        rows += [[at, BY_REASON, f"engine={e};model_name=m;reason=deferred", 1] for e in "01"]
    with open(run / "server_metrics.csv", "w", newline="") as fh:
        csv.writer(fh).writerows(rows)
    sv = analyze(run).server
    assert (sv["lora_running_max"], sv["lora_running_max_adapters"], sv["lora_max_loras"]) == (
        2,
        ["b", "c"],
        2,
    )
    assert (sv["waiting_deferred_share"], sv["waiting_deferred_max"]) == (1.0, 2)


def test_two_scraped_urls_are_two_engines_though_both_are_engine_0(tmp_path: Path) -> None:
    """Two instances (`instance` label: two /metrics URLs), each a single vLLM engine "0": one runs a
    (its state stamped last), the other b and c. Keyed on `engine` alone the newer state would hide the
    other replica's; keyed on (instance, engine) both count, and the busiest is the one running two."""
    run = two_models(tmp_path / "run")
    rows = [["t", "metric", "labels", "value"]]
    for t in range(21):
        at = T0 + t + 0.5
        for host, running, stamp in (("10.0.0.1:8000", "a", at - 0.1), ("10.0.0.2:8000", "b,c", at - 0.3)):
            rows += [[at, INFO, f"{info_labels(running, '', 2, '0')};instance={host}", stamp],
                     [at, INFO, f"{info_labels('', '', 2, '0')};instance={host}", T0 - 5.0]]  # fmt: skip
    with open(run / "server_metrics.csv", "w", newline="") as fh:
        csv.writer(fh).writerows(rows)
    df = pd.read_csv(run / "server_metrics.csv", dtype={"labels": str}, keep_default_na=False)
    latest = Samples(df).latest_labels(INFO, ("instance", "engine"))
    assert len(latest) == 21 and all(len(states) == 2 for states in latest)
    assert sorted(x["running_lora_adapters"] for x in latest.iloc[0]) == ["a", "b,c"]
    assert [x["running_lora_adapters"] for x in Samples(df).latest_labels(INFO).iloc[0]] == [
        "a"
    ]  # engine only
    sv = analyze(run).server
    assert (sv["lora_running_max"], sv["lora_running_max_adapters"]) == (2, ["b", "c"])


BASE = {"lora_running_max": 1.0, "lora_running_max_adapters": ["b"], "lora_max_loras": 1.0}


@pytest.mark.parametrize(
    ("figures", "line"),
    [
        ({**BASE, "waiting_deferred_share": 0.0, "waiting_deferred_max": 0.0},
         "LoRA adapters: up to 1 running at once (b; max_loras 1); no request waited for an adapter slot."),
        ({**BASE, "waiting_deferred_share": 0.63, "waiting_deferred_max": 3.0},
         "LoRA adapters: up to 1 running at once (b; max_loras 1); requests waited for an adapter slot in 63 % "
         "of scrapes (up to 3 deferred) — raise --max-loras or spread adapters across replicas."),
        ({**BASE, "lora_max_loras": 4.0, "waiting_deferred_share": 0.2, "waiting_deferred_max": 1.0},
         "LoRA adapters: up to 1 running at once (b; max_loras 4); requests were deferred in 20 % of scrapes "
         "(up to 1 deferred) with adapter slots to spare: not the LoRA budget."),
        ({**BASE, "lora_running_max": 0.0, "lora_running_max_adapters": [], "waiting_deferred_share": None,
          "waiting_deferred_max": None}, "LoRA adapters: none running at any scrape (max_loras 1)."),
    ],
    ids=["none-deferred", "the-budget", "slots-to-spare", "none-running"],
)  # fmt: skip
def test_the_lora_line(figures: dict, line: str) -> None:
    assert lora_line(figures) == line  # type: ignore[arg-type]
