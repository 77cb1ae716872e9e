"""Bad input, through the real commands: one clear line naming the place, exit 2, no traceback,
and nothing already recorded is touched.

Every case runs its real command (`locust -f locustfile.py --headless`, `python -m analysis`,
`python -m workloads`, `python -m simserver`). They are started together on first use (a few at
a time) because each Python start costs ~1–2 s; the parametrized test then checks one case.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import PYTHON, ROOT, free_port, start, wait_http

pytestmark = pytest.mark.e2e
SECRET = "sk-test-SECRET-123"
PASSWORD = "hunter2-pw"
FIXTURE_RUN = ROOT / "tests" / "fixtures" / "run_small"


@dataclass(frozen=True)
class Case:
    id: str
    kind: str  # locust | analysis | workloads | simserver
    args: tuple[str, ...]
    needle: str  # what the error line must name


# {host} is the module's engine, {port} its port, {files} the bad input files. Cases already covered
# elsewhere (unreachable host, unknown model/dataset, malformed --slo string, stage items, JSONL trace
# rows, --faults syntax: tests/test_spine_e2e.py, test_shapes_e2e.py, test_simserver_e2e.py) are not repeated.
CASES = [
    # target and credentials
    Case("host-not-a-url", "locust", ("--host", "127.0.0.1:8000"), "--host"),
    Case("host-bad-port", "locust", ("--host", "http://127.0.0.1:notaport"), "--host"),
    Case(
        "host-userinfo", "locust", ("--host", f"http://user:{PASSWORD}@127.0.0.1:8000"), "--host: credentials"
    ),
    Case("api-key-env-holds-a-key", "locust", ("--api-key-env", SECRET), "--api-key-env"),
    # SLO specs
    Case("slo-file-bad-value", "locust", ("--slo", "{files}/slo_bad.yaml"), "slo_bad.yaml"),
    # datasets
    Case("dataset-bad-line", "locust", ("--dataset", "{files}/bad.jsonl"), "bad.jsonl:3"),
    Case("dataset-empty", "locust", ("--dataset", "{files}/empty.jsonl"), "empty.jsonl"),
    # options
    Case("request-timeout-zero", "locust", ("--request-timeout", "0s"), "--request-timeout"),
    Case("max-tokens-zero", "locust", ("--max-tokens", "0"), "--max-tokens"),
    Case("step-users-zero", "locust", ("--step-users", "0"), "--step-users"),
    Case("results-dir-is-a-file", "locust", ("--results-dir", "{files}/bad.jsonl"), "--results-dir"),
    Case(
        "web-login-no-password",
        "locust-web",
        ("--web-login", "--web-host", "127.0.0.1"),
        "GOODPUT_WEB_PASSWORD",
    ),
    # stage lists and traces (shapes/)
    Case(
        "stages-file-bad-row",
        "locust",
        ("--shape", "stages", "--stages", "{files}/stages.yaml"),
        "stages.yaml:2",
    ),
    Case(
        "trace-file-missing",
        "locust",
        ("--shape", "trace", "--trace-file", "{files}/nope.csv"),
        "--trace-file",
    ),
    # analysis inputs
    Case("analysis-no-run", "analysis", ("{files}/no-such-run",), "no-such-run"),
    Case("analysis-missing-columns", "analysis", ("{files}/run_columns",), "run_columns/requests.csv"),
    Case("analysis-bad-value", "analysis", ("{files}/run_value",), "run_value/requests.csv"),
    Case("analysis-bad-slo", "analysis", ("{files}/run_ok", "--slo", "ttft=fast"), "ttft"),
    Case("analysis-bad-target", "analysis", ("{files}/run_ok", "--attain-target", "2"), "--attain-target"),
    # workloads and the simulated engine
    Case("workloads-bad-line", "workloads", ("stats", "{files}/bad.jsonl"), "bad.jsonl:3"),
    Case("workloads-unknown", "workloads", ("stats", "no-such-set"), "no-such-set"),
    Case("sim-port-in-use", "simserver", ("--port", "{port}"), "cannot listen"),
]


def write_inputs(d: Path) -> None:
    d.mkdir(parents=True, exist_ok=True)
    (d / "bad.jsonl").write_text(
        '{"custom_id": "a", "body": {"messages": [{"role": "user", "content": "hi"}]}}\n'
        '{"custom_id": "b", "body": {"messages": [{"role": "user", "content": "hello"}]}}\n'
        '{"custom_id": "c", "body": {"messages": [{"role": "user", "content": "broken\n'
    )
    (d / "empty.jsonl").write_text("")
    (d / "slo_bad.yaml").write_text("ttft: fast\n")
    (d / "stages.yaml").write_text("stages:\n  - duration: 10s\n    users: lots\n")
    rows = list(csv.reader((FIXTURE_RUN / "requests.csv").open(newline="")))
    for name in ("run_ok", "run_value", "run_columns"):
        (d / name).mkdir()
        (d / name / "run.json").write_text((FIXTURE_RUN / "run.json").read_text())
    csv.writer((d / "run_ok" / "requests.csv").open("w", newline="")).writerows(rows)
    bad = [list(r) for r in rows]
    bad[3][rows[0].index("ttft_s")] = "fast"
    csv.writer((d / "run_value" / "requests.csv").open("w", newline="")).writerows(bad)
    (d / "run_columns" / "requests.csv").write_text("run_id,worker\nx,y\n")


def fill(s: str, ctx: dict) -> str:
    return s.format(**ctx)


def command(case: Case, ctx: dict, results: Path) -> list[str]:
    args = [fill(a, ctx) for a in case.args]
    if case.kind.startswith("locust"):
        base = [PYTHON, "-m", "locust", "-f", "locustfile.py", "-t", "5s", "--web-port", str(ctx["web_port"])]
        base += ["--headless"] if case.kind == "locust" else ["--autostart", "--autoquit", "1"]
        if "--host" not in args:
            base += ["--host", ctx["host"]]
        if "--results-dir" not in args:
            base += ["--results-dir", str(results)]
        return base + args
    if case.kind == "simserver":
        return [PYTHON, "-m", "simserver", "--host", "127.0.0.1", "--port", "0", *args]
    return [PYTHON, "-m", case.kind, *args]


def tree_digest(d: Path) -> dict[str, str]:
    return {
        str(p.relative_to(d)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(d.rglob("*"))
        if p.is_file()
    }


@dataclass
class Outcomes:
    ctx: dict
    files: Path
    files_before: dict[str, str]
    runs: dict[str, tuple[subprocess.CompletedProcess, Path, dict[str, str]]]


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory: pytest.TempPathFactory) -> Outcomes:
    """Run every case once (4 at a time); each locust case gets a results dir holding an old run."""
    base = tmp_path_factory.mktemp("bad-inputs")
    files = base / "files"
    write_inputs(files)
    files_before = tree_digest(files)
    port = free_port()
    sim = start([PYTHON, "-m", "simserver", "--host", "127.0.0.1", "--port", str(port)], base / "sim.log")
    env = {k: v for k, v in os.environ.items() if k != "GOODPUT_WEB_PASSWORD"} | {"OPENAI_API_KEY": SECRET}
    try:
        wait_http(f"http://127.0.0.1:{port}/health", proc=sim.popen)
        ctx = {"host": f"http://127.0.0.1:{port}", "port": port, "files": str(files)}

        def one(case: Case) -> tuple[subprocess.CompletedProcess, Path, dict[str, str]]:
            results = base / case.id
            old = results / "old-20250101T000000Z"
            old.mkdir(parents=True)
            (old / "requests.csv").write_text((FIXTURE_RUN / "requests.csv").read_text())
            (old / "run.json").write_text((FIXTURE_RUN / "run.json").read_text())
            before = tree_digest(results)
            cmd = command(case, {**ctx, "web_port": free_port()}, results)
            out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=60, env=env,
                                 stdin=subprocess.DEVNULL)  # fmt: skip
            return out, results, before

        with ThreadPoolExecutor(max_workers=4) as pool:
            runs = dict(zip([c.id for c in CASES], pool.map(one, CASES), strict=True))
        return Outcomes(ctx, files, files_before, runs)
    finally:
        sim.stop()


def test_there_are_at_least_20_cases() -> None:
    assert len(CASES) >= 20
    assert {c.kind for c in CASES} >= {"locust", "analysis", "workloads", "simserver"}


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_bad_input_one_clear_line(case: Case, outcomes: Outcomes) -> None:
    out, results, before = outcomes.runs[case.id]
    ctx = outcomes.ctx
    text = out.stdout + out.stderr
    assert out.returncode == 2, f"exit {out.returncode}\n{text[-2000:]}"
    assert "Traceback" not in text, text[-3000:]
    errors = [line for line in text.splitlines() if "error:" in line]
    assert len(errors) == 1, f"expected one error line, got:\n{text[-2000:]}"
    assert fill(case.needle, ctx) in errors[0], errors[0]
    assert SECRET not in text and PASSWORD not in text, "a secret reached the output"
    assert tree_digest(results) == before, "the results folder changed: an existing run was touched"


def test_analysed_inputs_are_untouched_by_failures(outcomes: Outcomes) -> None:
    """A failed analysis writes nothing into the run folder it was given (nor into any input)."""
    assert tree_digest(outcomes.files) == outcomes.files_before


def test_existing_run_folder_is_never_overwritten(sim_server, tmp_path: Path) -> None:
    """Folders that already carry the names the next run would take are skipped, not reused."""
    sim = sim_server()
    results = tmp_path / "results"
    now = time.time()
    taken = []
    for dt in range(12):  # every name the run could pick in the next 12 s
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now + dt))
        d = results / f"keep-{stamp}"
        d.mkdir(parents=True, exist_ok=True)
        (d / "requests.csv").write_text(f"sentinel {dt}\n")
        taken.append(d)
    before = tree_digest(results)
    out = subprocess.run([PYTHON, "-m", "locust", "-f", "locustfile.py", "--headless", "--only-summary",
                          "--host", sim.url, "--results-dir", str(results), "--run-name", "keep", "--shape", "none",
                          "-u", "1", "-t", "2s", "--max-tokens", "8"],
                         cwd=ROOT, capture_output=True, text=True, timeout=60)  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    new = [p for p in results.iterdir() if p not in taken]
    assert len(new) == 1 and new[0].name.startswith("keep-") and new[0].name.rsplit("-", 1)[1] == "1", new
    assert json.loads((new[0] / "run.json").read_text())["run_id"] == new[0].name
    after = tree_digest(results)
    assert {k: v for k, v in after.items() if not k.startswith(new[0].name)} == before
