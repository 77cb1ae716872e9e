"""`python -m analysis` and `python -m analysis compare`: files written, contract keys, tables, errors."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from analysis.__main__ import main

ROOT = Path(__file__).resolve().parents[3]
FIX = Path(__file__).resolve().parents[2] / "fixtures"
approx = pytest.approx

CONTRACT_KEYS = {
    "requests", "ok", "errors", "duration_s", "req_per_s", "output_tok_per_s", "goodput_req_per_s",
    "slo_attainment", "slo", "ttft_s", "tpot_s", "itl_s", "e2e_s", "steps", "capacity_at_slo", "input_tok_per_s",
}  # fmt: skip
STEP_KEYS = {
    "step", "load", "requests", "ok", "req_per_s", "output_tok_per_s", "goodput_req_per_s", "slo_attainment",
    *(f"{m}_p{q}_s" for m in ("ttft", "tpot", "e2e") for q in (50, 95, 99)),
}  # fmt: skip


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def copy_run(tmp_path: Path, name: str = "run_small", dest: str | None = None) -> Path:
    d = tmp_path / (dest or name)
    shutil.copytree(FIX / name, d)
    return d


def scaled_run(tmp_path: Path, dest: str, factor: float, **meta: object) -> Path:
    """run_small with every latency × factor (and run.json fields overridden): another server, or a repeat."""
    d = copy_run(tmp_path, dest=dest)
    p = d / "requests.csv"
    with open(p, newline="") as fh:
        rows = list(csv.DictReader(fh))
        fields = list(rows[0])
    for r in rows:
        for c in ("ttft_s", "e2e_s", "tpot_s"):
            if r[c]:
                r[c] = f"{float(r[c]) * factor:.6f}"
        r["itl_s"] = ";".join(f"{float(g) * factor:.6f}" for g in r["itl_s"].split(";") if g)
    with open(p, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=fields)
        w.writeheader()
        w.writerows(rows)
    m = json.loads((d / "run.json").read_text())
    m.update(meta)
    (d / "run.json").write_text(json.dumps(m))
    return d


def test_analyze_writes_summary_report_plots(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = copy_run(tmp_path)
    assert main([str(run)]) == 0
    out = capsys.readouterr().out
    s = json.loads((run / "summary.json").read_text())
    assert set(s) >= CONTRACT_KEYS
    for k in ("ttft_s", "tpot_s", "itl_s", "e2e_s"):
        assert set(s[k]) == {"mean", "p50", "p90", "p95", "p99", "max"}
    assert all(set(st) >= STEP_KEYS for st in s["steps"]) and len(s["steps"]) == 2
    assert s["slo"]["profile"] == "chat"  # the run's own SLO (run.json) by default
    assert (s["req_per_s"], s["goodput_req_per_s"], s["e2e_s"]["p95"]) == approx((0.7, 0.4, 3.55))
    assert (s["itl_s"]["p95"], s["samples"]["itl_s"]) == (approx(0.485), 44)  # parsed in the background
    md = (run / "summary.md").read_text()
    for needle in ("Latency p95 (ms)", "TPOT p95 (ms)", "TTFT p50 (ms)", "TTFT p95 (ms)", "| 3,550 | 475 | 300 | 570 | 0.70 | 5.1 | 0.40 | 40.0 % |",
                   "| http_429 | 2 | 20.0 % |", "## Per step", "| 1 | 2 | 6 | 4 | 0.80 | 6.0 | 0.20 | 16.7 % |"):  # fmt: skip
        assert needle in md, needle
    assert sorted(p.name for p in (run / "plots").iterdir()) == [
        "capacity_interval.png",
        "cdf.png",
        "goodput_vs_throughput.png",
        "latency_vs_load.png",
        "timeseries.png",
    ]
    html = (run / "report.html").read_text()
    # no network: the only URLs are the run's target and the engine-span how-to's example endpoint
    shown = html.replace("http://127.0.0.1:8000", "").replace("http://127.0.0.1:4318/v1/traces", "")
    assert html.count('<img class="plot"') == 5 and "http://" not in shown
    assert "Latency p95 (ms)" in out and "0.70" in out and f"report: {run / 'report.html'}" in out


def test_slo_option_overrides_and_adds_verdicts(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = copy_run(tmp_path)
    assert (
        main([str(run), "--slo", "datagen", "--slo", "ttft=250ms", "--no-plots", "--no-html", "--quiet"]) == 0
    )
    assert capsys.readouterr().out == ""
    s = json.loads((run / "summary.json").read_text())
    assert s["slo"]["profile"] == "datagen" and s["goodput_req_per_s"] == approx(0.1)
    assert [v["slo"] for v in s["verdicts"]][:2] == ["datagen", "ttft=250ms"]
    # TTFT ≤ 250 ms: rows 1 (.1), 2 (.2), 9 (.25) → 3/10
    assert s["verdicts"][1]["slo_attainment"] == approx(0.3)
    assert not (run / "report.html").exists() and not (run / "plots").exists()


def test_open_loop_run_flags_saturation(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = copy_run(tmp_path, "run_openloop")
    assert main([str(run), "--no-plots"]) == 0
    assert "WARNING: load generator saturated from 2026-01-01 00:00:05Z" in capsys.readouterr().out
    md = (run / "summary.md").read_text()
    assert "> **Warning**: load generator saturated from 2026-01-01 00:00:05Z to 2026-01-01 00:00:06Z" in md
    assert "## Open loop (latency from the intended send time)" in md and "| send lag |" in md
    assert "Capacity at SLO (custom-ol, attainment ≥ 90 %): 2.33 req/s (interpolated between 2 and 4)" in md
    html = (run / "report.html").read_text()
    assert 'class="warn sat"' in html and "add workers" in html


def test_late_reads_are_warned_listed_and_shaded(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """run.json's late-read windows reach the console, summary.md/json and report.html (styled as
    the client's own warning), and the time-series plot is drawn with them."""
    run = copy_run(tmp_path, "run_openloop")
    meta = json.loads((run / "run.json").read_text())
    meta["loadgen"].update(
        threshold_ms=10.0,
        late_windows=[[1767225604.0, 1767225607.5]],
        late_detail=[{"worker": "w1", "read_p99_ms": 16.4, "cpu_percent": 48.0, "span_s": 3}],
    )
    (run / "run.json").write_text(json.dumps(meta))
    assert main([str(run)]) == 0
    line = (
        "client reads late from 2026-01-01 00:00:04Z to 2026-01-01 00:00:07Z (+4 s to +8 s into the run): "
        "read lag p99 16 ms over 3 s > 10 ms at 48 % CPU (w1); a token read together with the next"
    )
    assert f"WARNING: {line}" in capsys.readouterr().out
    assert f"> **Warning**: {line}" in (run / "summary.md").read_text()
    s = json.loads((run / "summary.json").read_text())
    assert s["loadgen_late_windows"] == [[1767225604.0, 1767225607.5]]
    assert s["loadgen_saturated_windows"] == [[1767225605.0, 1767225606.0]]
    html = (run / "report.html").read_text()
    assert html.count('class="warn sat"') == 2, html  # the saturated window and the late one
    assert (run / "plots" / "timeseries.png").stat().st_size > 10_000


