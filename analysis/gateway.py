"""What a gateway did to a run's requests, from the rows: answers from more than one model, and
requests retried or sent to a fallback before they answered.

Both change what a figure means without showing in it. A gateway (LiteLLM, OpenRouter, ngrok's AI
gateway, a cloud router) that falls back to another model on an error or an overload mixes that
model's tokens and speeds into the run's — a TTFT p95 of two models is neither's. A retry or a
fallback happens inside the request, so its TTFT holds every failed attempt. The rows carry what the
answer and the gateway said (`served_model`, `gateway_attempts`: loadgen/transport/gateway.py); this
module turns them into report lines:
- **mixed models**: the measured answers to one requested model named two models or more. A single
  other name is not flagged: a snapshot (`gpt-4o` → `gpt-4o-2024-08-06`), an alias, or a server that
  names its model its own way (llama-server, Ollama) answers every request alike;
- **retries and fallbacks**: measured requests whose gateway stated extra attempts, with their median
  TTFT beside the others' (the attempts' cost, as the client paid it).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

SHOWN = 3  # served models named in the line, most answers first


def _names(counts: pd.Series) -> str:
    shown = [f"{name} ({n:,})" for name, n in counts.head(SHOWN).items()]
    rest = len(counts) - SHOWN
    return ", ".join(shown) + (f" and {rest} more" if rest > 0 else "")


def mixed_model_warnings(df: pd.DataFrame, measured: np.ndarray) -> list[str]:
    """One line per requested model whose measured answers named two models or more."""
    if "served_model" not in df or df.empty:
        return []
    sel = df[measured & df["ok"].to_numpy(dtype=bool)]
    served = sel["served_model"].astype(str)
    sel = sel[served != ""]
    if sel.empty:
        return []
    asked = sel["model"].astype(str) if "model" in sel else pd.Series("", index=sel.index)
    out = []
    # one model asked for: the Models section groups the rows by the model that answered (analysis/models.py)
    split = " — the Models section gives each its own figures" if asked.nunique() == 1 else ""
    for name, group in sel.groupby(asked.to_numpy(), sort=True):
        counts = group["served_model"].astype(str).value_counts().sort_index()
        counts = counts.sort_values(ascending=False, kind="stable")  # most answers first; ties by name
        if len(counts) < 2:
            continue
        what = f"to '{name}'" if name else ""
        out.append(
            f"the {int(counts.sum()):,} measured answers {what}{' ' if what else ''}came from "
            f"{len(counts)} models by their own `model`: {_names(counts)} — a gateway's fallback or a "
            f"router's choice; the run's figures mix them (requests.csv `served_model` says which "
            f"answered each request){split}"
        )
    return out


def retry_warnings(df: pd.DataFrame, measured: np.ndarray) -> list[str]:
    """One line when a gateway stated extra attempts for any measured request."""
    if "gateway_attempts" not in df or df.empty:
        return []
    attempts = df["gateway_attempts"].to_numpy(dtype=float)
    stated = measured & ~np.isnan(attempts)
    retried = stated & (np.nan_to_num(attempts) > 0)
    k, n = int(retried.sum()), int(measured.sum())
    if not k:
        return []
    ttft = df["ttft_s"].to_numpy(dtype=float)
    mine, others = ttft[retried], ttft[measured & ~retried]
    mine, others = mine[~np.isnan(mine)], others[~np.isnan(others)]
    cost = ""
    if mine.size and others.size:
        cost = (
            f" (median TTFT {np.median(mine) * 1000:,.0f} ms against {np.median(others) * 1000:,.0f} ms for "
            "the others)"
        )
    return [
        f"{k:,} of {n:,} measured requests ({k / n:.0%}) were retried or sent to a fallback inside the "
        f"gateway (up to {int(np.nanmax(attempts[retried])):,} extra attempts, as its headers state): "
        f"their TTFT holds the failed attempts{cost}"
    ]


def gateway_warnings(df: pd.DataFrame, measured: np.ndarray) -> list[str]:
    """The report's lines about what a gateway did (none where it did nothing, or said nothing)."""
    return mixed_model_warnings(df, measured) + retry_warnings(df, measured)
