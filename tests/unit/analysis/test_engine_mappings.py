"""The engine mapping (analysis/engines.py, analysis/server.py) on each engine's /metrics page: which
engine a page is, what each common series is read from, counter arithmetic (resets, late label sets,
windows), the engine's TTFT beside the client's, histogram quantiles."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pytest import approx

from analysis.engines import (
    DYNAMO,
    LLAMACPP,
    LMDEPLOY,
    NIM,
    SGLANG,
    TGI,
    TRTLLM,
    VLLM,
    detect,
)
from analysis.render.server import headline_rows
from analysis.samples import histogram_quantile
from analysis.server import build, summarize, window_figures
from loadgen.monitors.promtext import parse
from tests.support.metric_pages import FIX, LLAMACPP_PAGE, grep, page, scrapes


def figures(text: str, drop: tuple[str, ...] = ()) -> dict:
    """The figures of one page seen as a run's two scrapes (tests/support/metric_pages.py scrapes)."""
    return dict(window_figures(build(scrapes(text, drop=drop))[0], 1000.0, 1010.0))


def assert_renamed_page_maps_alike(text: str, old: str, new: str, engine) -> None:
    """The page with its names' prefix `old` written `new` (a gateway's or a release's spelling) is the
    same engine with the same figures."""
    renamed, _ = build(scrapes(text.replace(old, new)))
    assert renamed.engine is engine
    assert dict(window_figures(renamed, 1000.0, 1010.0)) == figures(text)


@pytest.mark.parametrize(
    ("engine", "expected"),
    [
        ("vllm", VLLM),
        ("sglang", SGLANG),
        ("tgi", TGI),
        ("lmdeploy", LMDEPLOY),
        ("trtllm", TRTLLM),
        ("dynamo", DYNAMO),
        ("nim", NIM),
    ],
)
def test_detect_engine(engine: str, expected) -> None:
    assert detect(m for m, _, _ in parse(page(engine))) is expected
    assert detect(m for m, _, _ in parse(LLAMACPP_PAGE.read_text())) is LLAMACPP
    assert detect(["simserver:steps_total", "vllm:num_requests_running"]) is VLLM
    assert detect(["http_requests_total"]) is None


def test_vllm_mapping() -> None:
    text = page("vllm")
    d, warnings = build(scrapes(text))
    assert not warnings and d.engine is VLLM and not d.simulated
    f = window_figures(d, 1000.0, 1010.0)
    assert f["running_mean"] == grep(text, "vllm:num_requests_running")
    assert f["kv_cache_usage_max"] == grep(text, "vllm:kv_cache_usage_perc")
    hits, queries = grep(text, "vllm:prefix_cache_hits_total"), grep(text, "vllm:prefix_cache_queries_total")
    assert queries > 0 and f["prefix_cache_hit_rate"] == approx(hits / queries)
    assert f["prefix_cache_hit_source"] == "counters"
    assert f["preemptions"] == grep(text, "vllm:num_preemptions_total")
    n = grep(text, "vllm:time_to_first_token_seconds_count")
    assert f["server_ttft_count"] == n
    assert f["server_ttft_mean_s"] == approx(grep(text, "vllm:time_to_first_token_seconds_sum") / n)
    assert f["server_ttft_p50_s"] <= f["server_ttft_p90_s"] <= f["server_ttft_p99_s"]
    assert f["tokens_per_step"] == approx(
        grep(text, "vllm:iteration_tokens_total_sum") / grep(text, "vllm:iteration_tokens_total_count")
    )
    assert f["server_gen_tok_per_s"] == approx(grep(text, "vllm:generation_tokens_total") / 10.0)
    assert f["prefix_cache_hit_tiers"] == {"device": 1.0}  # every hit from the engine's own KV cache


