"""The interference view: each class of a mixed run against the same class run alone at its share of the load.

What sharing the server costs a class ("chat TTFT p95 +180 ms in the mix; datagen goodput −12 %"):
a class's figures in the mix (analysis/tenants.py) against those of a run of that class alone — a
one-class mix (`--mix "chat:100%:slo=chat"`) at the class's share of the mix's load, as the arena
runs it (README.md § Mixed tenants). Both are judged against the class's own SLO. A delta is
in the mix − alone: latencies in ms (positive: slower in the mix), goodput relative to alone (negative:
less in the mix), attainment in percentage points. Repeated alone runs give their median.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass

from analysis.compare import Comparison, curve_labels
from analysis.results import Summary
from analysis.tenantresults import TenantFigures

# (field, label, kind): ms, rel (relative to alone) or pp (percentage points)
METRICS = (
    ("ttft_p95_s", "TTFT p95", "ms"),
    ("tpot_p95_s", "TPOT p95", "ms"),
    ("e2e_p95_s", "E2E p95", "ms"),
    ("goodput_req_per_s", "goodput", "rel"),
    ("slo_attainment", "attainment", "pp"),
)


@dataclass(frozen=True)
class Delta:
    metric: str
    label: str
    kind: str
    in_mix: float | None
    alone: float | None

    @property
    def delta(self) -> float | None:
        return None if self.in_mix is None or self.alone is None else self.in_mix - self.alone

    @property
    def relative(self) -> float | None:
        """(in the mix − alone) / alone; None without both or when alone is 0."""
        d = self.delta
        return None if d is None or not self.alone else d / self.alone

    def change(self) -> str:
        """`+180 ms`, `−12 %`, `−4.0 pp`; `n/a` without both figures."""
        d, rel = self.delta, self.relative
        if d is None or (self.kind == "rel" and rel is None):
            return "n/a"
        if self.kind == "ms":
            body = f"{d * 1000:+,.0f} ms"
        elif self.kind == "rel":
            body = f"{(rel or 0.0) * 100:+.0f} %"
        else:
            body = f"{d * 100:+.1f} pp"
        return body.replace("-", "−")

    def text(self) -> str:
        """`TTFT p95 +180 ms`, `goodput −12 %`, `attainment −4.0 pp`."""
        return f"{self.label} {self.change()}"


@dataclass(frozen=True)
class ClassInterference:
    """One class of one mixed run against its alone run(s)."""

    mix: str  # the mixed run's label
    tenant: str
    slo: str
    alone_runs: list[str]  # folders
    deltas: list[Delta]

    def phrase(self) -> str:
        """`chat: TTFT p95 +180 ms, TPOT p95 +3 ms, …, goodput −12 % in the mix (SLO chat)`."""
        return f"{self.tenant}: " + ", ".join(d.text() for d in self.deltas) + f" in the mix (SLO {self.slo})"


def figures(f: TenantFigures) -> dict[str, float | None]:
    return {
        "ttft_p95_s": f.ttft.p95,
        "tpot_p95_s": f.tpot.p95,
        "e2e_p95_s": f.e2e.p95,
        "goodput_req_per_s": f.goodput_req_per_s,
        "slo_attainment": f.slo_attainment,
    }


def alone_class(s: Summary) -> TenantFigures | None:
    """The class of a one-class mix (a class run alone), else None."""
    t = s.tenants
    return t.classes[0] if t is not None and len(t.classes) == 1 else None


def interference(label: str, mixed: Summary, alone: list[Summary]) -> list[ClassInterference]:
    """Every class of `mixed` that has alone runs among `alone` (matched by class name and SLO)."""
    if mixed.tenants is None or len(mixed.tenants.classes) < 2:
        return []
    out = []
    for f in mixed.tenants.classes:
        mine = [
            (s, a)
            for s in alone
            if (a := alone_class(s)) and a.name == f.name and a.verdict.slo == f.verdict.slo
        ]
        if not mine:
            continue
        ref = [figures(a) for _, a in mine]
        here = figures(f)
        deltas = []
        for key, name, kind in METRICS:
            vals = [r[key] for r in ref if r[key] is not None]
            deltas.append(Delta(key, name, kind, here[key], statistics.median(vals) if vals else None))
        out.append(ClassInterference(label, f.name, f.verdict.slo, [s.run.dir for s, _ in mine], deltas))
    return out


def of_comparison(c: Comparison) -> list[ClassInterference]:
    """Mixed runs against the one-class runs of the same target and model in a comparison (or the
    pairs the comparison was given)."""
    if c.interference is not None:
        return list(c.interference)
    labels = curve_labels(c.runs)
    out = []
    for label, s in zip(labels, c.summaries, strict=True):
        same = [
            o
            for o in c.summaries
            if o is not s and (o.run.target, o.run.model) == (s.run.target, s.run.model)
        ]
        out += interference(label, s, same)
    return out
