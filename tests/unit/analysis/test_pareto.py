"""The Pareto view: known dominated and non-dominated points, ties, levels that missed the SLO, the
best goodput at each load, and the comparison's report carrying it."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from analysis import api
from analysis.pareto import best_at_load, non_dominated
from analysis.render import pareto as pareto_render
from analysis.results import Step, StepPercentiles
from core.slo import PROFILES
from tests.support.synthetic import stage, steady, write_run

CHAT = PROFILES["chat"]
NONE = StepPercentiles(None, None, None)


def test_non_dominated_known_points_and_ties() -> None:
    pts = [(1, 5), (2, 4), (2, 4), (1, 4), (3, 1), (0, 6), (2, 3), (3, 0.5)]
    # (1,4) < (1,5); (2,3) < (2,4); (3,0.5) < (3,1); the two (2,4) tie: neither beats the other
    assert non_dominated(pts) == [True, True, True, False, True, True, False, False]
    assert non_dominated([]) == [] and non_dominated([(1.0, 1.0)]) == [True]


def test_best_goodput_at_each_load_ties_all_marked() -> None:
    pts = [("users", 1, 2.0), ("users", 1, 3.0), ("users", 2, 4.0), ("users", 2, 4.0), ("req/s", 1, 1.0),
           ("users", 4, None)]  # fmt: skip
    assert best_at_load(pts) == [False, True, True, True, True, False]


def level(step: int, load: float, tok: float, tpot_p50: float | None, attainment: float, goodput: float,
          truncated: str | None = None) -> Step:  # fmt: skip
    return Step(step, f"{load:g} users", load, int(load), None, 10, 10, 0, 10, 0, 0.0, 10.0, 10.0, 1.0, tok, goodput,
                attainment, NONE, StepPercentiles(tpot_p50, None, None), NONE, truncated=truncated)  # fmt: skip


def test_frontier_within_the_slo_and_who_owns_it() -> None:
    a = SimpleNamespace(steps=[level(0, 1, 100, 0.01, 1.0, 1.0), level(1, 2, 180, 0.02, 0.95, 2.0),
                               level(2, 4, 300, 0.05, 0.5, 1.5)])  # fmt: skip
    b = SimpleNamespace(steps=[level(0, 1, 90, 0.008, 1.0, 0.9), level(1, 2, 170, 0.025, 1.0, 2.0),
                               level(2, 4, 250, 0.04, 0.92, 3.0), level(3, 8, 400, 0.01, 1.0, 9.0, "cut")])  # fmt: skip
    p = api.pareto([("A", a), ("B", b)], CHAT)
    got = {(pt.label, pt.load): (pt.frontier, pt.meets_slo, pt.best_goodput) for pt in p.points}
    assert got == {
        ("A", 1): (True, True, True),  # (100, 100 tok/s/user)
        ("A", 2): (True, True, True),  # (180, 50): beats B's (170, 40); ties B's goodput at 2 users
        ("A", 4): (False, False, False),  # (300, 20) is beaten by nothing, but it missed the SLO
        ("B", 1): (True, True, False),  # (90, 125): the most interactive
        ("B", 2): (False, True, True),  # (170, 40) < A's (180, 50)
        ("B", 4): (True, True, True),  # (250, 25): the most throughput within the SLO
    }  # B's truncated 8-user level is left out, as from capacity
    assert p.of("A")[0].per_user_tok_per_s == pytest.approx(100.0)
    assert p.owners == ["A", "B"] and "No single best under SLO chat: A, B" in pareto_render.verdict(p)
    assert [r[0] for r in pareto_render.rows(p)] == ["B", "A", "A", "B"]  # highest throughput first


def test_no_level_within_the_slo_has_no_frontier() -> None:
    a = SimpleNamespace(steps=[level(0, 1, 100, 0.01, 0.2, 0.1)])
    p = api.pareto([("A", a)], CHAT)
    assert p.owners == [] and "no frontier" in pareto_render.verdict(p)


def ramp(path: Path, e2e_s: float) -> Path:
    rows, stages = [], []
    for k in range(3):
        rows += steady(k, k + 1, 10.0 * k, 10.0 * (k + 1), 1.0 + k, e2e_s, tokens=40)
        stages.append(stage(k, 10.0 * k, 10.0 * (k + 1), users=k + 1))
    return write_run(path, rows, stages, target="http://x", model="m", name=path.name)


def test_compare_report_has_the_pareto_view(tmp_path: Path) -> None:
    runs = [ramp(tmp_path / "fast", 2.0), ramp(tmp_path / "slow", 12.0)]  # slow: TPOT 0.3 s > 250 ms
    c = api.compare([api.analyze(api.load_run(r), CHAT).summary for r in runs], CHAT)
    (view,) = api.pareto_of(c)  # one dataset
    assert view.owners == ["fast"] and view.dataset == "chat"
    out = tmp_path / "cmp"
    api.write_comparison(out, c, with_plots=True)
    assert (out / "plots" / "pareto.png").stat().st_size > 10_000
    md = (out / "comparison.md").read_text()
    assert "## Pareto frontier" in md and "fast holds the whole frontier under SLO chat" in md
    html = (out / "report.html").read_text()
    assert (
        "<h2>Pareto frontier</h2>" in html and html.count("data:image/png;base64") == 3
    )  # bars, load, pareto
