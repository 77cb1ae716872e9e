"""Shared by the benchmarks that start the simulated engine and Locust as processes.

A simulated engine that is not the bottleneck (every stream decodes in every step, step time
nearly independent of the batch), Locust runs as subprocesses with their CPU sampled from outside,
and the engine's trace as ground truth for the client's first-token times.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import platform
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from simserver.trace import read_lines as trace_lines

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable


def engine_config(step_s: float) -> str:
    """Huge batch and KV cache; a step costs `step_s` plus ~1 µs per sequence (2,000 streams: +2 ms)."""
    return (
        "base: capacity\n"
        "engine:\n  max_num_seqs: 4096\n  max_num_batched_tokens: 65536\n"
        f"step_time:\n  base_s: {step_s}\n  prefill_token_s: 0.000001\n"
        "  decode_seq_s: 0.000001\n  kv_token_s: 0.0\n"
    )


def machine() -> str:
    """One line about the host the figures came from."""
    model = platform.processor() or ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    return (
        f"host: {os.cpu_count()} cores ({model}), {psutil.virtual_memory().total / 2**30:.0f} GiB, "
        f"{platform.system()} {platform.release()}, Python {platform.python_version()}; "
        f"load average at start {load}{cpu_pressure()}"
    )


def cpu_pressure() -> str:
    """Linux PSI: the share of the last minute in which some runnable task waited for a CPU (a
    shared host's other work shows here; timing figures taken under pressure carry its waits)."""
    with contextlib.suppress(OSError, ValueError, IndexError):
        fields = Path("/proc/pressure/cpu").read_text().split()
        return f"; CPU pressure (some, avg60) {float(fields[2].split('=')[1]):.0f} %"
    return ""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_up(url: str, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url, timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"bench: {url} did not come up within {timeout_s:.0f}s")


@dataclass
class Engine:
    url: str
    trace: Path | None
    proc: subprocess.Popen


@contextlib.contextmanager
def simserver(
    workdir: Path,
    step_s: float | None = None,
    engine_args: list[str] | None = None,
    pin_core: int | None = None,
    trace: bool = True,
    replicas: int = 1,
) -> Iterator[Engine]:
    """The simulated engine on a free port, healthy, stopped on exit; its log in `workdir`.

    `step_s`: the huge-batch engine of `engine_config` (the engine is never the bottleneck);
    otherwise `engine_args` (e.g. `--profile capacity`). `replicas` > 1: that many engine processes
    behind the port (`--replicas`, SO_REUSEPORT), one trace tagged by replica.
    """
    args = list(engine_args or [])
    if replicas > 1:
        args += ["--replicas", str(replicas)]
    if step_s is not None:
        cfg = workdir / "engine.yaml"
        cfg.write_text(engine_config(step_s))
        args += ["--config", str(cfg)]
    trace_file = workdir / "trace.jsonl" if trace else None
    if trace_file is not None:
        args += ["--trace", str(trace_file)]
    port = free_port()
    log = open(workdir / "simserver.log", "wb")  # noqa: SIM115 - the engine writes it while it runs
    cmd = [PY, "-m", "simserver", "--host", "127.0.0.1", "--port", str(port), *args]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_up(url + "/health")
        if pin_core is not None:  # every replica too (forked by the parent before it turned healthy)
            for p in [psutil.Process(proc.pid), *psutil.Process(proc.pid).children(recursive=True)]:
                os.sched_setaffinity(p.pid, {pin_core})
        yield Engine(url, trace_file, proc)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


class CpuSampler:
    """CPU seconds of a process tree over wall time, sampled from outside every 0.2 s: the whole tree,
    and each process on its own (a master and its workers), with each one's resident memory."""

    def __init__(self, pid: int) -> None:
        self.root = psutil.Process(pid)
        self.samples: list[tuple[float, float]] = []
        self.by_pid: dict[int, list[tuple[float, float]]] = {}
        self.rss_by_pid: dict[int, list[tuple[float, int]]] = {}
        self.root_rss_max = 0
        self._seen: dict[int, psutil.Process] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _total(self, now: float) -> float:
        with contextlib.suppress(psutil.Error):
            for p in [self.root, *self.root.children(recursive=True)]:
                self._seen.setdefault(p.pid, p)
            self.root_rss_max = max(self.root_rss_max, self.root.memory_info().rss)
        total = 0.0
        for pid, p in list(self._seen.items()):
            try:
                c, rss = p.cpu_times(), p.memory_info().rss
                total += c.user + c.system
                self.by_pid.setdefault(pid, []).append((now, c.user + c.system))
                self.rss_by_pid.setdefault(pid, []).append((now, rss))
            except psutil.Error:
                pass  # gone: its last reading is lost (windows end before processes exit)
        return total

    def _run(self) -> None:
        while not self._stop.is_set():
            now = time.time()
            self.samples.append((now, self._total(now)))
            self._stop.wait(0.2)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def cpu_between(self, t0: float, t1: float, pid: int | None = None) -> float:
        """CPU seconds used in [t0, t1] (nearest samples inside the window) by the tree, or by `pid`."""
        series = self.samples if pid is None else self.by_pid.get(pid, [])
        inside = [s for s in series if t0 <= s[0] <= t1]
        if len(inside) < 2:
            return float("nan")
        (a_t, a_c), (b_t, b_c) = inside[0], inside[-1]
        return (b_c - a_c) * (t1 - t0) / (b_t - a_t)

    def rss_mb_at(self, t: float, pid: int) -> float:
        """`pid`'s resident memory (MB) at its last sample no later than `t` (NaN when none)."""
        before = [rss for ts, rss in self.rss_by_pid.get(pid, []) if ts <= t]
        return before[-1] / 1e6 if before else float("nan")

    def children(self) -> list[int]:
        """The processes seen besides the root (the workers of a `--processes` run)."""
        return [pid for pid in self.by_pid if pid != self.root.pid]


@dataclass
class LocustRun:
    run_dir: Path
    cpu: CpuSampler
    t_begin: float
    t_end: float
    returncode: int
    meta: dict = field(default_factory=dict)


def run_locust(url: str, out: Path, name: str, users: int, duration_s: float, args: list[str],
               env: dict | None = None, pin_cores: set[int] | None = None,
               locustfiles: str = "locustfile.py") -> LocustRun:  # fmt: skip
    """One headless Locust run (`--shape none`), its CPU sampled from outside."""
    # closed loop: a plain run of `users`; an open-loop run (`--rate` in args) takes its own shape
    load = [] if "--rate" in args else ["--shape", "none", "-u", str(users), "-r", str(users)]
    cmd = [PY, "-m", "locust", "-f", locustfiles, "--headless", "--only-summary", "--host", url, *load,
           "-t", f"{duration_s:.0f}s", "--results-dir", str(out), "--run-name", name, *args]  # fmt: skip
    t_begin = time.time()
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={**os.environ, **(env or {})})  # fmt: skip
    if pin_cores:
        os.sched_setaffinity(proc.pid, pin_cores)
    cpu = CpuSampler(proc.pid)
    try:
        rc = proc.wait(duration_s + 120)
    except subprocess.TimeoutExpired:  # an overloaded process that does not stop: stop it, keep what it wrote
        rc = _stop(proc)
    finally:
        cpu.stop()
        if proc.poll() is None:
            _stop(proc)
    runs = sorted(out.glob(f"{name}-*"))
    if not runs:
        raise SystemExit(f"bench: locust wrote no run folder for {name} (exit {proc.returncode})")
    meta = json.loads((runs[-1] / "run.json").read_text())
    return LocustRun(runs[-1], cpu, t_begin, time.time(), rc, meta)


