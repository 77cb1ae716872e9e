"""Rankings say when a winner is not one: the leaderboard's tie rule (arena/board.py `beats`) on the
recorded entries of the shipped example under the `chat` SLO, and end to end on runs of known truth."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from arena import board, tables
from arena.matrix import load_matrix
from tests.support.synthetic import request, stage, write_run

ROOT = Path(__file__).resolve().parents[3]


def recorded() -> list[dict]:
    """examples/arena.yaml with chat added, as one real run stored it (tests/fixtures: see `about`)."""
    return json.loads((ROOT / "tests" / "fixtures" / "arena_example_entries.json").read_text())["entries"]


def cell(cells: list, dataset: str, slo: str) -> list[dict]:
    return next(items for key, items in cells if key[0] == dataset and key[1] == slo)


def test_the_example_near_tie_under_chat_is_reported_as_a_tie() -> None:
    """agentic × chat: throughput's capacity 8.67 users (its repeats 5.3 and 12) against latency's 7.73
    — point values pick throughput, the intervals overlap and so do goodput's: a tie, no winner."""
    cells = board.ranked(recorded())
    chat = cell(cells, "agentic", "chat")
    assert [(e["config"], e["rank"], e["winner"], e["tied"]) for e in chat] == [
        ("throughput", 1, True, True),
        ("latency", 1, True, True),
    ]
    assert not board.beats(chat[0], chat[1]) and not board.beats(chat[1], chat[0])
    md = board.render_markdown(recorded(), "t")
    assert "| agentic | chat (" in md and "throughput = latency (tied within noise)" in md
    assert "🏆 1 (tied) | throughput | 8.67 users [4.81–…] (5.33–12)" in md
    assert "are ties within noise" in board.verdict(cells)
    html = board.render_html(recorded(), "t")
    assert "throughput = latency (tied within noise)" in html and "★ 1 (tied)" in html


def test_what_separates_still_ranks() -> None:
    """agentic × mlperf-interactive: the capacities overlap (5.8–8.7 against 4.6–6.5 users) but goodput
    separates (1.09–1.67 against 0.58–1.05 req/s): latency wins alone. agentic × datagen: throughput
    held the SLO at no level (interval 0–7.2), latency up to 12 users: latency, far apart."""
    cells = board.ranked(recorded())
    mi = cell(cells, "agentic", "mlperf-interactive")
    assert [(e["config"], e["rank"], e["winner"], e["tied"]) for e in mi] == [
        ("latency", 1, True, False),
        ("throughput", 2, False, False),
    ]
    dg = cell(cells, "agentic", "datagen")
    assert [(e["config"], e["winner"]) for e in dg] == [("latency", True), ("throughput", False)]
    md = board.render_markdown(recorded(), "t")
    section = md.split("## agentic × mlperf-interactive (")[1].split("\n## ")[0]
    assert section.count("🏆") == 1 and "(tied)" not in section


def test_entries_without_intervals_rank_by_their_values() -> None:
    """A store written before intervals: the old order (capacity, then goodput), exact ties shared."""
    base = {"dataset": "d", "slo": "chat", "shape": "s", "capacity_unit": "users"}
    entries = [
        {**base, "config": "a", "capacity": 4.0, "goodput": 1.0},
        {**base, "config": "b", "capacity": 6.0, "goodput": 0.5},
        {**base, "config": "c", "capacity": 6.0, "goodput": 0.5},
    ]
    ((_, items),) = board.ranked(entries)
    assert [(e["config"], e["rank"], e["tied"]) for e in items] == [
        ("b", 1, True),
        ("c", 1, True),
        ("a", 3, False),
    ]


MATRIX = """
name: ties
targets:
  - {label: a, simserver: {profile: latency}}
  - {label: b, simserver: {profile: throughput}}
  - {label: c, simserver: {profile: default}}
datasets: [random]
shapes:
  - {label: ramp, shape: step, step_users: 1, step_interval: 10s, duration: 40s}
slos: [chat]
"""


