"""Arena units: matrix parsing and validation, templating over grids, simserver --set, ranking, store, resume rules."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from arena import board, store
from arena.matrix import LOAD_FLAGS, SHAPE_FLAGS, MatrixError, load_matrix
from arena.places import parse_duration
from arena.runner import Layout, complete_run

ROOT = Path(__file__).resolve().parents[3]
BASE = """
name: t
targets:
  - label: a
    simserver: {profile: latency}
datasets: [random]
shapes:
  - {label: ramp, shape: step, step_users: 2, step_interval: 5s, duration: 20s}
"""


def write(tmp_path: Path, text: str, name: str = "m.yaml") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def test_example_matrix_expands_to_eight_cells_in_fair_order():
    m = load_matrix(ROOT / "examples" / "arena.yaml")
    cells = m.cells()
    assert (
        len(cells) == 8 and m.slos == ["chat", "mlperf-interactive", "datagen"] and m.name == "arena-example"
    )
    # repeat-major; the configurations of one (dataset, shape) run back to back
    assert [(c.repeat, c.dataset, c.target.label) for c in cells[:4]] == [
        (1, "agentic", "latency"),
        (1, "agentic", "throughput"),
        (1, "random", "latency"),
        (1, "random", "throughput"),
    ]
    assert len({c.id for c in cells}) == 8
    assert all(re.fullmatch(r"[A-Za-z0-9._-]+", c.id) for c in cells)
    # repeats share the signature (the same experiment), configurations do not
    assert cells[0].signature == cells[4].signature != cells[1].signature
    assert cells[0].shape.args[-2:] == ("-t", "48s")
    assert load_matrix(ROOT / "examples" / "arena.yaml").cells()[0].signature == cells[0].signature


def test_signature_follows_what_changes_a_run_not_the_slos(tmp_path):
    sig = load_matrix(write(tmp_path, BASE)).cells()[0].signature
    assert load_matrix(write(tmp_path, BASE + "slos: [datagen, chat]\n")).cells()[0].signature == sig
    for changed in (
        BASE.replace("step_users: 2", "step_users: 3"),
        BASE.replace("profile: latency", "profile: throughput"),
        BASE + "load: {max_tokens: 64}\n",
        BASE + "processes: 2\n",
    ):
        assert load_matrix(write(tmp_path, changed)).cells()[0].signature != sig


def test_grid_templating_labels_and_overrides(tmp_path):
    m = load_matrix(
        write(
            tmp_path,
            """
targets:
  - label: "sim-s{max_num_seqs}-b{max_num_batched_tokens}"
    simserver: {profile: default, set: {output.sigma: 0.1}}
    grid: {max_num_seqs: [4, 16], max_num_batched_tokens: [512, 2048]}
  - label: raw
    launch: "{python} -m simserver --port {port} --host {host} --set engine.max_num_seqs={seqs} --model 'm {seqs}'"
    grid: {seqs: [2, "{x}"]}
    env: {TAG: "s{seqs}-p{port}"}
