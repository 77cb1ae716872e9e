"""The arena with mixed tenants: a mix as a dataset, its interference cells at each class's share of the
load, and what the comparison and the leaderboard show (the interference deltas, the Pareto frontier)."""

from __future__ import annotations

from pathlib import Path

import pytest

from arena import board, tables
from arena.matrix import MatrixError, load_matrix
from arena.runner import Layout, locust_command
from core.record import RequestRecord
from core.slo import PROFILES
from tests.support.synthetic import request, stage, write_run

SPEC = "chat:70%:slo=chat,random:30%:slo=datagen"
MATRIX = f"""
name: mx
targets:
  - label: a
    simserver: {{profile: latency}}
datasets:
  - {{mix: "{SPEC}", label: office, interference: true}}
shapes:
  - {{label: u10, users: 10, duration: 20s}}
  - {{label: r5, rate: 5, max_concurrency: 8, duration: 20s}}
slos: [chat]
"""


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "m.yaml"
    p.write_text(text)
    return p


def test_mix_cells_and_their_classes_alone_at_their_share(tmp_path: Path) -> None:
    m = load_matrix(write(tmp_path, MATRIX))
    cells = m.cells()
    assert [(c.dataset, c.alone, c.shape.label) for c in cells] == [
        ("office", "", "u10"), ("office", "", "r5"),
        ("office", "chat", "u10"), ("office", "random", "u10"), ("office", "chat", "r5"), ("office", "random", "r5"),
    ]  # fmt: skip
    by = {(c.alone, c.shape.label): c for c in cells}
    # 10 users of 70/30: 7 and 3 (the mix's own split); 5 req/s: 3.5 and 1.5; a cap of 8: 6 and 3 (rounded up)
    assert by[("chat", "u10")].shape.args == ("-u", "7", "-t", "20s")
    assert by[("random", "u10")].shape.args == ("-u", "3", "-t", "20s")
    assert by[("random", "r5")].shape.args == ("--rate", "1.5", "--max-concurrency", "3", "-t", "20s")
    cmd = locust_command(m, by[("chat", "r5")], "http://h", Layout(tmp_path))
    assert cmd[cmd.index("--mix") + 1] == SPEC and cmd[cmd.index("--mix-alone") + 1] == "chat"
    assert "--dataset" not in cmd and by[("chat", "r5")].id == "a__office.alone-chat__r5__r1"
    assert len({c.signature for c in cells}) == len(cells)


def test_a_step_ramps_class_alone_follows_the_users_it_held_at_each_step(tmp_path: Path) -> None:
    """A ramp of +1 user every 5 s up to 3, for 20 s: the mix holds 1, 2, 3, 3 users; chat (70 %) held
    1, 1, 2 of them and random 0, 1, 1: their alone cells are stages of those users (the capped top merged)."""
    text = MATRIX.replace("  - {label: r5, rate: 5, max_concurrency: 8, duration: 20s}\n", "").replace(
        "{label: u10, users: 10, duration: 20s}",
        "{label: ramp, shape: step, step_users: 1, step_interval: 5s, max_users: 3, cooldown: 1s, duration: 20s}",
    )
    by = {c.alone: c for c in load_matrix(write(tmp_path, text)).cells()}
    assert by[""].shape.args[:2] == ("--shape", "step")
    assert by["chat"].shape.args == ("--cooldown", "1s", "--shape", "stages", "--stages", "5s:1:10,5s:1:10,10s:2:20",
                                     "-t", "20s")  # fmt: skip
    args = by["random"].shape.args
    assert args[args.index("--stages") + 1] == "5s:0:10,5s:1:10,10s:1:10"