def test_vllm_hit_rate_is_its_cached_prompt_tokens_with_the_tiers_that_served_them() -> None:
    """vLLM 0.32's page (a real one, given hits here): the hit rate is prompt_tokens_cached /
    prompt_tokens — counted once per request at its prefill, the local cache's and a KV connector's
    tiers together — not the local cache's lookups; the tiers' shares of the hits come from
    prompt_tokens_cached_by_source."""
    real = (FIX / "vllm-0.32-cpu-metrics.txt").read_text()
    served = {"device": 600.0, "host": 150.0, "disk": 50.0}
    text = re.sub(r"^(vllm:prompt_tokens_cached_total\{.*\}) 0\.0$", r"\1 800.0", real, flags=re.M)
    for tier, n in served.items():
        text = text.replace(f'source="{tier}"}} 0.0', f'source="{tier}"}} {n}')
    assert text.count(" 800.0") == 1 and all(f'"{t}"}} {n}' in text for t, n in served.items())
    d, _ = build(scrapes(text))
    f = window_figures(d, 1000.0, 1010.0)
    assert f["prefix_cache_hit_rate"] == approx(800.0 / grep(text, "vllm:prompt_tokens_total"))
    assert d.sources["prefix_cache"] == "vllm:prompt_tokens_cached_total / vllm:prompt_tokens_total"
    assert f["prefix_cache_hit_tiers"] == approx({"device": 0.75, "host": 0.1875, "disk": 0.0625})
    assert list(f["prefix_cache_hit_tiers"]) == ["device", "host", "disk"]  # largest first; p2p served none
    rows = dict(
        headline_rows(
            {
                **f,
                "engine": "vllm",
                "client_cached_share": None,
                "ttft_compare": None,
                "client_minus_server_ttft_s": None,
            }
        )
    )
    assert rows["prefix-cache hit rate"].endswith("(device 75.0 %, host 18.8 %, disk 6.2 % of the hits)")
    # an older vLLM (no cached-prompt counter): its local cache's hits over its lookups
    d, _ = build(scrapes(text, drop=("vllm:prompt_tokens_cached_total",)))
    assert d.sources["prefix_cache"] == "vllm:prefix_cache_hits_total / vllm:prefix_cache_queries_total"


def test_sglang_mapping_counters_then_gauge_fallback() -> None:
    text = page("sglang")
    d, _ = build(scrapes(text))
    assert d.engine is SGLANG
    f = window_figures(d, 1000.0, 1010.0)
    assert (f["running_mean"], f["waiting_mean"], f["kv_cache_usage_mean"]) == (24.0, 3.0, 0.41)
    assert (
        f["prefix_cache_hit_rate"] == approx(1105926 / 1843210) and f["prefix_cache_hit_source"] == "counters"
    )
    assert f["preemptions"] == 7.0
    n = grep(text, "sglang:time_to_first_token_seconds_count")
    assert f["server_ttft_mean_s"] == approx(grep(text, "sglang:time_to_first_token_seconds_sum") / n)
    assert f["server_queue_mean_s"] is not None and f["tokens_per_step"] is None
    # An SGLang without cached_tokens_total (older, or no hit yet): the engine's own gauge.
    f = figures(text, drop=("sglang:cached_tokens_total",))
    assert (f["prefix_cache_hit_rate"], f["prefix_cache_hit_source"]) == (0.5812, "gauge")
    # through SGLang's router (/engine_metrics: the colon rewritten), and with newer releases' cache_source
    # label on the cached tokens (one set per request): the same figures
    assert_renamed_page_maps_alike(text, "sglang:", "sglang_", SGLANG)
    split = re.sub(
        r"^(sglang:cached_tokens_total)\{(.*)\} (\S+)$",
        lambda m: (
            f'{m[1]}{{cache_source="device",{m[2]}}} {float(m[3]) - 1000}\n'
            f'{m[1]}{{cache_source="host",{m[2]}}} 1000.0'
        ),
        text,
        flags=re.M,
    )
    assert split != text
    f = figures(split)
    assert f["prefix_cache_hit_rate"] == approx(1105926 / 1843210)


def test_tgi_mapping_has_no_ttft_kv_or_prefix_cache() -> None:
    text = page("tgi")
    d, _ = build(scrapes(text))
    assert d.engine is TGI
    f = window_figures(d, 1000.0, 1010.0)
    assert (f["running_mean"], f["waiting_max"]) == (16.0, 5.0)
    for key in ("kv_cache_usage_max", "prefix_cache_hit_rate", "server_ttft_mean_s", "preemptions"):
        assert f[key] is None, key
    tokens = grep(text, "tgi_request_input_length_sum") + grep(text, "tgi_request_generated_tokens_sum")
    assert f["tokens_per_step"] == approx(tokens / grep(text, "tgi_batch_inference_count"))
    assert f["server_e2e_mean_s"] == approx(
        grep(text, "tgi_request_duration_sum") / grep(text, "tgi_request_duration_count")
    )