def test_failure_late_in_the_analysis_leaves_the_run_folder_untouched(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A bad ITL value is found while the plots are drawn: nothing may be half-written into the run."""
    run = copy_run(tmp_path)
    text = (run / "requests.csv").read_text().replace("0.300000;0.250000;0.350000", "0.300000;oops;0.350000")
    (run / "requests.csv").write_text(text)
    before = sorted(p.name for p in run.iterdir())
    assert main([str(run)]) == 2
    err = capsys.readouterr().err
    assert "requests.csv: itl_s: 'oops' is not a number of seconds" in err and err.count("\n") == 1
    assert sorted(p.name for p in run.iterdir()) == before


def test_attain_target_option(tmp_path: Path) -> None:
    run = copy_run(tmp_path)
    assert main([str(run), "--attain-target", "70%", "--no-plots", "--no-html", "--quiet"]) == 0
    s = json.loads((run / "summary.json").read_text())
    assert s["capacity_at_slo"] == approx(1 + 0.05 / (0.75 - 1 / 6))


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["/no/such/run"], "no such run folder"),
        ([str(FIX / "run_small"), "--slo", "fastest"], "unknown profile 'fastest'"),
        ([str(FIX / "run_small"), "--slo", "ttft=5"], "needs a unit"),
        ([str(FIX / "run_small"), "--attain-target", "2"], "must be in (0, 1]"),
        ([str(FIX / "run_small"), "--bogus"], "unrecognized arguments: --bogus"),
        ([], "the following arguments are required: RUN_DIR"),
        (["compare", "/no/such/run"], "no such run folder"),
        (["compare", str(FIX / "run_small"), "--repeats", "worst"], "invalid choice: 'worst'"),
    ],
)
def test_user_mistakes_exit_2_with_one_line(
    argv: list[str], needle: str, capsys: pytest.CaptureFixture[str]
) -> None:
    try:
        code = main(argv)
    except SystemExit as e:  # argparse's own checks exit from inside the parser
        code = e.code
    assert code == 2
    err = capsys.readouterr().err
    assert needle in err, err
    assert err.count("\n") == 1 and err.startswith("analysis: error:")


def test_process_exit_status_and_no_traceback(tmp_path: Path) -> None:
    bad = tmp_path / "run"
    bad.mkdir()
    (bad / "requests.csv").write_text("a,b\n1,2\n")
    proc = subprocess.run(
        [sys.executable, "-m", "analysis", str(bad)], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and proc.stderr.count("\n") == 1
    assert "missing column(s)" in proc.stderr


def test_compare_table_repeats_and_best(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a = copy_run(tmp_path, dest="a")
    a2 = scaled_run(tmp_path, "a2", 2.0)  # a repeat of the same configuration, twice as slow
    b = scaled_run(tmp_path, "b", 0.5, name="fast", target="http://127.0.0.1:9000")
    out = tmp_path / "cmp"
    assert main(["compare", str(a), str(a2), str(b), "--out", str(out), "--no-plots"]) == 0
    printed = capsys.readouterr().out
    assert "comparison: " in printed and "fast" in printed
    rows = {r["configuration"]: r for r in read_csv(out / "comparison.csv")}
    assert set(rows) == {"small", "fast"}
    small, fast = rows["small"], rows["fast"]
    assert small["runs"] == "2" and fast["runs"] == "1"
    # repeats → medians: latency p95 of a = 3.55 s, of a2 = 7.1 s → 5.325; min–max kept
    assert float(small["latency_p95_s"]) == approx(5.325)
    assert (float(small["latency_p95_s_min"]), float(small["latency_p95_s_max"])) == approx((3.55, 7.1))
    # goodput: a = 4 good / 10 s = 0.4; a2 (×2): good 1 and 9 only, window 0 → 13 s → 2/13
    assert float(small["goodput_req_per_s"]) == approx((0.4 + 2 / 13) / 2)
    assert small["best_run"] == str(a)  # the repeat with the higher goodput
    # fast (×0.5): every completed request meets chat → 7 good over 0 → 9.005 s
    assert float(fast["goodput_req_per_s"]) == approx(7 / 9.005)
    assert set(fast["best_in"].split(";")) >= {
        "latency_p95_s",
        "ttft_p50_s",
        "goodput_req_per_s",
        "slo_attainment",
    }
    md = (out / "comparison.md").read_text()
    assert "| fast | chat | 1 | **1,775 [750–2,000]** ★ |" in md  # 3.55 s × 0.5, its 95 % interval
    # 10 and 7 requests: goodput and attainment do not separate the two configurations
    assert "**0.78 [0.44–1.11]** ★ tied" in md and "**30.0 % [10.0 %–55.0 %] (20.0 %–40.0 %)** ★ tied" in md
    assert "## Repeats" in md and str(a) in md
    assert (out / "report.html").exists()


def test_compare_repeats_best_and_all(tmp_path: Path) -> None:
    a = copy_run(tmp_path, dest="a")
    a2 = scaled_run(tmp_path, "a2", 2.0)
    for mode, expect in (("best", {"small": 3.55}), ("all", {"small (a)": 3.55, "small (a2)": 7.1})):
        out = tmp_path / mode
        assert (
            main(["compare", str(a), str(a2), "--out", str(out), "--repeats", mode, "--no-plots", "--quiet"])
            == 0
        )
        rows = {r["configuration"]: float(r["latency_p95_s"]) for r in read_csv(out / "comparison.csv")}
        assert rows == approx(expect)
