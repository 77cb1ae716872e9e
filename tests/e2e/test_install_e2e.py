"""Goodput runs from anywhere: a checkout's locustfile from another directory (with `--processes`),
and an installed Goodput — a wheel built from the tree and installed into a fresh virtualenv,
then run from a directory that is not the checkout — through its console scripts.

Offline: the wheel is built with `--no-index --no-deps --no-build-isolation`, the suite's own
site-packages (Locust, pandas…, and setuptools ≥ 70.1 from requirements-dev.txt) made visible to
the new virtualenv by a .pth file; the checkout never is.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from tests.conftest import PYTHON, ROOT, free_port, wait_http

pytestmark = pytest.mark.e2e

# What the wheel is built from: pyproject.toml's packages and data, nothing else of the checkout.
SOURCES = ("goodput", "core", "workloads", "shapes", "users", "loadgen", "analysis", "arena", "simserver",
           "datasets", "pyproject.toml", "README.md", "requirements.txt")  # fmt: skip
JUNK = shutil.ignore_patterns("__pycache__", "*.pyc")


def env_without_checkout() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}


def run(cmd: list[str], cwd: Path, timeout_s: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run(
        cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout_s, env=env_without_checkout()
    )


def the_run(results: Path) -> tuple[dict, list[dict]]:
    (folder,) = [p for p in results.iterdir() if p.is_dir()]
    with open(folder / "requests.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    return json.loads((folder / "run.json").read_text()), rows


def test_checkout_locustfile_from_another_directory_with_worker_processes(sim_server, tmp_path: Path) -> None:
    """`locust -f /abs/path/locustfile.py` from elsewhere: the packages, the shipped data set, and
    `--processes` workers all found; results go to ./results of the directory it runs in."""
    sim = sim_server()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    port = str(free_port())
    out = run([PYTHON, "-m", "locust", "-f", str(ROOT / "locustfile.py"), "--headless", "--host", sim.url,
               "--processes", "2", "--master-bind-host", "127.0.0.1", "--master-bind-port", port,
               "--master-port", port, "-u", "4", "-r", "4", "-t", "5s", "--max-tokens", "8",
               "--dataset", "chat", "--only-summary"], cwd=elsewhere, timeout_s=120)  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    meta, rows = the_run(elsewhere / "results")
    assert len({r["worker"] for r in rows}) == 2 and sum(r["ok"] == "true" for r in rows) >= 4
    assert Path(meta["workload"]["source"]).resolve() == (ROOT / "datasets" / "chat.jsonl").resolve()
    assert f"run folder {elsewhere / 'results'}" in out.stderr, "the log names the absolute run folder"


def in_checkout(path: Path) -> bool:
    """The checkout or a folder of it (tests/unit holds folders named like the packages), but not
    the suite's own virtualenv inside it."""
    root = ROOT.resolve()
    return (path == root or root in path.parents) and "site-packages" not in path.parts