def _stop(proc: subprocess.Popen) -> int:
    proc.send_signal(signal.SIGINT)
    try:
        return proc.wait(30)
    except subprocess.TimeoutExpired:
        for child in psutil.Process(proc.pid).children(recursive=True):
            child.kill()
        proc.kill()
        return proc.wait(10)


def read_rows(run_dir: Path) -> list[dict]:
    with open(run_dir / "requests.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def read_trace(trace: Path) -> dict[str, dict]:
    return {t["request_id"]: t for t in trace_lines(trace)}


def chunk_times(row: dict) -> list[float]:
    """Wall-clock arrival of each text chunk of a row (t_start + ttft + cumulative ITL)."""
    if not row.get("ttft_s"):
        return []
    t = float(row["t_start_unix"]) + float(row["ttft_s"])
    out = [t]
    for g in (row.get("itl_s") or "").split(";"):
        if g:
            t += float(g)
            out.append(t)
    return out


@dataclass
class TtftErrors:
    """Per-request TTFT error against the engine's trace (ms), over requests whose first token left
    the engine inside a window. `full` is what a user of the figures sees; it is the sum of two parts:

    - `full`: client TTFT − engine TTFT (`ttft_s` − (`t_first_emit_unix` − `t_arrival_unix`));
    - `receive`: client first-token time − engine emit (`t_start_unix + ttft_s − t_first_emit_unix`):
      how late the client read (or stamped) the first token;
    - `send`: engine arrival − client send (`t_arrival_unix − t_start_unix`): the request in flight
      (the engine stamps its arrival with the kernel's receive stamp, simserver/rxstamp.py; with
      `SIMSERVER_KERNEL_STAMPS=0`, when its event loop parsed it), minus how early the client
      stamped its send.
    """

    full: list[float] = field(default_factory=list)
    receive: list[float] = field(default_factory=list)
    send: list[float] = field(default_factory=list)
    by_request: dict[str, float] = field(default_factory=dict)  # request id → full error (ms)

    def p(self, part: str, q: float) -> float:
        return pct(getattr(self, part), q)

    def columns(self) -> str:
        """`full p50/p99 | receive p99 | send p99` for a table row (widths match ERR_HEAD)."""
        return (f"{self.p('full', 0.5):>9.2f}{self.p('full', 0.99):>9.2f}"
                f"{self.p('receive', 0.99):>9.2f}{self.p('send', 0.99):>9.2f}")  # fmt: skip


ERR_HEAD = f"{'err p50':>9}{'err p99':>9}{'recv p99':>9}{'send p99':>9}"
ERR_NOTE = (
    "err: the TTFT error a user of the figures sees, client TTFT − the engine's TTFT (emit − arrival, its\n"
    "trace, joined by request id), ms; it is recv + send: recv = client first-token time − engine emit\n"
    "(how late the client read the token), send = engine arrival − client send stamp (the request in\n"
    "flight: the engine stamps arrival with the kernel's receive stamp)"
)


def ttft_errors(rows: list[dict], trace: dict[str, dict], t0: float, t1: float) -> TtftErrors:
    """The TTFT error of every completed row whose first token the engine emitted in [t0, t1] (ms)."""
    out = TtftErrors()
    for r in rows:
        t = trace.get(r["request_id"])
        if r["ok"] != "true" or not t or not t.get("t_first_emit_unix") or not r["ttft_s"]:
            continue
        emit, arrival = t["t_first_emit_unix"], t["t_arrival_unix"]
        if not t0 <= emit <= t1:
            continue
        start, ttft = float(r["t_start_unix"]), float(r["ttft_s"])
        out.full.append((ttft - (emit - arrival)) * 1000)
        out.by_request[r["request_id"]] = out.full[-1]
        out.receive.append((start + ttft - emit) * 1000)
        out.send.append((arrival - start) * 1000)
    for xs in (out.full, out.receive, out.send):
        xs.sort()
    return out


def pct(xs: list[float], q: float) -> float:
    if not xs:
        return float("nan")
    xs = sorted(xs)
    return xs[min(len(xs) - 1, max(0, int(q * len(xs) + 0.5) - 1))]


def tempdir(prefix: str) -> Path:
    return Path(tempfile.mkdtemp(prefix=f"goodput-{prefix}-"))
