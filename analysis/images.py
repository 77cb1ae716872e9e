"""Images in a run's requests: how many the measured requests carried, and the prompts they made.

A vision model's prompt is its text plus each image's tokens, counted by the model's own rule (a
Qwen2-VL image of 512×512 is 326 tokens; other families differ), so the rows' `prompt_tokens` — the
server's count — already hold them; what the report adds is how many images stood behind them
(`images`, core/record.py: every image part of every message sent, history included), so a reader
sees that a run's prompts were pictures as much as text. The server's multimodal cache (vLLM's
`mm_cache_*`) is read with the other server figures (analysis/server.py `image_cache_hit_rate`).
"""

from __future__ import annotations

from typing import TypedDict

import numpy as np
import pandas as pd

from analysis import fmt


class ImageFigures(TypedDict):
    """summary.json `images` (only for a run whose requests carried images)."""

    requests: int  # measured requests
    with_images: int  # of them, those that carried at least one image
    images: int  # images sent by the measured requests, in all
    per_request_mean: float  # images per request, among those that carried any
    per_request_max: int
    # the server's mean prompt tokens of the requests with images, and of those without (None: none such)
    prompt_tokens_with: float | None
    prompt_tokens_without: float | None


def image_figures(sel: pd.DataFrame) -> ImageFigures | None:
    """The measured rows' images (`sel`: the run's measured rows); None when none carried one (or the
    run predates the column)."""
    if "images" not in sel or sel.empty:
        return None
    n = np.nan_to_num(sel["images"].to_numpy(dtype=float))
    with_images = n > 0
    k = int(with_images.sum())
    if not k:
        return None
    prompt = sel["prompt_tokens"].to_numpy(dtype=float)

    def mean_prompt(mask: np.ndarray) -> float | None:
        v = prompt[mask]
        v = v[np.isfinite(v)]
        return float(v.mean()) if v.size else None

    return ImageFigures(
        requests=len(sel),
        with_images=k,
        images=int(n.sum()),
        per_request_mean=float(n[with_images].mean()),
        per_request_max=int(n.max()),
        prompt_tokens_with=mean_prompt(with_images),
        prompt_tokens_without=mean_prompt(~with_images),
    )


def text(f: ImageFigures) -> str:
    """`300 of 300 requests (1.0 each, at most 1; 300 images); their prompts 344 tokens on average`."""
    share = f"{f['with_images']:,} of {f['requests']:,} requests"
    out = (
        f"{share} ({fmt.num(f['per_request_mean'], 1)} each, at most {f['per_request_max']}; "
        f"{f['images']:,} images)"
    )
    if f["prompt_tokens_with"] is not None:
        out += f"; their prompts {fmt.num(f['prompt_tokens_with'], 0)} tokens on average"
        if f["prompt_tokens_without"] is not None:
            out += f" (without images {fmt.num(f['prompt_tokens_without'], 0)})"
    return out
