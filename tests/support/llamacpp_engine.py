"""Helpers for tests against llama.cpp's own server (`make llamacpp-setup llamacpp-model`).

Not a test module: the integration test imports it. Starting, health-waiting and stopping are the
vLLM helpers' (tests/support/real_engine.py: `launch`, `Engine`, `by_label`); what differs is llama.cpp's
own: where its build lives, its `llamacpp:` metric names, and the per-request timings in its log.

    from tests.support.llamacpp_engine import start_llamacpp, unavailable_reason, wait_idle, counters_of, delta

    eng = start_llamacpp()                       # free port on 127.0.0.1, waits for /health
    try:
        before = counters_of(wait_idle(eng.url))
        ...                                      # run the suite against eng.url (model eng.model)
        d = delta(before, counters_of(wait_idle(eng.url)))
        d.tokens_predicted, d.prompt_tokens, d.n_decode ...
    finally:
        eng.stop()

llama.cpp's /metrics has no request counter (only tokens, seconds, decode calls and two gauges),
and it prints every value with C++'s default 6 significant digits: a counter past 999,999 reads
like 1.23457e+06, so exact comparisons hold only on a young server (the tests start their own).
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass, fields
from pathlib import Path

from tests.support.real_engine import ROOT, Engine, by_label, fetch_metrics, free_port, launch

SCRIPT = ROOT / "scripts" / "llamacpp.sh"
MODEL_NAME = "tiny-llama"  # --alias


def llamacpp_dir() -> Path:
    return Path(os.environ.get("LLAMACPP_DIR", ROOT / ".llamacpp"))


def unavailable_reason() -> str | None:
    """Why the server can't be started here (None when it can): for pytest.skip."""
    d = llamacpp_dir()
    if not (d / "bin" / ".built").is_file() or not os.access(d / "bin" / "llama-server", os.X_OK):
        return f"llama-server not built in {d}/bin (run `make llamacpp-setup`)"
    if not (d / "model" / ".built").is_file():
        return f"tiny GGUF model not written in {d}/model (run `make llamacpp-model`)"
    return None


def start_llamacpp(
    port: int | None = None,
    timeout_s: float = 120.0,
    log_path: Path | None = None,
    flags: tuple[str, ...] = (),
) -> Engine:
    """Start llama-server on 127.0.0.1 (a free port unless given) with `scripts/llamacpp.sh serve PORT`
    — the command line of `make llamacpp`, `flags` appended — and wait for /health (503 while the
    model loads)."""
    reason = unavailable_reason()
    if reason:
        raise RuntimeError(reason)
    port = port or free_port()
    log_path = log_path or llamacpp_dir() / f"test-server-{port}.log"
    return launch(
        ["bash", str(SCRIPT), "serve", str(port), *flags],
        port,
        MODEL_NAME,
        log_path,
        timeout_s,
        "llama-server",
    )


@dataclass(frozen=True)
class LlamaCounters:
    """llama.cpp's cumulative counters (names in tools/server/server-task.cpp, to_metrics)."""

    prompt_tokens: float = 0.0  # llamacpp:prompt_tokens_total — processed, cached ones excluded
    prompt_tokens_cached: float = 0.0  # llamacpp:prompt_tokens_cached_total — reused from the KV cache
    prompt_s: float = 0.0  # llamacpp:prompt_seconds_total — wall time of the decode calls with prompt tokens
    tokens_predicted: float = 0.0  # llamacpp:tokens_predicted_total — counted when a request finishes
    tokens_predicted_s: float = 0.0  # llamacpp:tokens_predicted_seconds_total
    n_decode: float = 0.0  # llamacpp:n_decode_total — llama_decode() calls (one may serve every slot)
    # speculative decoding (a server with a drafter; 0 without): verify steps, draft tokens, accepted ones
    spec_drafts: float = 0.0  # llamacpp:spec_decode_num_drafts_total
    spec_draft_tokens: float = 0.0  # llamacpp:spec_decode_num_draft_tokens_total
    spec_accepted: float = 0.0  # llamacpp:spec_decode_num_accepted_tokens_total


SAMPLES = {
    "llamacpp:prompt_tokens_total": "prompt_tokens",
    "llamacpp:prompt_tokens_cached_total": "prompt_tokens_cached",
    "llamacpp:prompt_seconds_total": "prompt_s",
    "llamacpp:tokens_predicted_total": "tokens_predicted",
    "llamacpp:tokens_predicted_seconds_total": "tokens_predicted_s",
    "llamacpp:n_decode_total": "n_decode",
    "llamacpp:spec_decode_num_drafts_total": "spec_drafts",
    "llamacpp:spec_decode_num_draft_tokens_total": "spec_draft_tokens",
    "llamacpp:spec_decode_num_accepted_tokens_total": "spec_accepted",
}
# Gauges: requests in a slot now, and requests waiting for a free slot.
BUSY = ("llamacpp:requests_processing", "llamacpp:requests_deferred")


def value(text: str, sample: str) -> float:
    """One unlabelled sample of an exposition `text` (0 when absent)."""
    return sum(by_label(text, sample, "").values())


def counters_of(text: str) -> LlamaCounters:
    return LlamaCounters(**{f: value(text, s) for s, f in SAMPLES.items()})


def delta(before: LlamaCounters, after: LlamaCounters) -> LlamaCounters:
    return LlamaCounters(
        **{f.name: getattr(after, f.name) - getattr(before, f.name) for f in fields(LlamaCounters)}
    )


def wait_idle(url: str, timeout_s: float = 60.0) -> str:
    """The /metrics text once no request is in a slot or deferred and the counters held still for
    half a second: a stream's last chunk leaves before the slot is released, and the slot's tokens
    reach `tokens_predicted_total` only at its release."""
    deadline = time.monotonic() + timeout_s
    last: str | None = None
    while time.monotonic() < deadline:
        text = fetch_metrics(url)
        busy = sum(value(text, g) for g in BUSY)
        if busy == 0 and last is not None and counters_of(text) == counters_of(last):
            return text
        last = text if busy == 0 else None
        time.sleep(0.5)
    raise AssertionError(
        f"{url}: llama-server not idle within {timeout_s:.0f}s (requests in slots or deferred)"
    )


# The slot's own timings, printed when a request finishes (server_slot::print_timings; the same
# numbers as the `timings` object of the final stream chunk): prompt_ms and prompt_n.
PROMPT_EVAL = re.compile(r"prompt eval time =\s*([0-9.]+) ms /\s*([0-9]+) tokens")


def prompt_timings(log_text: str) -> list[tuple[float, int]]:
    """(prompt_ms, prompt tokens processed) per finished request, in the order they finished."""
    return [(float(m.group(1)), int(m.group(2))) for m in PROMPT_EVAL.finditer(log_text)]