def build_venv(tmp_path: Path, name: str) -> Path:
    """A virtualenv whose own site-packages is empty and which sees the suite's (not the checkout)."""
    venv = tmp_path / name
    subprocess.run([PYTHON, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=60)
    site = next((venv / "lib").glob("python3*/site-packages"))
    # the base interpreter's standard library (a venv's `platstdlib` is the venv's lib/, which holds
    # its site-packages: those must stay visible)
    base = {"base": sys.base_prefix, "platbase": sys.base_exec_prefix}
    stdlib = {Path(sysconfig.get_paths(vars=base)[k]).resolve() for k in ("stdlib", "platstdlib")}
    suite = [p for p in sys.path if p and Path(p).is_dir() and not in_checkout(Path(p).resolve())
             and not any(Path(p).resolve() == d or d in Path(p).resolve().parents for d in stdlib)]  # fmt: skip
    (site / "_goodput_suite.pth").write_text("\n".join(suite) + "\n")
    return venv


def copy_sources(dst: Path) -> Path:
    dst.mkdir()
    for name in SOURCES:
        src = ROOT / name
        (shutil.copytree(src, dst / name, ignore=JUNK) if src.is_dir() else shutil.copy(src, dst / name))
    return dst


@pytest.fixture
def build_tools() -> None:
    import importlib.util

    if importlib.util.find_spec("setuptools.command.bdist_wheel") is None:
        reason = (
            "setuptools < 70.1 cannot build wheels offline: run `make setup` (requirements-dev.txt pins it)"
        )
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(reason)
        pytest.skip(reason)


def test_wheel_installs_and_runs_from_anywhere(build_tools, tmp_path: Path) -> None:
    src = copy_sources(tmp_path / "src")
    venv = build_venv(tmp_path, "venv")
    py, bin_ = str(venv / "bin" / "python"), venv / "bin"
    pip = [py, "-m", "pip", "--disable-pip-version-check"]
    dist = tmp_path / "dist"
    built = run([*pip, "wheel", "--no-index", "--no-deps", "--no-build-isolation", "-w", str(dist), str(src)],
                cwd=tmp_path, timeout_s=300)  # fmt: skip
    assert built.returncode == 0, built.stdout[-2000:] + built.stderr[-3000:]
    (wheel,) = dist.glob("goodput-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for f in ("goodput/locustfile.py", "workloads/datasets/chat.jsonl", "workloads/datasets/traces/example.csv",
              "simserver/profiles/default.yaml", "simserver/vocab.txt", "loadgen/live/webui/static/llm.js"):  # fmt: skip
        assert f in names, f"{f} is not in the wheel"
    assert not any(n.startswith(("datasets/", "tests/")) for n in names), "no top-level datasets or tests"
    entry = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
    scripts = zipfile.ZipFile(wheel).read(entry).decode()
    for cmd in ("goodput", "goodput-analysis", "goodput-sim", "goodput-arena", "goodput-workloads"):
        assert f"{cmd} = " in scripts, scripts
    installed = run([*pip, "install", "--no-index", "--no-deps", str(wheel)], cwd=tmp_path)
    assert installed.returncode == 0, installed.stderr[-3000:]

    work = tmp_path / "work"  # not the checkout, not the source copy
    work.mkdir()
    where = run(
        [py, "-c", "import goodput, workloads; print(goodput.__file__); print(workloads.DATA_DIR)"], work
    )
    assert where.returncode == 0 and str(ROOT) not in where.stdout and str(venv) in where.stdout, where

    helped = run([str(bin_ / "goodput"), "--help"], work)
    assert helped.returncode == 0, helped.stderr[-3000:]
    for text in ("Goodput: target and model", "Goodput: load shape", "--stages", "--slo", "--max-tokens"):
        assert text in helped.stdout, text
    assert helped.stdout.index("Goodput: target and model") < helped.stdout.index("Goodput: load shape")

    port = free_port()
    sim = subprocess.Popen([str(bin_ / "goodput-sim"), "--host", "127.0.0.1", "--port", str(port)], cwd=work,
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env_without_checkout())  # fmt: skip
    try:
        url = f"http://127.0.0.1:{port}"
        wait_http(url + "/health", timeout_s=30, proc=sim)
        load = run([str(bin_ / "goodput"), "--headless", "--host", url, "-u", "2", "-r", "2", "-t", "4s",
                    "--max-tokens", "8", "--only-summary"], work, timeout_s=120)  # fmt: skip
    finally:
        sim.terminate()
        sim.wait(15)
    assert load.returncode == 0, load.stderr[-3000:]
    meta, rows = the_run(work / "results")
    assert meta["outcome"] == "completed" and sum(r["ok"] == "true" for r in rows) >= 2
    assert str(venv) in meta["workload"]["source"], "the shipped data set comes from the installed package"
    analysed = run([str(bin_ / "goodput-analysis"), str(next((work / "results").iterdir())), "--no-plots",
                    "--quiet"], work)  # fmt: skip
    assert analysed.returncode == 0, analysed.stderr[-3000:]


def test_editable_install_runs_the_checkout(build_tools, tmp_path: Path) -> None:
    src = copy_sources(tmp_path / "src")
    venv = build_venv(tmp_path, "venv-e")
    py = str(venv / "bin" / "python")
    installed = run([py, "-m", "pip", "--disable-pip-version-check", "install", "--no-index", "--no-deps",
                     "--no-build-isolation", "-e", str(src)], tmp_path, timeout_s=300)  # fmt: skip
    assert installed.returncode == 0, installed.stdout[-2000:] + installed.stderr[-3000:]
    work = tmp_path / "work"
    work.mkdir()
    where = run(
        [py, "-c", "import goodput, workloads; print(goodput.__file__); print(workloads.DATA_DIR)"], work
    )
    assert where.returncode == 0, where.stderr
    assert where.stdout.split() == [str(src / "goodput" / "__init__.py"), str(src / "datasets")], where.stdout
    helped = run([str(venv / "bin" / "goodput"), "--help"], work)
    assert helped.returncode == 0 and "Goodput: load shape" in helped.stdout, helped.stderr[-3000:]