def test_lmdeploy_mapping_is_vllms_names_without_steps_or_prefix_cache() -> None:
    """LMDeploy registers vLLM's names under `lmdeploy:`; its iteration_tokens_total is per request
    per iteration (not per engine step), so there is no tokens-per-step figure, and no prefix-cache or
    preemption counter exists."""
    text = page("lmdeploy")
    d, warnings = build(scrapes(text))
    assert not warnings and d.engine is LMDEPLOY
    f = window_figures(d, 1000.0, 1010.0)
    assert (f["running_mean"], f["waiting_max"], f["kv_cache_usage_max"]) == (24.0, 3.0, 0.37)
    assert f["prompt_tokens"] == grep(text, "lmdeploy:prompt_tokens_total")
    assert f["server_gen_tok_per_s"] == approx(grep(text, "lmdeploy:generation_tokens_total") / 10.0)
    n = grep(text, "lmdeploy:time_to_first_token_seconds_count")
    assert f["server_ttft_mean_s"] == approx(grep(text, "lmdeploy:time_to_first_token_seconds_sum") / n)
    assert f["server_ttft_p50_s"] <= f["server_ttft_p90_s"] <= f["server_ttft_p99_s"]
    q = grep(text, "lmdeploy:request_queue_time_seconds_count")
    assert f["server_queue_mean_s"] == approx(grep(text, "lmdeploy:request_queue_time_seconds_sum") / q)
    assert f["server_e2e_mean_s"] == approx(
        grep(text, "lmdeploy:e2e_request_latency_seconds_sum")
        / grep(text, "lmdeploy:e2e_request_latency_seconds_count")
    )
    for key in ("tokens_per_step", "prefix_cache_hit_rate", "preemptions"):
        assert f[key] is None, key


def test_trtllm_mapping_gauges_counters_and_histograms() -> None:
    """trtllm-serve's page: batch and queue gauges, the KV utilization, the hit rate from its prompt
    counters (cached / all), else its own gauge; no generated-token counter, no steps, no preemptions."""
    text = page("trtllm")
    d, warnings = build(scrapes(text))
    assert not warnings and d.engine is TRTLLM
    f = window_figures(d, 1000.0, 1010.0)
    assert (f["running_max"], f["waiting_max"], f["kv_cache_usage_max"]) == (24.0, 3.0, 0.44)
    cached, prompt = grep(text, "trtllm_prompt_cached_tokens_total"), grep(text, "trtllm_prompt_tokens_total")
    assert (
        f["prefix_cache_hit_rate"] == approx(cached / prompt) and f["prefix_cache_hit_source"] == "counters"
    )
    n = grep(text, "trtllm_time_to_first_token_seconds_count")
    assert f["server_ttft_mean_s"] == approx(grep(text, "trtllm_time_to_first_token_seconds_sum") / n)
    q = grep(text, "trtllm_request_queue_time_seconds_count")
    assert f["server_queue_mean_s"] == approx(grep(text, "trtllm_request_queue_time_seconds_sum") / q)
    for key in ("generation_tokens", "server_gen_tok_per_s", "tokens_per_step", "preemptions"):
        assert f[key] is None, key
    # before the first cache hit there is no cached counter yet: the engine's own gauge
    f = figures(text, drop=("trtllm_prompt_cached_tokens_total",))
    assert (f["prefix_cache_hit_rate"], f["prefix_cache_hit_source"]) == (0.58, "gauge")
    # NVIDIA Dynamo 0.7 passes the same metrics through as trtllm:…: the same figures
    assert_renamed_page_maps_alike(text, "trtllm_", "trtllm:", TRTLLM)


