"""What a server sends after its stream's end marker, and why the body is read to its end.

A stream's end marker (`data: [DONE]`, a finish line) ends the answer, not the HTTP message: the
chunked body's last chunk comes after it, often in a write of its own. A client that stops at the
marker leaves that end unread and cannot reuse the connection, so the next request would pay a new
connection (a TLS handshake over a network) that a real client does not: the openai SDKs read a
stream to its end after `[DONE]` for this reason. So both transports read on to the message's end,
for at most `AFTER_END_S` (a server that keeps the body open after its marker costs its connection,
never the row), and hand every event they find there to `after_end` — not to the API's fold: the
answer is over, and nothing after it is a token or moves the request's last-event time.

One server states its own timing there. TensorRT-LLM's `trtllm-serve`, configured with
`return_perf_metrics: true`, answers a request that carries the header `X-TRTLLM-return-metrics: 1`
(`--header 'X-TRTLLM-return-metrics: 1'`) with an `event: trtllm.perf_metrics` after `[DONE]`, whose
data holds its metrics as response-header values (tensorrt_llm/serve/perf_metrics.py
`PerfMetricsMiddleware`, `build_metrics_sse_event`): `Server-Timing: server_queue;dur=…,
server_ttft;dur=…, server_e2e;dur=…` in milliseconds, each from the request's arrival at its executor
(queue: to the first scheduling; ttft: to the first token; e2e: to the last token).
"""

from __future__ import annotations

import math

import orjson

from core.result import EngineTiming, StreamResult

AFTER_END_S = 1.0  # how long the body's end is awaited after the stream's end marker
TRTLLM_EVENT = "trtllm.perf_metrics"
_PHASE = "server_"  # an aggregated server's phase (a disaggregated frontend names disagg_, ctx_, gen_)


def after_end(res: StreamResult, event: str, data: bytes | bytearray) -> None:
    """One event after the stream's end marker: TensorRT-LLM's timing is read, the rest ignored."""
    if event == TRTLLM_EVENT:
        trtllm_perf_metrics(res, data)


def trtllm_perf_metrics(res: StreamResult, data: bytes | bytearray) -> None:
    """TensorRT-LLM's `trtllm.perf_metrics` event → the row's engine timing: queue = `server_queue`,
    prefill = `server_ttft` − queue (first scheduling → first token, as vLLM's), decode =
    `server_e2e` − `server_ttft`. Without a queue figure the prefill is the whole ttft (its wait
    included, as Ollama's); without ttft and e2e there is none."""
    try:
        obj = orjson.loads(data)
    except orjson.JSONDecodeError:
        return
    timing = obj.get("Server-Timing") if type(obj) is dict else None
    if type(timing) is not str:
        return
    durations = server_timing(timing, _PHASE)
    ttft, e2e, queue = durations.get("ttft"), durations.get("e2e"), durations.get("queue")
    if ttft is None or e2e is None or e2e < ttft:
        return
    if queue is not None and queue > ttft:
        queue = None
    res.engine = EngineTiming(ttft - (queue or 0.0), e2e - ttft, None, queue)


def server_timing(value: str, prefix: str = "") -> dict[str, float]:
    """A `Server-Timing` value (W3C Server Timing: `name;desc="…";dur=ms, …`) → seconds by name, for
    the metrics whose names start with `prefix` (removed); a metric without a number ≥ 0 is left out."""
    out: dict[str, float] = {}
    for metric in value.split(","):
        name, *params = (p.strip() for p in metric.split(";"))
        if not name.startswith(prefix):
            continue
        for param in params:
            key, _, number = param.partition("=")
            if key.strip().lower() == "dur":
                ms = _number(number.strip().strip('"'))
                if ms is not None:
                    out[name[len(prefix) :]] = ms / 1e3
    return out


def _number(text: str) -> float | None:
    try:
        v = float(text)
    except ValueError:
        return None
    return v if v >= 0 and math.isfinite(v) else None
