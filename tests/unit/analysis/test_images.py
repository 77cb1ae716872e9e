"""Images in the analysis, on rows and pages whose truth is known: how many images the measured
requests carried and the prompts they made (analysis/images.py), and vLLM's multimodal cache hit rate
over a window (analysis/server.py `image_cache_hit_rate`, from `vllm:mm_cache_*`)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from pytest import approx

from analysis.images import image_figures, text
from analysis.render.server import headline_rows
from analysis.server import build, window_figures
from tests.support.metric_pages import page, scrapes

MM = """# HELP vllm:mm_cache_queries_total Multi-modal cache queries, in terms of number of queried items.
# TYPE vllm:mm_cache_queries_total counter
vllm:mm_cache_queries_total{engine="0",model_name="m"} 40.0
# HELP vllm:mm_cache_hits_total Multi-modal cache hits, in terms of number of cached items.
# TYPE vllm:mm_cache_hits_total counter
vllm:mm_cache_hits_total{engine="0",model_name="m"} 10.0
"""


def test_images_per_request_and_the_prompts_they_made() -> None:
    sel = pd.DataFrame(
        {
            "images": [1, 1, 2, 0, 0, 3],
            "prompt_tokens": [350.0, 352.0, 680.0, 20.0, 24.0, np.nan],  # the last failed before a count
        }
    )
    f = image_figures(sel)
    assert f == {
        "requests": 6,
        "with_images": 4,
        "images": 7,
        "per_request_mean": 7 / 4,
        "per_request_max": 3,
        "prompt_tokens_with": approx((350 + 352 + 680) / 3),
        "prompt_tokens_without": 22.0,
    }
    assert text(f) == (
        "4 of 6 requests (1.8 each, at most 3; 7 images); their prompts 461 tokens on average (without images 22)"
    )


def test_no_images_or_an_older_run_has_no_figures() -> None:
    assert image_figures(pd.DataFrame({"images": [0, 0], "prompt_tokens": [1.0, 2.0]})) is None
    assert image_figures(pd.DataFrame({"prompt_tokens": [1.0]})) is None  # a run before the column
    only = image_figures(pd.DataFrame({"images": [2, 2], "prompt_tokens": [np.nan, np.nan]}))
    assert only is not None and only["prompt_tokens_with"] is None and only["prompt_tokens_without"] is None
    assert text(only) == "2 of 2 requests (2.0 each, at most 2; 4 images)"


def test_vllm_image_cache_hit_rate_over_a_window() -> None:
    """The page's counters double between the two scrapes: 40 images looked up, 10 found, in the window."""
    d, _ = build(scrapes(page("vllm") + MM))
    f = window_figures(d, 1000.0, 1010.0)
    assert (f["image_cache_queries"], f["image_cache_hit_rate"]) == (40.0, 0.25)
    assert d.sources["image_cache"] == "vllm:mm_cache_hits_total / vllm:mm_cache_queries_total"
    row = dict((k, v) for k, v in headline_rows({**f, "engine": "vllm", "ttft_compare": None}))  # type: ignore[arg-type]
    assert row["image cache hit rate (of images looked up)"] == "25.0 % of 40"
    bare = window_figures(build(scrapes(page("vllm")))[0], 1000.0, 1010.0)  # none looked up: no rate
    assert (bare["image_cache_queries"], bare["image_cache_hit_rate"]) == (
        0.0,
        None,
    )  # vLLM: always on its page
    assert "image cache hit rate (of images looked up)" not in dict(
        (k, v)
        for k, v in headline_rows({**bare, "engine": "vllm", "ttft_compare": None})  # type: ignore[arg-type]
    )