def test_trtllm_2026_page_its_iteration_statistics_and_speculative_decoding() -> None:
    """The collector that publishes its iteration statistics: running and waiting under their new names
    (the earlier ones above still read), the generated-token counter, and a drafter's figures — the
    acceptance rate from its token counters (accepted / drafted over the window), the acceptance length
    from its gauge (it counts no drafts; the gauge is its last iteration's tokens per verify step)."""
    text = page("trtllm-2026")
    d, warnings = build(scrapes(text))
    assert not warnings and d.engine is TRTLLM
    f = window_figures(d, 1000.0, 1010.0)
    assert (f["running_max"], f["waiting_max"], f["kv_cache_usage_max"]) == (32.0, 5.0, 0.61)
    assert f["generation_tokens"] == approx(grep(text, "trtllm_generation_tokens_total"))
    assert f["server_gen_tok_per_s"] == approx(176_000 / 10)
    drafted = grep(text, "trtllm_spec_decode_num_draft_tokens_total")
    accepted = grep(text, "trtllm_spec_decode_num_accepted_tokens_total")
    assert f["spec_draft_tokens"] == approx(drafted) == 211_200
    assert f["spec_acceptance_rate"] == approx(accepted / drafted) == approx(0.5)
    assert f["spec_acceptance_length"] == grep(text, "trtllm_spec_decode_acceptance_length") == 2.47
    # per draft position: accepted there / drafted there (its per-request counters, labelled token_position)
    at = [grep(text, "trtllm_spec_decode_accepted_tokens_total", f'token_position="{i}"') for i in range(3)]
    assert f["spec_acceptance_by_position"] == approx([a / 70_400 for a in at])
    assert [a / 70_400 for a in at] == approx([0.710, 0.477, 0.3125], abs=1e-3)
    for key in ("tokens_per_step", "preemptions"):
        assert f[key] is None, key
    # without a drafter's iteration statistics (no `enable_iter_perf_stats`): no speculative figures
    f = figures(text, drop=tuple(m for m, _, _ in parse(text) if "spec_decode" in m))
    assert (f["spec_draft_tokens"], f["spec_acceptance_rate"], f["spec_acceptance_length"]) == (None,) * 3
    assert_renamed_page_maps_alike(text, "trtllm_", "trtllm:", TRTLLM)


def test_dynamo_frontend_mapping_is_its_own_view_without_a_batch_or_queue() -> None:
    """NVIDIA Dynamo's frontend page (Rust prometheus crate format): its TTFT and request duration, the
    prompt tokens it counted at each first token, the generated tokens, the hit rate = cached tokens
    (observed only for requests that hit) over input tokens; no running/waiting (its in-flight and
    before-first-token gauges are not an engine's batch and queue), no KV use, no steps."""
    text = page("dynamo")
    d, warnings = build(scrapes(text))
    assert not warnings and d.engine is DYNAMO
    f = window_figures(d, 1000.0, 1010.0)
    cached, isl = (
        grep(text, "dynamo_frontend_cached_tokens_sum"),
        grep(text, "dynamo_frontend_input_sequence_tokens_sum"),
    )
    assert grep(text, "dynamo_frontend_cached_tokens_count") < grep(
        text, "dynamo_frontend_input_sequence_tokens_count"
    )
    assert f["prefix_cache_hit_rate"] == approx(cached / isl) and f["prefix_cache_hit_source"] == "counters"
    assert (f["prompt_tokens"], f["generation_tokens"]) == (
        isl,
        grep(text, "dynamo_frontend_output_tokens_total"),
    )
    n = grep(text, "dynamo_frontend_time_to_first_token_seconds_count")
    assert f["server_ttft_mean_s"] == approx(
        grep(text, "dynamo_frontend_time_to_first_token_seconds_sum") / n
    )
    e = grep(text, "dynamo_frontend_request_duration_seconds_count")
    assert f["server_e2e_mean_s"] == approx(grep(text, "dynamo_frontend_request_duration_seconds_sum") / e)
    for key in (
        "running_max",
        "waiting_max",
        "kv_cache_usage_max",
        "tokens_per_step",
        "preemptions",
        "server_queue_mean_s",
    ):
        assert f.get(key) is None, key


