"""Speculative decoding, measured: how many draft tokens the server accepted, per run and per load level.

A server that speculates (vLLM `--speculative-config`, SGLang `--speculative-algorithm`, llama-server
`-md`) proposes a few draft tokens per decode step and verifies them in one pass; a step yields its
verified token plus the accepted ones, streamed in one chunk. Whether it pays depends on the
acceptance, and the acceptance on the traffic (code and repeated text draft well, free prose badly)
and on the load (a batch that grows leaves less spare compute per verify pass): an engineer choosing
the setting needs it per load level, beside the TPOT and throughput it bought.

Two sources, both shown where present, neither derived from the other:
- the requests' own figures (requests.csv `spec_draft_tokens`, `spec_accepted_tokens`, `spec_steps`,
  as the server stated them per request; core/result.py `SpecDecode`) — pooled over the completed
  requests sent in the level: acceptance rate = Σ accepted / Σ drafted, acceptance length =
  1 + Σ accepted / Σ steps (vLLM's convention: the verified token counts; None where a server states
  no step count — llama-server);
- the server's counters over the level's window (analysis/server.py `spec_figures`: vLLM's
  `spec_decode_num_*`, SGLang's gauges), for a server that does not state them per request.
The client's own view is the tokens per chunk (analysis/delivery.py): with one chunk per step it
is the acceptance length seen from outside, whatever the server says.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from analysis.delivery import tokens_per_chunk
from analysis.stepresults import Step


@dataclass(frozen=True)
class SpecFigures:
    """The completed requests' stated speculative decoding, pooled (module docstring)."""

    requests: int
    draft_tokens: int
    accepted_tokens: int
    steps: int | None  # None: some request's server stated no step count
    acceptance_rate: float | None
    acceptance_length: float | None

    def to_dict(self) -> dict[str, Any]:
        return dict(vars(self))


@dataclass(frozen=True)
class StepSpec:
    """One load level's speculative decoding: the requests', the server's, and the client's view."""

    step: int
    load: float
    requests: SpecFigures | None
    server_acceptance_rate: float | None
    server_acceptance_length: float | None
    tokens_per_chunk: float | None
    output_tok_per_s: float | None
    tpot_p50_s: float | None

    def to_dict(self) -> dict[str, Any]:
        out = dict(vars(self))
        out["requests"] = None if self.requests is None else self.requests.to_dict()
        return out


@dataclass(frozen=True)
class Speculative:
    """summary.json `speculative_decoding`: the run's figures and each level's (module docstring)."""

    requests: SpecFigures | None
    server_acceptance_rate: float | None
    server_acceptance_length: float | None
    tokens_per_chunk: float | None
    steps: list[StepSpec]

    def to_dict(self) -> dict[str, Any]:
        return {
            "requests": None if self.requests is None else self.requests.to_dict(),
            "server_acceptance_rate": self.server_acceptance_rate,
            "server_acceptance_length": self.server_acceptance_length,
            "tokens_per_chunk": self.tokens_per_chunk,
            "steps": [s.to_dict() for s in self.steps],
        }


def figures(sel: pd.DataFrame) -> SpecFigures | None:
    """The stated figures of the completed requests in `sel`; None when none stated any."""
    if "spec_draft_tokens" not in sel or sel.empty:
        return None
    ok = sel["ok"].to_numpy(dtype=bool)
    drafted = sel["spec_draft_tokens"].to_numpy(dtype=np.float64)
    stated = ok & ~np.isnan(drafted)
    if not stated.any():
        return None
    accepted = sel["spec_accepted_tokens"].to_numpy(dtype=np.float64)[stated]
    steps = sel["spec_steps"].to_numpy(dtype=np.float64)[stated]
    n_drafted, n_accepted = int(drafted[stated].sum()), int(np.nansum(accepted))
    n_steps = None if np.isnan(steps).any() else int(steps.sum())
    return SpecFigures(
        requests=int(stated.sum()),
        draft_tokens=n_drafted,
        accepted_tokens=n_accepted,
        steps=n_steps,
        acceptance_rate=n_accepted / n_drafted if n_drafted else None,
        acceptance_length=1.0 + n_accepted / n_steps if n_steps else None,
    )


def speculative(
    df: pd.DataFrame, in_run: np.ndarray, in_step: np.ndarray, steps: list[Step], server: dict | None
) -> Speculative | None:
    """The run's speculative decoding, or None for a server that neither stated it per request nor
    counted it (`server`: summary.json's `server` figures over the run's window)."""
    sel = df[in_run]
    rows = figures(sel)
    if rows is None and (server is None or server.get("spec_acceptance_rate") is None):
        return None
    by_step = []
    step_col = df["step"].to_numpy()
    for st in steps:
        level = df[in_step & (step_col == st.step)]
        sv = st.server or {}
        by_step.append(
            StepSpec(
                step=st.step,
                load=st.load,
                requests=figures(level),
                server_acceptance_rate=sv.get("spec_acceptance_rate"),
                server_acceptance_length=sv.get("spec_acceptance_length"),
                tokens_per_chunk=_per_chunk(level),
                output_tok_per_s=st.output_tok_per_s,
                tpot_p50_s=st.tpot.p50,
            )
        )
    sv = server or {}
    return Speculative(
        requests=rows,
        server_acceptance_rate=sv.get("spec_acceptance_rate"),
        server_acceptance_length=sv.get("spec_acceptance_length"),
        tokens_per_chunk=_per_chunk(sel),
        steps=by_step,
    )


def _per_chunk(sel: pd.DataFrame) -> float | None:
    got = tokens_per_chunk(sel)
    return None if got is None else got[0]


def spec_figures(
    out: dict, gauges: Callable[[str], np.ndarray | None], inc: Callable[[str], float | None]
) -> None:
    """Fill a server window's speculative figures (analysis/server.py): acceptance rate = accepted /
    draft tokens and acceptance length = 1 + accepted / drafts from the counters (vLLM's
    v1/spec_decode/metrics.py); else the mean of the gauges over the window's scrapes (SGLang sets
    them from its last logged interval)."""
    drafted = inc("spec_draft_tokens")
    if drafted:
        accepted = inc("spec_accepted") or 0.0
        out["spec_draft_tokens"], out["spec_acceptance_rate"] = drafted, accepted / drafted
        if drafts := inc("spec_drafts"):
            out["spec_acceptance_length"] = 1.0 + accepted / drafts
        return
    for key, col in (
        ("spec_acceptance_length", "spec_length_gauge"),
        ("spec_acceptance_rate", "spec_rate_gauge"),
    ):
        v = gauges(col)
        if v is not None and v.size:
            out[key] = float(v.mean())
