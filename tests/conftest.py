"""Shared fixtures: real processes on 127.0.0.1 (simulated engine, Locust), always cleaned up."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.support.hostwatch import HostWatch

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, timeout_s: float = 20.0, proc: subprocess.Popen | None = None) -> None:
    """Poll `url` until it answers 200; fail early if the process died."""
    deadline = time.monotonic() + timeout_s
    last: Exception | None = None
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before {url} answered")
        try:
            with urllib.request.urlopen(url, timeout=1.0) as r:
                if r.status == 200:
                    return
        except Exception as e:  # not up yet
            last = e
        time.sleep(0.1)
    raise TimeoutError(f"{url} did not answer within {timeout_s}s: {last}")


@dataclass
class Proc:
    """A started process; `url` is set for servers."""

    popen: subprocess.Popen
    url: str = ""
    log_path: Path | None = None
    extra: dict = field(default_factory=dict)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path and self.log_path.exists() else ""

    def stop(self, sig: int = signal.SIGTERM, timeout_s: float = 15.0) -> int:
        if self.popen.poll() is None:
            try:
                os.killpg(self.popen.pid, sig)
            except ProcessLookupError:
                pass
            try:
                self.popen.wait(timeout_s)
            except subprocess.TimeoutExpired:
                os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait(5)
        return self.popen.returncode


def start(cmd: list[str], log_path: Path, env: dict | None = None, cwd: Path = ROOT) -> Proc:
    """Start `cmd` in its own process group (so all its children can be stopped), output to a log file."""
    fh = open(log_path, "wb")  # noqa: SIM115 - closed with the process
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    p = subprocess.Popen(
        cmd, cwd=cwd, stdout=fh, stderr=subprocess.STDOUT, env=full_env, start_new_session=True
    )
    return Proc(p, log_path=log_path)


def start_server(cmd: list[str], log_path: Path, port: int, env: dict | None = None) -> Proc:
    """`start` a server for 127.0.0.1:`port` and wait for its /health (stopped again if it never answers)."""
    p = start(cmd, log_path, env)
    p.url = f"http://127.0.0.1:{port}"
    try:
        wait_http(p.url + "/health", proc=p.popen)
    except BaseException:
        p.stop()
        raise
    return p


@pytest.fixture
def procs(tmp_path: Path) -> Iterator[Callable[..., Proc]]:
    """Factory that starts processes and stops every one of them at teardown."""
    started: list[Proc] = []

    def _start(cmd: list[str], name: str = "proc", env: dict | None = None) -> Proc:
        p = start(cmd, tmp_path / f"{name}-{len(started)}.log", env=env)
        started.append(p)
        return p

    yield _start
    for p in reversed(started):
        p.stop()


@pytest.fixture
def host_watch() -> Iterator[HostWatch]:
    """A watcher of this host's timekeeping, started: the test calls `.stop()` after its run and skips its
    millisecond checks when the report names trouble (tests/support/hostwatch.py says why)."""
    w = HostWatch(PYTHON).start()
    try:
        yield w
    finally:
        w.close()


@pytest.fixture
def sim_server(procs: Callable[..., Proc]) -> Callable[..., Proc]:
    """Factory: start `python -m simserver` on a free port with extra args; returns the Proc with .url."""

    def _start(*args: str, env: dict | None = None) -> Proc:
        port = free_port()
        p = procs(
            [PYTHON, "-m", "simserver", "--host", "127.0.0.1", "--port", str(port), *args], "simserver", env
        )
        p.url = f"http://127.0.0.1:{port}"
        wait_http(p.url + "/health", proc=p.popen)
        return p

    return _start