def test_nim_mapping_is_vllms_families_without_the_prefix() -> None:
    """NVIDIA NIM for LLMs' page (its observability guide's families, no prefix): running and waiting,
    the KV cache's use, prompt and generated tokens, the TTFT and E2E histograms; no prefix cache or
    steps (it states none); vLLM's own page is never taken for it, nor it for vLLM's."""
    text = page("nim")
    d, warnings = build(scrapes(text))
    assert not warnings and d.engine is NIM
    f = window_figures(d, 1000.0, 1010.0)
    assert (f["running_max"], f["waiting_max"]) == (
        grep(text, "num_requests_running"),
        grep(text, "num_requests_waiting"),
    )
    assert f["kv_cache_usage_max"] == grep(text, "gpu_cache_usage_perc") < 1.0
    assert (f["prompt_tokens"], f["generation_tokens"]) == (
        grep(text, "prompt_tokens_total"),
        grep(text, "generation_tokens_total"),
    )
    n = grep(text, "time_to_first_token_seconds_count")
    assert f["server_ttft_mean_s"] == approx(grep(text, "time_to_first_token_seconds_sum") / n)
    assert f["server_e2e_mean_s"] == approx(
        grep(text, "e2e_request_latency_seconds_sum") / grep(text, "e2e_request_latency_seconds_count")
    )
    assert (
        f["server_ttft_p50_s"] is not None
        and f["prefix_cache_hit_rate"] is None
        and f["tokens_per_step"] is None
    )
    assert detect(m for m, _, _ in parse(page("vllm"))) is VLLM  # vllm:num_requests_running is not NIM's
    assert detect(["request_success_total", "prompt_tokens_total"]) is None  # generic names tell no server


def test_llamacpp_mapping_counts_the_cached_prompt_tokens_in() -> None:
    """llama-server's prompt counter leaves out the tokens its cache served: the prompt tokens are both
    (as vLLM counts them), the hit rate is cached / both, a step's tokens are the computed ones."""
    text = LLAMACPP_PAGE.read_text()
    df = scrapes(text)
    for name, values in (
        ("llamacpp:requests_processing", [2.0, 4.0]),
        ("llamacpp:requests_deferred", [0.0, 6.0]),
    ):
        df.loc[df["metric"] == name, "value"] = values
    d, warnings = build(df)
    assert not warnings and d.engine is LLAMACPP
    f = window_figures(d, 1000.0, 1010.0)
    computed, cached = (
        grep(text, "llamacpp:prompt_tokens_total"),
        grep(text, "llamacpp:prompt_tokens_cached_total"),
    )
    assert cached > 0 and f["prompt_tokens"] == computed + cached
    assert f["prefix_cache_hit_rate"] == approx(cached / (computed + cached))
    assert (
        f["prefix_cache_hit_source"] == "counters" and f["prefix_cache_queried_tokens"] == computed + cached
    )
    predicted = grep(text, "llamacpp:tokens_predicted_total")
    assert f["generation_tokens"] == predicted and f["server_gen_tok_per_s"] == approx(predicted / 10.0)
    assert f["tokens_per_step"] == approx((computed + predicted) / grep(text, "llamacpp:n_decode_total"))
    assert (f["running_mean"], f["running_max"], f["waiting_mean"], f["waiting_max"]) == (3.0, 4.0, 3.0, 6.0)
    for key in ("kv_cache_usage_max", "server_ttft_mean_s", "server_queue_mean_s", "preemptions"):
        assert f[key] is None, key
    assert d.sources["prompt_tokens"] == "llamacpp:prompt_tokens_total + llamacpp:prompt_tokens_cached_total"
    # a build without the cached counter: its prompt counter as it is, no hit rate
    f = figures(text, drop=("llamacpp:prompt_tokens_cached_total",))
    assert f["prompt_tokens"] == computed and f["prefix_cache_hit_rate"] is None