@pytest.mark.parametrize(
    ("shape", "expected"),
    [
        ("{label: st, shape: stages, stages: '10s:4,10s:8', duration: 20s}", "its stages, shape stages"),
        ("{label: sw, shape: sweep, sweep_stages: 3, duration: 20s}", "its sweep_stages, shape sweep"),
        ("{label: plain, duration: 20s}", "no users, rate or step ramp — an alone cell takes its share"),
        ("{label: x, users: 4, args: '--rate 3', duration: 20s}", "args set the load (--rate 3)"),
    ],
)
def test_interference_needs_a_load_it_can_share(tmp_path: Path, shape: str, expected: str) -> None:
    text = MATRIX.replace("  - {label: r5, rate: 5, max_concurrency: 8, duration: 20s}\n", "").replace(
        "  - {label: u10, users: 10, duration: 20s}", f"  - {shape}"
    )
    with pytest.raises(MatrixError, match="interference: true") as e:
        load_matrix(write(tmp_path, text))
    assert expected in str(e.value) and "\n" not in str(e.value)


def test_a_bad_mix_entry_names_its_place(tmp_path: Path) -> None:
    with pytest.raises(MatrixError, match=r"m.yaml:7: datasets\[0\].mix: --mix: shares sum to 90 %"):
        load_matrix(write(tmp_path, MATRIX.replace("random:30%", "random:20%")))
    with pytest.raises(MatrixError, match="a mix needs a label"):
        load_matrix(write(tmp_path, MATRIX.replace(", label: office", "")))


def tagged(tenant: str, rec: RequestRecord) -> RequestRecord:
    rec.tenant = tenant
    return rec


def synthetic(path: Path, classes: list[tuple[str, float]], ttft_s: float) -> Path:
    """Two levels of the given classes; chat's TTFT `ttft_s`, random within datagen."""
    slos = {"chat": PROFILES["chat"], "random": PROFILES["datagen"]}
    mix = {"spec": SPEC, "label": "office",
           "classes": [{"name": n, "dataset": n, "share_pct": s, "slo": slos[n].to_dict()} for n, s in classes]}  # fmt: skip
    rows = []
    for k in range(2):
        for i in range(10):
            name = classes[i % len(classes)][0]
            rows.append(tagged(name, request(k, 10.0 * k + i, 0.5, ttft_s=ttft_s, users=k + 1, user=i)))
    return write_run(path, rows, [stage(0, 0.0, 10.0, users=1), stage(1, 10.0, 20.0, users=2)], mix=mix)


def test_comparison_and_leaderboard_show_interference_and_the_frontier(tmp_path: Path) -> None:
    m = load_matrix(
        write(tmp_path, MATRIX.replace("  - {label: r5, rate: 5, max_concurrency: 8, duration: 20s}\n", ""))
    )
    done = []
    for c in m.cells():
        classes = [(c.alone, 100.0)] if c.alone else [("chat", 70.0), ("random", 30.0)]
        done.append((c, synthetic(tmp_path / "runs" / c.id, classes, 0.1 if c.alone else 0.3)))
    sections = tables.evaluate(m, done, warn=pytest.fail)
    (sec,) = sections
    assert [r.label for r in sec.rows] == ["a"]  # the alone cells are references, not rows
    (found,) = [x for x in sec.comparison.interference if x.tenant == "chat"]
    assert found.phrase().startswith("chat: TTFT p95 +200 ms")
    root = tmp_path / "out"
    root.mkdir()
    tables.write_comparison(root, m, sections)
    own = (root / "compare" / "chat__u10" / "comparison.md").read_text()
    assert "## Interference" in own and "chat: TTFT p95 +200 ms" in own and "## Pareto frontier" in own
    (entry,) = tables.entries(m, sections, {"hardware": "hw"})
    assert entry["interference"].startswith("chat: TTFT p95 +200 ms") and len(entry["pareto"]) == 2
    page = board.render_html([entry], "t")
    assert "<svg" in page and "interference, <b>a</b>: chat: TTFT p95 +200 ms" in page
    assert "Pareto frontier: a holds all of it." in board.render_markdown([entry], "t")
