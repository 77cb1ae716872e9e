"""Helpers for tests against the real CPU vLLM engine (`make real-engine-setup real-engine-model`).

Not a test module: the integration test imports it. It needs only the standard library and
prometheus_client (both in the suite's .venv); vLLM itself runs in its own venv under .real-engine/.

    from tests.support.real_engine import find_install, start_engine, counters, delta

    inst = find_install()                 # None -> pytest.skip(unavailable_reason())
    eng = start_engine()                  # free port on 127.0.0.1, waits for /health
    try:
        before = counters(eng.url)
        ...                               # run the suite against eng.url (model name eng.model)
        d = delta(before, counters(eng.url))
        d.request_success, d.prompt_tokens, d.generation_tokens, d.ttft_mean_s, d.prefix_hit_rate
    finally:
        eng.stop()
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, fields
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "real_engine.sh"
MODEL_NAME = "tiny-llama"  # --served-model-name


def skip_unless_available(reason: str | None, require_env: str) -> None:
    """A real engine's module fixture: skip with `reason` where the engine is not installed, or fail
    where `require_env`=1 says it must be (CI); nothing when `reason` is None."""
    if reason:
        if os.environ.get(require_env) == "1":
            pytest.fail(f"{require_env}=1 but {reason}", pytrace=False)
        pytest.skip(reason)


def engine_dir() -> Path:
    return Path(os.environ.get("REAL_ENGINE_DIR", ROOT / ".real-engine"))


@dataclass(frozen=True)
class Install:
    dir: Path
    python: Path
    model: Path


def unavailable_reason() -> str | None:
    """Why the engine can't be started here (None when it can): for pytest.skip."""
    d = engine_dir()
    if not (d / "venv" / ".installed").is_file() or not (d / "venv" / "bin" / "python").exists():
        return f"CPU vLLM engine not installed in {d}/venv (run `make real-engine-setup`)"
    if not (d / "model" / ".built").is_file():
        return f"tiny model not built in {d}/model (run `make real-engine-model`)"
    return None