def test_counter_resets_late_label_sets_and_window_interpolation() -> None:
    rows = []
    # hits: a restart between t=2 and t=3 (10 → 2 means 2 new); queries: a second engine appears at t=2
    hits = [0, 5, 10, 2, 6]
    q_a = [0, 10, 20, 30, 40]
    for t, h, qa in zip(range(5), hits, q_a, strict=True):
        rows.append((float(t), "vllm:prefix_cache_hits_total", "engine=0", float(h)))
        rows.append((float(t), "vllm:prefix_cache_queries_total", "engine=0", float(qa)))
        rows.append((float(t), "vllm:num_requests_running", "engine=0", float(t)))
    rows.append((2.0, "vllm:prefix_cache_queries_total", "engine=1", 4.0))
    rows.append((3.0, "vllm:prefix_cache_queries_total", "engine=1", 8.0))
    rows.append((4.0, "vllm:prefix_cache_queries_total", "engine=1", 8.0))
    d, _ = build(pd.DataFrame(rows, columns=["t", "metric", "labels", "value"]))
    assert list(d.counters["hits"]) == [0, 5, 10, 12, 16]
    assert list(d.counters["queries"]) == [0, 10, 24, 38, 48]
    f = window_figures(d, 0.0, 4.0)
    assert f["prefix_cache_hit_rate"] == approx(16 / 48)
    half = window_figures(d, 0.5, 1.5)  # interpolated: hits 2.5 → 7.5, queries 5 → 17
    assert half["prefix_cache_hit_rate"] == approx(5 / 12)
    assert half["running_mean"] == 1.0 and half["scrapes"] == 1
    empty = window_figures(d, 10.0, 20.0)
    assert empty["prefix_cache_hit_rate"] is None and empty["running_mean"] is None


def test_ttft_comparison_same_requests_and_stops_before_cancelled_ones(tmp_path: Path) -> None:
    # engine: (0,2] two first tokens of 0.1 s, (2,4] two of 0.3 s, (4,6] one of 5 s — a request the
    # load generator cancelled at the stop (its row has no TTFT)
    cum = {0.0: (0, 0.0), 2.0: (2, 0.2), 4.0: (4, 0.8), 6.0: (5, 5.8)}
    rows = []
    for t, (n, total) in cum.items():
        rows += [(t, "vllm:time_to_first_token_seconds_count", "", float(n)),
                 (t, "vllm:time_to_first_token_seconds_sum", "", total),
                 (t, "vllm:num_requests_running", "", 1.0)]  # fmt: skip
    d, _ = build(pd.DataFrame(rows, columns=["t", "metric", "labels", "value"]))
    # client: each row 10 ms more than the engine (first token at send + TTFT); one cancelled row
    client = pd.DataFrame(
        {
            "t_start_unix": [0.9, 1.4, 2.69, 3.19, 4.2],
            "ttft_s": [0.11, 0.11, 0.31, 0.31, np.nan],
            "error": ["", "", "", "", "cancelled"],
        }
    )
    sv = summarize(d, (0.0, 6.0), client, tmp_path)
    assert sv["server_ttft_mean_s"] == approx(5.8 / 5)  # the engine's own view of the whole window
    c = sv["ttft_compare"]
    assert c["window"] == [0.0, 4.0] and (c["client_mean_s"], c["server_mean_s"]) == approx((0.21, 0.2))
    assert sv["client_minus_server_ttft_s"] == approx(0.21 - 0.2)
    # Half of the (2, 4] interval: both sides take half of it (engine interpolated, client weighted).
    half = summarize(d, (0.0, 3.0), client, tmp_path)
    assert half["client_minus_server_ttft_s"] == approx(0.01)
    # Less than one scrape interval left before the cancelled request: nothing to compare.
    assert summarize(d, (3.0, 6.0), client, tmp_path)["client_minus_server_ttft_s"] is None


def test_histogram_quantile_like_prometheus() -> None:
    bounds = [0.1, 0.2, 0.4, float("inf")]
    counts = np.array([10.0, 30.0, 40.0, 40.0])
    assert histogram_quantile(bounds, counts, 0.5) == approx(0.15)  # rank 20: half-way through (0.1, 0.2]
    assert histogram_quantile(bounds, counts, 0.1) == approx(0.04)  # rank 4 of the first 10 in (0, 0.1]
    assert histogram_quantile(bounds, np.array([0.0, 0.0, 0.0, 5.0]), 0.5) == 0.4  # +Inf bucket: lower bound
    assert histogram_quantile(bounds, np.zeros(4), 0.5) is None


def test_unknown_page_is_a_warning() -> None:
    d, warnings = build(pd.DataFrame([(1.0, "foo_bar", "", 1.0)], columns=["t", "metric", "labels", "value"]))
    assert (
        d is None
        and "no vLLM, SGLang, TGI, llama-server, LMDeploy, TensorRT-LLM, NVIDIA Dynamo or NVIDIA NIM metric names"
        in warnings[0]
    )