def ramp(path: Path, attainment: list[float], seed: int) -> Path:
    """Four 10 s levels of 40 requests (1..4 users); each request misses the chat TTFT limit with
    the level's share, at random (seeded) so a level's spans differ as real ones do."""
    rng = random.Random(seed)
    rows, stages = [], []
    for k, a in enumerate(attainment):
        for i in range(40):
            ttft = 0.1 if rng.random() < a else 0.8
            rows.append(request(k, 10.0 * k + i * 0.25, 1.0, users=k + 1, user=i % (k + 1), ttft_s=ttft))
        stages.append(stage(k, 10.0 * k, 10.0 * (k + 1), users=k + 1))
    return write_run(path, rows, stages)


def test_runs_a_noise_apart_tie_and_runs_far_apart_do_not(tmp_path: Path) -> None:
    """Through the arena's own analysis: a and b hold the SLO alike up to 2 users and break at 3 (40
    requests a level cannot tell them apart); c breaks at 1 user. a = b, both above c."""
    (tmp_path / "m.yaml").write_text(MATRIX)
    m = load_matrix(tmp_path / "m.yaml")
    shapes = {"a": [1.0, 0.97, 0.6, 0.3], "b": [1.0, 0.93, 0.65, 0.25], "c": [0.6, 0.3, 0.1, 0.0]}
    done = [(c, ramp(tmp_path / "runs" / c.id, shapes[c.target.label], i)) for i, c in enumerate(m.cells())]
    sections = tables.evaluate(m, done, warn=pytest.fail)
    entries = tables.entries(m, sections, {"hardware": "hw"})
    ((_, items),) = board.ranked(entries)
    by = {e["config"]: e for e in items}
    assert by["a"]["capacity_low"] is not None and by["a"]["capacity_high"] is not None
    assert (by["a"]["rank"], by["b"]["rank"], by["c"]["rank"]) == (1, 1, 3)
    assert by["a"]["tied"] and by["b"]["tied"] and not by["c"]["winner"]
    # the comparison marks the same: capacity best within noise for a and b, c not best
    rows = {r.label: r for r in sections[0].rows}
    assert "capacity_at_slo" in rows["a"].tied and "capacity_at_slo" in rows["b"].tied
    assert "capacity_at_slo" not in rows["c"].best


def test_repeats_option_runs_every_cell_n_times(capsys: pytest.CaptureFixture[str]) -> None:
    from arena.__main__ import main

    assert main(["run", str(ROOT / "examples" / "arena.yaml"), "--dry-run", "--repeats", "3"]) == 0
    out = capsys.readouterr().out
    assert "× 3 repeats = 12 cells" in out and "[12/12] throughput · random · ramp4x12s · repeat 3" in out
    assert main(["run", str(ROOT / "examples" / "arena.yaml"), "--dry-run", "--repeats", "0"]) == 2
    assert capsys.readouterr().err == "arena: error: --repeats: 0 must be ≥ 1\n"


def test_a_matrix_cell_can_search(tmp_path: Path) -> None:
    """A search shape in a matrix: its keys become the load path's flags; the leaderboard ranks its
    capacity with its interval like any other."""
    from arena.runner import Layout, locust_command

    (tmp_path / "m.yaml").write_text(MATRIX.replace(
        "{label: ramp, shape: step, step_users: 1, step_interval: 10s, duration: 40s}",
        "{label: find, shape: search, search_by: users, search_precision: 10%, search_probe_duration: 10s, duration: 5m}",
    ))  # fmt: skip
    m = load_matrix(tmp_path / "m.yaml")
    cmd = locust_command(m, m.cells()[0], "http://127.0.0.1:1", Layout(tmp_path / "out"))
    i = cmd.index("--shape")
    assert cmd[i : i + 8] == ["--shape", "search", "--search-by", "users", "--search-precision", "10%",
                              "--search-probe-duration", "10s"]  # fmt: skip
    assert cmd[cmd.index("-t") + 1] == "300s"
