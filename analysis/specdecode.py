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
- the server's counters over the level's window (analysis/server.py `spec_figures`: vLLM's and
  llama-server's `spec_decode_num_*`, TensorRT-LLM's token counters and length gauge, SGLang's gauges),
  for a server that does not state them per request.
The client's own view is the tokens per chunk (analysis/delivery.py): with one chunk per step it
is the acceptance length seen from outside, whatever the server says.

A mixed run (`--mix`) also gets them per class: the acceptance is a property of the text as much as
of the drafter (an ngram drafter accepts much of a prompt that is copied back, little of free prose),
so a mix's pooled figure hides what each tenant gets. Per class only what is per request — the
stated figures and the tokens per chunk, over the class's completed requests in the run's window —:
a server's counters do not say whose tokens they counted.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
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
    server_acceptance_by_position: list[float] | None
    tokens_per_chunk: float | None
    output_tok_per_s: float | None
    tpot_p50_s: float | None

    def to_dict(self) -> dict[str, Any]:
        out = dict(vars(self))
        out["requests"] = None if self.requests is None else self.requests.to_dict()
        return out


@dataclass(frozen=True)
class ClassSpec:
    """One class of a mixed run: its completed requests' stated figures and the client's tokens per chunk."""

    name: str
    requests: SpecFigures | None
    tokens_per_chunk: float | None

    def to_dict(self) -> dict[str, Any]:
        r = self.requests
        return {
            "name": self.name,
            "requests": None if r is None else r.to_dict(),
            "tokens_per_chunk": self.tokens_per_chunk,
        }


@dataclass(frozen=True)
class Speculative:
    """summary.json `speculative_decoding`: the run's figures, each level's and, for a mix, each class's."""

    requests: SpecFigures | None
    server_acceptance_rate: float | None
    server_acceptance_length: float | None
    server_acceptance_by_position: list[float] | None  # each draft position's, first first (server.py)
    tokens_per_chunk: float | None
    steps: list[StepSpec]
    classes: list[ClassSpec] = field(default_factory=list)  # empty unless the run mixed ≥ 2 classes

    def to_dict(self) -> dict[str, Any]:
        return {
            "requests": None if self.requests is None else self.requests.to_dict(),
            "server_acceptance_rate": self.server_acceptance_rate,
            "server_acceptance_length": self.server_acceptance_length,
            "server_acceptance_by_position": self.server_acceptance_by_position,
            "tokens_per_chunk": self.tokens_per_chunk,
            "steps": [s.to_dict() for s in self.steps],
            "classes": [c.to_dict() for c in self.classes],
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
    df: pd.DataFrame,
    in_run: np.ndarray,
    in_step: np.ndarray,
    steps: list[Step],
    server: dict | None,
    mix: list[tuple[str, str]] = (),
) -> Speculative | None:
    """The run's speculative decoding, or None for a server that neither stated it per request nor
    counted it (`server`: summary.json's `server` figures over the run's window; `mix`: a mixed run's
    classes in run.json's order with their rows' `tenant` value, analysis/tenants.py `class_values`)."""
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
                server_acceptance_by_position=sv.get("spec_acceptance_by_position"),
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
        server_acceptance_by_position=sv.get("spec_acceptance_by_position"),
        tokens_per_chunk=_per_chunk(sel),
        steps=by_step,
        classes=by_class(sel, mix),
    )


def by_class(sel: pd.DataFrame, mix: list[tuple[str, str]]) -> list[ClassSpec]:
    """Each class's figures over its rows of `sel` (those whose `tenant` is the class's value); none
    unless at least two classes have rows."""
    if "tenant" not in sel or len(mix) < 2:
        return []
    tenant = sel["tenant"].astype(object).fillna("").astype(str).to_numpy()
    out = []
    for name, value in mix:
        mine = sel[tenant == value]
        if not mine.empty:
            out.append(ClassSpec(name, figures(mine), _per_chunk(mine)))
    return out if len(out) >= 2 else []


def _per_chunk(sel: pd.DataFrame) -> float | None:
    got = tokens_per_chunk(sel)
    return None if got is None else got[0]


ACCEPTED_AT = "spec_accepted_at:"  # server counters' column prefix: accepted tokens at one draft position
DRAFTED_AT = "spec_drafted_at:"  # … drafted tokens at one draft position (TensorRT-LLM)


def spec_figures(
    out: dict,
    gauges: Callable[[str], np.ndarray | None],
    inc: Callable[[str], float | None],
    columns: Iterable[str] = (),
) -> None:
    """Fill a server window's speculative figures (analysis/server.py): acceptance rate = accepted /
    draft tokens and acceptance length = 1 + accepted / drafts from the counters (vLLM's
    v1/spec_decode/metrics.py); a figure the counters cannot give is the mean of its gauge over the
    window's scrapes (SGLang sets both gauges from its last logged interval; TensorRT-LLM counts no
    drafts and gauges its last iteration's length)."""
    drafted = inc("spec_draft_tokens")
    if drafted:
        accepted = inc("spec_accepted") or 0.0
        out["spec_draft_tokens"], out["spec_acceptance_rate"] = drafted, accepted / drafted
        if drafts := inc("spec_drafts"):
            out["spec_acceptance_length"] = 1.0 + accepted / drafts
    for key, col in (
        ("spec_acceptance_length", "spec_length_gauge"),
        ("spec_acceptance_rate", "spec_rate_gauge"),
    ):
        v = gauges(col) if out.get(key) is None else None
        if v is not None and v.size:
            out[key] = float(v.mean())
    out["spec_acceptance_by_position"] = by_position(inc, list(columns))


def by_position(inc: Callable[[str], float | None], columns: list[str]) -> list[float] | None:
    """Each draft position's acceptance over the window, first position first: the tokens accepted there
    over the drafts (every draft has a token at each position; vLLM's v1/spec_decode/metrics.py), or over
    the tokens drafted there where the server counts them (TensorRT-LLM). Where it falls off tells
    whether the last draft tokens pay for their verification (`num_speculative_tokens`). None without
    per-position counters or without drafts in the window."""
    positions = sorted(
        (
            c[len(ACCEPTED_AT) :]
            for c in columns
            if c.startswith(ACCEPTED_AT) and c[len(ACCEPTED_AT) :].isdigit()
        ),
        key=int,
    )
    drafts = inc("spec_drafts")
    per_position = any(c.startswith(DRAFTED_AT) for c in columns)
    rates = []
    for pos in positions:
        den = inc(DRAFTED_AT + pos) if per_position else drafts
        accepted = inc(ACCEPTED_AT + pos)
        if not den or accepted is None:
            return None
        rates.append(accepted / den)
    return rates or None