def find_install() -> Install | None:
    """The `.real-engine` install (venv + model), or None if it is missing or incomplete."""
    if unavailable_reason() is not None:
        return None
    d = engine_dir()
    return Install(dir=d, python=d / "venv" / "bin" / "python", model=d / "model")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Engine:
    """A running engine: `url` (no trailing slash), `model` (served name), `stop()` (idempotent)."""

    url: str
    model: str
    popen: subprocess.Popen
    log_path: Path
    startup_s: float = 0.0
    otlp_endpoint: str = ""  # where vLLM sends its spans ("" when tracing is off)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self, timeout_s: float = 20.0) -> int | None:
        """SIGTERM the engine's process group (API server + engine core), SIGKILL after `timeout_s`."""
        p = self.popen
        if p.poll() is None:
            try:
                os.killpg(p.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                p.wait(timeout_s)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(p.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                p.wait(10)
        else:  # the leader is gone; make sure no child of its group lingers
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        return p.returncode


def _get(url: str, timeout_s: float = 5.0) -> tuple[int, str]:
    with urllib.request.urlopen(url, timeout=timeout_s) as r:
        return r.status, r.read().decode("utf-8", "replace")


def start_engine(
    port: int | None = None,
    timeout_s: float = 300.0,
    log_path: Path | None = None,
    env: dict[str, str] | None = None,
    otlp_endpoint: str = "",
    flags: tuple[str, ...] = (),
) -> Engine:
    """Start the engine on 127.0.0.1 (a free port unless given) and wait for /health; `flags` are
    appended to vLLM's command line (e.g. a drafter's --speculative-config).

    With `otlp_endpoint` (http://HOST:PORT/v1/traces) vLLM exports one span per finished request
    there over OTLP/HTTP (REAL_ENGINE_OTLP_ENDPOINT of scripts/real_engine.sh).

    Runs `scripts/real_engine.sh serve PORT` (the same command line and environment as
    `make real-engine`) in its own session, output to `log_path` (default
    .real-engine/test-server-PORT.log). Raises RuntimeError (with the log's tail) if it exits or
    is not healthy within `timeout_s` (start-up takes ~20-80 s on 2 cores).
    """
    reason = unavailable_reason()
    if reason:
        raise RuntimeError(reason)
    port = port or free_port()
    log_path = log_path or engine_dir() / f"test-server-{port}.log"
    if otlp_endpoint:
        env = {**(env or {}), "REAL_ENGINE_OTLP_ENDPOINT": otlp_endpoint}
    argv = ["bash", str(SCRIPT), "serve", str(port), *flags]
    eng = launch(argv, port, MODEL_NAME, log_path, timeout_s, "vLLM", env)
    eng.otlp_endpoint = otlp_endpoint
    return eng


def launch(
    argv: list[str],
    port: int,
    model: str,
    log_path: Path,
    timeout_s: float,
    what: str,
    env: dict[str, str] | None = None,
) -> Engine:
    """Run `argv` (a server for 127.0.0.1:`port`) in its own session, output to `log_path`, and wait
    until its /health answers 200. RuntimeError with the log's tail if it exits or is not healthy
    within `timeout_s`. Shared by every real engine the tests start (vLLM, llama.cpp)."""
    fh = open(log_path, "wb")  # noqa: SIM115 - handed to the child
    t0 = time.monotonic()
    p = subprocess.Popen(
        argv,
        cwd=ROOT,
        stdout=fh,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        env={
            **os.environ,
            "PYTHONUNBUFFERED": "1",
            **(env or {}),
        },
        start_new_session=True,
    )
    fh.close()
    eng = Engine(
        url=f"http://127.0.0.1:{port}",
        model=model,
        popen=p,
        log_path=log_path,
    )
    deadline = t0 + timeout_s
    while True:
        if p.poll() is not None:
            tail = "\n".join(eng.log().splitlines()[-30:])
            raise RuntimeError(f"{what} exited with {p.returncode} during start-up:\n{tail}")
        try:
            if _get(eng.url + "/health", 2.0)[0] == 200:
                break
        except Exception:
            pass
        if time.monotonic() > deadline:
            eng.stop()
            tail = "\n".join(eng.log().splitlines()[-30:])
            raise RuntimeError(f"{what} not healthy on {eng.url} after {timeout_s:.0f}s:\n{tail}")
        time.sleep(0.5)
    eng.startup_s = time.monotonic() - t0
    return eng


@contextmanager
def running_engine(**kwargs) -> Iterator[Engine]:
    eng = start_engine(**kwargs)
    try:
        yield eng
    finally:
        eng.stop()


def fetch_metrics(url: str, timeout_s: float = 5.0) -> str:
    """The Prometheus text of `url`/metrics (`url` is the server's base URL)."""
    status, text = _get(url.rstrip("/") + "/metrics", timeout_s)
    if status != 200:
        raise RuntimeError(f"{url}/metrics answered {status}")
    return text


@dataclass(frozen=True)
class Counters:
    """vLLM's cumulative counters, each summed over all label sets (model, engine, finished_reason...).

    request_success sums every finished_reason (stop, length, abort, error, repetition): use
    by_label() to tell them apart. Prefix-cache counters count tokens, in 128-token blocks.
    """

    request_success: float = 0.0  # vllm:request_success_total
    prompt_tokens: float = 0.0  # vllm:prompt_tokens_total
    generation_tokens: float = 0.0  # vllm:generation_tokens_total
    ttft_sum_s: float = 0.0  # vllm:time_to_first_token_seconds_sum
    ttft_count: float = 0.0  # vllm:time_to_first_token_seconds_count
    prefix_cache_queries: float = 0.0  # vllm:prefix_cache_queries_total (tokens looked up)
    prefix_cache_hits: float = 0.0  # vllm:prefix_cache_hits_total (tokens found cached)
    prompt_tokens_cached: float = 0.0  # vllm:prompt_tokens_cached_total (once per request, local + external)
    # speculative decoding (an engine with --speculative-config; absent, 0, otherwise)
    spec_drafts: float = 0.0  # vllm:spec_decode_num_drafts_total (verify steps with a draft)
    spec_draft_tokens: float = 0.0  # vllm:spec_decode_num_draft_tokens_total
    spec_accepted: float = 0.0  # vllm:spec_decode_num_accepted_tokens_total
    # the multimodal cache, in images (0 on a text-only model)
    mm_cache_queries: float = 0.0  # vllm:mm_cache_queries_total
    mm_cache_hits: float = 0.0  # vllm:mm_cache_hits_total

    @property
    def ttft_mean_s(self) -> float | None:
        return self.ttft_sum_s / self.ttft_count if self.ttft_count else None

    @property
    def prefix_hit_rate(self) -> float | None:
        return self.prefix_cache_hits / self.prefix_cache_queries if self.prefix_cache_queries else None


# Prometheus sample name -> Counters field.
SAMPLES = {
    "vllm:request_success_total": "request_success",
    "vllm:prompt_tokens_total": "prompt_tokens",
    "vllm:generation_tokens_total": "generation_tokens",
    "vllm:spec_decode_num_drafts_total": "spec_drafts",
    "vllm:spec_decode_num_draft_tokens_total": "spec_draft_tokens",
    "vllm:spec_decode_num_accepted_tokens_total": "spec_accepted",
    "vllm:time_to_first_token_seconds_sum": "ttft_sum_s",
    "vllm:time_to_first_token_seconds_count": "ttft_count",
    "vllm:prefix_cache_queries_total": "prefix_cache_queries",
    "vllm:prefix_cache_hits_total": "prefix_cache_hits",
    "vllm:prompt_tokens_cached_total": "prompt_tokens_cached",
    "vllm:mm_cache_queries_total": "mm_cache_queries",
    "vllm:mm_cache_hits_total": "mm_cache_hits",
}


def parse_counters(text: str) -> Counters:
    """Sum the samples named in SAMPLES over every label set of the exposition `text`."""
    acc = dict.fromkeys(SAMPLES.values(), 0.0)
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            key = SAMPLES.get(s.name)
            if key is not None:
                acc[key] += float(s.value)
    return Counters(**acc)


def by_label(text: str, sample: str, label: str) -> dict[str, float]:
    """One sample summed per value of one label, e.g.
    by_label(text, "vllm:request_success_total", "finished_reason") -> {"length": 24.0, "stop": 0.0, "abort": 0.0, ...}.
    (vLLM counts finished requests of every reason in request_success_total, aborted ones included.)"""
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == sample:
                k = s.labels.get(label, "")
                out[k] = out.get(k, 0.0) + float(s.value)
    return out


def counters(url: str) -> Counters:
    return parse_counters(fetch_metrics(url))


def delta(before: Counters, after: Counters) -> Counters:
    """after - before, field by field (the properties then give the window's mean TTFT and hit rate)."""
    return Counters(**{f.name: getattr(after, f.name) - getattr(before, f.name) for f in fields(Counters)})


def record_figures(path: Path, key: str, figures: dict, label: str) -> None:
    """Keep measured figures in `path` (JSON under test-artifacts/, gitignored) under `key`, and print
    them: the docs quote them, CI logs show them (`pytest -s`)."""
    path.parent.mkdir(exist_ok=True)
    data = json.loads(path.read_text()) if path.exists() else {}
    data[key] = {**figures, "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    path.write_text(json.dumps(data, indent=2) + "\n")
    print(f"{label} {key}: {json.dumps(figures)}")