datasets: [random]
shapes: [{duration: 10s}]
""",
        )
    )
    labels = [t.label for t in m.targets]
    assert labels == [
        "sim-s4-b512",
        "sim-s4-b2048",
        "sim-s16-b512",
        "sim-s16-b2048",
        "raw[seqs=2]",
        "raw[seqs={x}]",
    ]
    t = m.targets[1]
    assert dict(t.params) == {"max_num_seqs": 4, "max_num_batched_tokens": 2048}
    cmd = t.command(4242)
    assert cmd[:7] == [sys.executable, "-m", "simserver", "--host", "127.0.0.1", "--port", "4242"]
    assert cmd[9:11] == ["--set", "output.sigma=0.1"]
    assert "max_num_batched_tokens=2048" in cmd and "max_num_seqs=4" in cmd
    raw = m.targets[5]
    assert raw.command(7)[-4:] == ["--set", "engine.max_num_seqs={x}", "--model", "m {x}"]
    assert raw.environment(7) == {"TAG": "s{x}-p7"}
    assert "{port}" in raw.describe() and "python -m simserver" in raw.describe()
    assert m.shapes[0].label == "shape1" and m.shapes[0].args == ("-t", "10s")


def test_literal_braces_in_a_launch_command_reach_the_server_once(tmp_path):
    """A JSON option in a launch command (vLLM's `--speculative-config`) is written with `{{`/`}}`, as
    README.md § Arena says; with a grid key inside it, the server gets the JSON with the value — the
    grid's filling must not eat the escapes the launch's own filling needs (a KeyError before)."""
    m = load_matrix(
        write(
            tmp_path,
            """
targets:
  - label: "vllm-k{k}"
    launch: "{python} -m vllm.entrypoints.openai.api_server --port {port} --speculative-config '{{\\"method\\": \\"ngram\\", \\"num_speculative_tokens\\": {k}}}'"
    grid: {k: [2, 4]}
    env: {CFG: "{{\\"k\\": {k}}}"}
datasets: [random]
shapes: [{duration: 10s}]
""",
        )
    )
    for t, k in zip(m.targets, (2, 4), strict=True):
        assert t.command(8000)[-2:] == [
            "--speculative-config",
            f'{{"method": "ngram", "num_speculative_tokens": {k}}}',
        ]
        assert t.environment(8000) == {"CFG": f'{{"k": {k}}}'}
        assert f'\'{{"method": "ngram", "num_speculative_tokens": {k}}}\'' in t.describe()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("targets: [{label: a, lanch: x}]", ":2: targets[0].lanch: unknown key"),
        ("targets: [{label: a, url: ftp://x}]", ":2: targets[0].url: expected http(s)://HOST:PORT"),
        ("targets: [{label: a, url: 'http://h:1', launch: x}]", "give exactly one of url, launch, simserver"),
        ("targets: [{label: a, launch: 'nosuchcmd-xyz --port {port}'}]", "'nosuchcmd-xyz' not found"),
        ("targets: [{label: a, launch: '{python} -m simserver --port {prt}'}]", "unknown placeholder {prt}"),
        ("targets: [{label: a, launch: '{python} -m simserver'}]", "add {port}"),
        ("targets: [{label: a, launch: '{python} x {port', grid: {}}]", "bad template"),
        ("targets: [{label: a, launch: '{python} {port}', grid: {n: [1]}}]", "grid key 'n' is not used"),
        (
            "targets: [{label: a, launch: '{python} {port} {n}', grid: {n: []}}]",
            "expected a mapping of NAME: [values]",
        ),
        (
            "targets: [{label: 'a{m}', launch: '{python} {port} {n}', grid: {n: [1]}}]",
            "unknown placeholder {m}",
        ),
        (
            "targets: [{label: a, launch: '{python} {port}', env: {X: '{y}'}}]",
            "env.X: unknown placeholder {y}",
        ),
        ("targets: [{label: a, simserver: {profile: latency, sett: 1}}]", "simserver.sett: unknown key"),
        ("targets: [{label: a, simserver: latency, grid: {n: [1, 1]}}]", "collide"),
        (
            "targets: [{label: a, simserver: latency, startup_timeout: soon}]",
            "startup_timeout: 'soon' is not a duration",
        ),
    ],
)
def test_bad_targets_name_the_place(tmp_path, text, expected):
    body = f"\n{text}\ndatasets: [random]\nshapes: [{{duration: 10s}}]\n"
    with pytest.raises(MatrixError) as e:
        load_matrix(write(tmp_path, body))
    msg = str(e.value)
    assert expected in msg and "\n" not in msg and msg.startswith(str(tmp_path / "m.yaml"))


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ("repeats: 0", "repeats: expected a whole number ≥ 1"),
        ("processes: two", "processes: expected a whole number ≥ 0"),
        ("slos: [chat, chatt]", "slos[1]: SLO 'chatt': unknown profile"),
        ("slos: [chat, 'ttft=500']", "needs a unit"),
        ("load: {max_tokens: 64, seeed: 1}", "load.seeed: unknown key"),
        ("load: {ignore_eos: [1]}", "load.ignore_eos: expected a single value"),
        ("analysis: {plots: yes please}", "analysis.plots: expected true/false"),
        ("analysis: {attain_target: 2}", "expected a fraction"),
        ("name: 'a b'", "use letters, digits"),
        ("colour: red", ":9: colour: unknown key"),
    ],
)
def test_bad_top_level_keys(tmp_path, extra, expected):
    with pytest.raises(MatrixError, match=re.escape(expected)):
        text = BASE.replace("name: t", extra) if extra.startswith("name:") else BASE + extra + "\n"
        load_matrix(write(tmp_path, text))


def test_bad_datasets_shapes_and_yaml(tmp_path):
    cases = {
        BASE.replace("[random]", "[random, agentc]"): ":6: datasets[1]: unknown dataset 'agentc'",
        BASE.replace("[random]", "['random:input=foo']"): "datasets[0]: random: input=foo",
        BASE.replace("duration: 20s", "duration: 20x"): "shapes[0].duration: '20x' is not a duration",
        BASE.replace("step_users: 2", "step_user: 2"): "shapes[0].step_user: unknown key",
        BASE.replace("step_users: 2", "rate: [2]"): "shapes[0].rate: expected a single value",
        BASE.replace("duration: 20s}", "duration: 20s"): "not valid YAML",
        BASE.replace("name: t", "name: t\nname: u"): "duplicate key 'name'",
        "- just a list\n": "expected a mapping",
        BASE.replace("datasets: [random]\n", ""): "datasets: missing",
    }
    for text, expected in cases.items():
        with pytest.raises(MatrixError, match=re.escape(expected)):
            load_matrix(write(tmp_path, text))
    with pytest.raises(MatrixError, match="cannot read"):
        load_matrix(tmp_path / "missing.yaml")


def test_cli_errors_are_one_line_exit_2(tmp_path):
    bad = write(tmp_path, BASE + "colour: red\n")
    r = subprocess.run(
        [sys.executable, "-m", "arena", "run", str(bad)], capture_output=True, text=True, cwd=ROOT, timeout=60
    )
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.strip().count("\n") == 0 and "colour: unknown key" in r.stderr
    r = subprocess.run(
        [sys.executable, "-m", "arena", "leaderboard", "--results", str(tmp_path / "none")],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )
    assert r.returncode == 2 and "no leaderboard store yet" in r.stderr and "Traceback" not in r.stderr
    r = subprocess.run(
        [sys.executable, "-m", "arena", "frobnicate"], capture_output=True, text=True, timeout=60
    )
    assert r.returncode == 2 and "unknown command 'frobnicate'" in r.stderr


def test_dry_run_lists_every_cell_and_command(tmp_path):
    m = write(tmp_path, BASE.replace("name: t", "name: t\nrepeats: 2\nprocesses: 2"))
    r = subprocess.run(
        [sys.executable, "-m", "arena", "run", str(m), "--dry-run", "--results", str(tmp_path / "res")],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )
    assert r.returncode == 0, r.stderr
    assert "= 2 cells" in r.stdout and "[2/2] a · random · ramp · repeat 2" in r.stdout
    assert (
        "--profile latency" in r.stdout
        and "--processes 2" in r.stdout
        and "--run-name a__random__ramp__r2" in r.stdout
    )
    assert not (tmp_path / "res").exists()


def test_shape_and_load_keys_map_to_real_options():
    """Every flag the matrix can produce is one the load path defines (or Locust's -u/-r/-t)."""
    text = "".join((ROOT / f).read_text() for f in ("loadgen/run/options.py", "shapes/options.py"))
    for flag in [*SHAPE_FLAGS.values(), *LOAD_FLAGS.values()]:
        assert flag in ("-u", "-r") or f'"{flag}"' in text, flag


def test_durations():
    assert (
        parse_duration("500ms", "x") == 0.5
        and parse_duration("2m", "x") == 120
        and parse_duration(7, "x") == 7
    )
    for bad in ("0s", "-1s", "ten", True, None):
        with pytest.raises(MatrixError):
            parse_duration(bad, "x")


def test_simserver_set_overrides_profile_keys():
    from simserver.__main__ import UsageError, build_profile, parse_args
    from simserver.profiles import ProfileError

    p = build_profile(
        parse_args(["--profile", "latency", "--set", "max_num_seqs=3", "--set", "step_time.base_s=0.5"])
    )
    assert (
        p.engine.max_num_seqs == 3 and p.step_time.base_s == 0.5 and p.engine.max_num_batched_tokens == 2048
    )
    p = build_profile(parse_args(["--profile", "throughput", "--set", "engine.enable_prefix_caching=true"]))
    assert p.engine.enable_prefix_caching is True
    for bad, err in (
        ("engine.max_num_seqs=x", ProfileError),
        ("engine.nope=1", ProfileError),
        ("nope=1", UsageError),
        ("max_num_seqs", UsageError),
        ("engine.max_num_seqs=0", ProfileError),
    ):
        with pytest.raises(err):
            build_profile(parse_args(["--set", bad]))


def entry(config: str, capacity: float | None, goodput: float, dataset: str = "d", lower: int = 0) -> dict:
    return {
        "matrix": "m",
        "config": config,
        "dataset": dataset,
        "shape": "ramp",
        "slo": "chat",
        "slo_text": "TTFT ≤ 500 ms",
        "shape_args": "-t 10s",
        "capacity": capacity,
        "capacity_unit": "users",
        "capacity_lower_bound": lower,
        "goodput": goodput,
    }


def test_ranking_capacity_then_goodput_and_winner_marks():
    cells = board.ranked(
        [
            entry("a", 4.0, 3.0),
            entry("b", 8.0, 1.0, lower=1),
            entry("c", None, 5.0),
            entry("d", 8.0, 2.0, lower=1),
            entry("x", None, 0.0, dataset="e"),
            entry("y", None, 0.0, dataset="e"),
            entry("p", 3.0, 1.0, dataset="f"),
            entry("q", 3.0, 1.0, dataset="f"),
        ]
    )
    (_, first), (_, nobody), (_, tie) = cells
    assert [(e["config"], e["rank"], e["winner"]) for e in first] == [
        ("d", 1, True),
        ("b", 2, False),
        ("a", 3, False),
        ("c", 4, False),
    ]
    assert not any(e["winner"] for e in nobody)
    assert [e["winner"] for e in tie] == [True, True] and [e["rank"] for e in tie] == [1, 1]
    md = board.render_markdown([entry("a", 4.0, 3.0), entry("b", 8.0, 1.0, dataset="z", lower=1)], "T")
    assert "🏆 1 | a | 4 users" in md and "≥ 8 users" in md and "No single best" in md
    html = board.render_html([entry("a", 4.0, 3.0), entry("b", 2.0, 1.0)], "T<script>")
    assert "<tr class=win><td>★ 1</td><td>a</td>" in html and "T&lt;script&gt;" in html
    assert "<script" not in html.replace("T&lt;script&gt;", "") and "http" not in html  # self-contained
    assert "**a** wins every cell" in board.render_markdown([entry("a", 4.0, 3.0), entry("b", 2.0, 1.0)], "T")


def test_entries_of_several_matrices_rank_together_in_one_cell(tmp_path):
    db = tmp_path / "arena.sqlite"
    store.upsert(db, [entry("a", 4.0, 1.0)], replace_matrix="m")
    store.upsert(db, [{**entry("b", 6.0, 1.0), "matrix": "n"}], replace_matrix="n")
    ((_key, items),) = board.ranked(store.entries(db))
    assert [(e["matrix"], e["config"], e["winner"]) for e in items] == [("n", "b", True), ("m", "a", False)]
    assert "2 matrices (m, n)" in board.render_markdown(store.entries(db), "T")


def test_capacity_text_shows_the_repeats_range():
    e = entry("a", 7.9, 1.0)
    assert board.capacity_text(e, spread=True) == "7.9 users"
    assert board.capacity_text({**e, "capacity_runs": [7.4, 8.4]}, spread=True) == "7.9 users (7.4–8.4)"
    assert board.capacity_text({**e, "capacity_runs": [4.5, None]}, spread=True) == "7.9 users (none–4.5)"
    assert board.capacity_text({**e, "capacity_runs": [8.0, 8.0]}, spread=True) == "7.9 users"
    assert board.capacity_text({**e, "capacity": None, "capacity_runs": [None, None]}, spread=True) == "none"


def test_store_upserts_by_matrix_config_dataset_shape_slo(tmp_path):
    db = tmp_path / "arena.sqlite"
    e = {**entry("a", 4.0, 3.0), "date": "2026-01-01", "run_dirs": ["r1"], "params": {"n": 1}}
    store.upsert(db, [e, {**e, "config": "b"}])
    store.upsert(db, [{**e, "capacity": 5.0, "run_dirs": ["r1", "r2"]}, {**e, "matrix": "other"}])
    rows = store.entries(db)
    assert len(rows) == 3
    a = next(r for r in rows if r["config"] == "a" and r["matrix"] == "m")
    assert a["capacity"] == 5.0 and a["run_dirs"] == ["r1", "r2"] and a["params"] == {"n": 1}
    assert len(store.entries(db, "other")) == 1
    # a matrix's rerun replaces all of its entries (a removed configuration goes), others stay
    store.upsert(db, [{**e, "config": "c"}], replace_matrix="m")
    assert sorted((r["matrix"], r["config"]) for r in store.entries(db)) == [("m", "c"), ("other", "a")]
    hw = store.hardware()
    assert hw["cores"] >= 1 and hw["gpu"] and hw["cpu"] and "GPU" in hw["hardware"]


def test_hardware_without_nvidia_smi_says_none(monkeypatch):
    monkeypatch.setattr(store.shutil, "which", lambda _: None)
    assert store.hardware()["gpu"] == "none"


def test_complete_run_needs_finished_run_summary_and_matching_signature(tmp_path):
    m = load_matrix(write(tmp_path, BASE))
    cell = m.cells()[0]
    layout = Layout(tmp_path / "res")

    def folder(name: str, meta: dict, summary: bool = True, sig: str | None = None) -> Path:
        d = layout.runs / name
        d.mkdir(parents=True)
        (d / "run.json").write_text(json.dumps(meta))
        if summary:
            (d / "summary.json").write_text("{}")
        (d / "arena.json").write_text(json.dumps({"signature": sig or cell.signature}))
        return d

    done = {"name": cell.id, "t_end_unix": 2.0, "rows_received": 5}
    folder(f"{cell.id}-20260101T000000Z", {"name": cell.id, "t_end_unix": None})  # interrupted
    folder(f"{cell.id}-20260101T000001Z", done, summary=False)  # not analyzed
    folder(f"{cell.id}-20260101T000002Z", {**done, "name": cell.id + "x"})  # another cell's prefix
    folder(f"{cell.id}-20260101T000003Z", done, sig="0" * 16)  # run with other settings
    assert complete_run(layout, cell) is None
    good = folder(f"{cell.id}-20260101T000004Z", done)
    assert complete_run(layout, cell) == good


def test_comparison_sections_under_the_arenas_own_headings(tmp_path):
    """Completed cells (fixture runs copied in) → comparison.md with one section per SLO under the
    arena's headings (no analysis title, repeats one level down, one footer), the merged CSV with
    slo/shape columns, analysis' own comparison folders, and entries holding the grouped figures."""
    import csv
    import shutil

    from arena import tables

    fix = ROOT / "tests" / "fixtures"
    m = load_matrix(
        write(
            tmp_path,
            BASE.replace(
                "targets:\n  - label: a\n    simserver: {profile: latency}\n",
                "targets:\n  - label: a\n    simserver: {profile: latency}\n"
                "  - label: b\n    simserver: {profile: throughput}\n",
            )
            + "slos: [chat, datagen]\nrepeats: 2\n",
        )
    )
    cells = m.cells()
    assert [c.target.label for c in cells] == ["a", "b", "a", "b"]
    done = []
    for c, src in zip(cells, ["run_small", "run_openloop", "run_small", "run_openloop"], strict=True):
        shutil.copytree(fix / src, tmp_path / "runs" / c.id)
        done.append((c, tmp_path / "runs" / c.id))
    sections = tables.evaluate(m, done, warn=pytest.fail)
    assert [(s.slo.name, s.shape) for s in sections] == [("chat", "ramp"), ("datagen", "ramp")]
    root = tmp_path / "out"
    root.mkdir()
    tables.write_comparison(root, m, sections)

    md = (root / "comparison.md").read_text()
    assert md.startswith("# Comparison — matrix t\n") and md.count("\n# ") == 0
    assert "\n## SLO chat\n\n- **SLO**: chat: TTFT ≤ 500 ms, TPOT ≤ 250 ms; target 90 %\n" in md
    assert "\n## SLO datagen\n" in md and md.count("\n### Repeats\n") == 2 and "\n## Repeats" not in md
    assert md.count("Definitions: README.md") == 1 and md.endswith("requests.csv.\n")
    assert "| a | random | 2 |" in md and "| b | random | 2 |" in md  # labels are the configurations
    with open(root / "comparison.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [(r["slo"], r["shape"], r["configuration"]) for r in rows] == [
        ("chat", "ramp", "a"), ("chat", "ramp", "b"), ("datagen", "ramp", "a"), ("datagen", "ramp", "b"),
    ]  # fmt: skip
    assert float(rows[0]["goodput_req_per_s"]) == pytest.approx(0.4)  # run_small twice: 4 good / 10 s
    own = (root / "compare" / "chat__ramp" / "comparison.md").read_text()
    assert own.startswith("# Comparison\n") and "\n## Repeats\n" in own

    entries = tables.entries(m, sections, {"hardware": "hw"})
    by = {(e["config"], e["slo"]): e for e in entries}
    assert by[("a", "chat")]["goodput"] == pytest.approx(0.4) and by[("a", "chat")]["runs"] == 2
    assert by[("a", "chat")]["capacity"] is None and by[("a", "chat")]["capacity_runs"] == [None, None]
    b = by[("b", "chat")]  # run_openloop under chat: capacity between 2 and 4 req/s, the same in both repeats
    assert (
        b["capacity_unit"] == "req/s" and b["capacity_runs"] == [b["capacity"]] * 2 and 2 < b["capacity"] < 4
    )
    assert len(b["run_dirs"]) == 2 and b["target"].startswith("python -m simserver")


def test_the_arena_keeps_at_least_in_its_comparison_and_leaderboard(tmp_path):
    """A capacity that held up to the highest complete level is "≥ N": comparison.md, the CSV and the
    leaderboard's entry say so (compare used to drop the "≥")."""
    from arena import tables
    from tests.support.synthetic import stage, steady, write_run

    m = load_matrix(write(tmp_path, BASE + "slos: [chat]\nrepeats: 2\n"))
    done = []
    for c in m.cells():
        rows, stages = [], []
        for k in range(3):  # 3 levels, every request good: capacity ≥ 3 users
            rows += steady(k, k + 1, 10.0 * k, 10.0 * (k + 1), 2.0, 1.0, tokens=10)
            stages.append(stage(k, 10.0 * k, 10.0 * (k + 1), users=k + 1))
        done.append((c, write_run(tmp_path / "runs" / c.id, rows, stages)))
    sections = tables.evaluate(m, done, warn=pytest.fail)
    root = tmp_path / "out"
    root.mkdir()
    tables.write_comparison(root, m, sections)
    md = (root / "comparison.md").read_text()
    assert "| ≥ 3 users [3.00–…] (3.00–3.00) |" in md  # the two repeats' median, its interval, their range
    entries = tables.entries(m, sections, {"hardware": "hw"})
    assert board.capacity_text(entries[0]) == "≥ 3 users"


def test_speculative_example_sweeps_num_speculative_tokens_on_the_simulated_engine():
    """examples/arena-specdecode.yaml: one configuration per K, each launching the simulated engine
    whose profile (built by simserver's own parser from the cell's command) drafts K tokens accepted
    at 0.6 a position; K = 0 is the engine without a drafter."""
    from simserver.__main__ import build_profile, parse_args

    m = load_matrix(ROOT / "examples" / "arena-specdecode.yaml")
    cells = m.cells()
    assert [c.target.label for c in cells] == ["k0", "k2", "k4", "k8"] and m.slos == ["chat", "datagen"]
    for cell, k in zip(cells, (0, 2, 4, 8), strict=True):
        argv = cell.target.command(18000)
        assert argv[1:3] == ["-m", "simserver"]
        spec = build_profile(parse_args(argv[3:])).speculative
        assert (spec.num_speculative_tokens, spec.acceptance) == (k, 0.6)
