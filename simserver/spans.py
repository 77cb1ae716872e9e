"""OTLP/HTTP span export: one `llm_request` span per finished request, shaped as vLLM 0.32 emits it.

What vLLM 0.32 sends (read in its source: `vllm/tracing/utils.py` SpanAttributes for the names,
`vllm/v1/engine/output_processor.py` OutputProcessor.do_tracing for the span, `vllm/v1/metrics/
stats.py` for the timestamps): a SERVER span named `llm_request` from the tracer
`vllm.tracing.otel`, started at the request's arrival and ended when its last output was
processed, for every request that finished (aborted ones get none), with these attributes:

    gen_ai.request.id                        the engine's external request id (see below)
    gen_ai.latency.time_in_queue             first scheduled − queued          (s, double)
    gen_ai.latency.time_in_model_prefill     first token − first scheduled     (s, double)
    gen_ai.latency.time_in_model_decode      last token − first token          (s, double)
    gen_ai.latency.time_in_model_inference   last token − first scheduled      (s, double)
    gen_ai.latency.time_to_first_token       first token − arrival             (s, double)
    gen_ai.latency.e2e                       finish − arrival                  (s, double)
    gen_ai.usage.prompt_tokens, gen_ai.usage.completion_tokens                 (int)
    gen_ai.request.max_tokens, gen_ai.request.n (and top_p, temperature)       (when set)

The simulated engine knows each of these instants exactly (Seq.arrival, t_first_sched,
t_first_token, t_last_token on the perf_counter clock): durations are their differences, and the
span's start and end are converted to Unix time with the offset between the two clocks read when
the request finishes — the instant the trace's wall-clock stamps are taken — so span and trace
agree to within the time the engine takes to write the last token. top_p and temperature
are not sent: the simulator does not read them from the request.

Request ids: vLLM's API server names the engine request `chatcmpl-<X-Request-Id>` (chat) or
`cmpl-<X-Request-Id>-0` (completions, prompt index 0), whether or not `--enable-request-id-headers`
is on (that flag only echoes the header in responses); `engine_request_id` is that rule.

Cost on the token path: the engine's finish hook appends one tuple to a deque. A background
thread wakes every `interval_s` (or as soon as `batch_max` spans wait), builds the
ExportTraceServiceRequest with opentelemetry-proto (~9 µs per span) in slices of 16 spans,
yielding the GIL between them so the event loop never waits more than ~0.15 ms for it, and POSTs
it. A failing or absent receiver never affects
serving: the batch is dropped and counted, the failure logged once per streak; a full queue drops
new spans (counted). `close()` flushes what is queued.
"""

from __future__ import annotations

import http.client
import os
import random
import sys
import threading
import time
from collections import deque
from collections.abc import Iterator
from urllib.parse import urlsplit

from prometheus_client.core import CounterMetricFamily, Metric

from core.clock import wall_and_perf
from simserver.engine import Seq

SPAN_NAME = "llm_request"
SCOPE_NAME = "vllm.tracing.otel"  # vLLM creates the span with trace.get_tracer(__name__) in that module
CONTENT_TYPE = "application/x-protobuf"
# (request id, Unix − perf_counter offset, arrival, first scheduled, first token, last token [perf_counter s],
#  prompt tokens, completion tokens, max tokens). Durations are taken on the perf_counter clock (a Unix
#  time near 1.8e9 s resolves only ~0.24 µs); only the span's start and end are converted.
Record = tuple[str, float, float, float, float, float, int, int, int]


def engine_request_id(x_request_id: str, endpoint: str) -> str:
    """The id vLLM's OpenAI server gives the engine request (and so `gen_ai.request.id`); the native
    routes of other servers keep the client's id as it came."""
    if endpoint in ("chat", "messages"):  # vLLM serves /v1/messages through its chat handler
        return f"chatcmpl-{x_request_id}"
    if endpoint == "completions":
        return f"cmpl-{x_request_id}-0"
    return x_request_id


def check_endpoint(url: str) -> str | None:
    """None when `url` can be POSTed to (http or https with a host), else what is wrong."""
    u = urlsplit(url)
    if u.scheme not in ("http", "https") or not u.hostname:
        return f"'{url}' is not an http(s) URL (e.g. http://127.0.0.1:4318/v1/traces)"
    try:
        u.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        return f"'{url}' has an invalid port"
    return None


def encode(records: list[Record], resource: dict[str, str], rng: random.Random, slice_n: int = 16) -> bytes:
    """ExportTraceServiceRequest bytes for `records`; yields the GIL every `slice_n` spans."""
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
    from opentelemetry.proto.trace.v1.trace_pb2 import Span

    req = ExportTraceServiceRequest()
    rs = req.resource_spans.add()
    for key, value in resource.items():
        rs.resource.attributes.add(key=key).value.string_value = value
    ss = rs.scope_spans.add()
    ss.scope.name = SCOPE_NAME
    for i, (rid, off, arrival, sched, first, last, prompt, completion, max_tokens) in enumerate(records):
        if i and i % slice_n == 0:
            time.sleep(0)  # let the event loop thread take the GIL if it is waiting
        sp = ss.spans.add()
        sp.trace_id = rng.getrandbits(128).to_bytes(16, "big")
        sp.span_id = rng.getrandbits(64).to_bytes(8, "big")
        sp.name = SPAN_NAME
        sp.kind = Span.SPAN_KIND_SERVER
        sp.start_time_unix_nano = round((arrival + off) * 1e9)
        sp.end_time_unix_nano = round((last + off) * 1e9)
        add = sp.attributes.add
        add(key="gen_ai.latency.time_to_first_token").value.double_value = first - arrival
        add(key="gen_ai.latency.e2e").value.double_value = last - arrival
        add(key="gen_ai.latency.time_in_queue").value.double_value = sched - arrival
        add(key="gen_ai.usage.prompt_tokens").value.int_value = prompt
        add(key="gen_ai.usage.completion_tokens").value.int_value = completion
        add(key="gen_ai.latency.time_in_model_prefill").value.double_value = first - sched
        add(key="gen_ai.latency.time_in_model_decode").value.double_value = last - first
        add(key="gen_ai.latency.time_in_model_inference").value.double_value = last - sched
        add(key="gen_ai.request.id").value.string_value = rid
        add(key="gen_ai.request.max_tokens").value.int_value = max_tokens
        add(key="gen_ai.request.n").value.int_value = 1
    return req.SerializeToString()


class SpanExporter:
    """Queues finished requests (engine hook `on_finish`) and POSTs them in batches from a thread."""

    def __init__(
        self,
        url: str,
        resource: dict[str, str],
        batch_max: int = 512,
        interval_s: float = 0.5,
        timeout_s: float = 2.0,
        queue_max: int = 65536,
    ) -> None:
        self.url = url
        u = urlsplit(url)
        self._https = u.scheme == "https"
        self._host, self._port = u.hostname or "", u.port
        self._path = (u.path or "/") + (f"?{u.query}" if u.query else "")
        self.resource = resource
        self.batch_max, self.interval_s, self.timeout_s, self.queue_max = (
            batch_max,
            interval_s,
            timeout_s,
            queue_max,
        )
        self.exported = 0  # spans the receiver accepted (HTTP 200)
        # Spans lost, counted by the thread that lost them (no shared read-modify-write):
        self._dropped_full = 0  # event loop: the queue was full
        self._dropped_send = 0  # export thread: receiver down or answering an error
        self._queue: deque[Record] = deque()
        self._wake = threading.Event()
        self._stopping = False
        self._failing = False
        self._conn: http.client.HTTPConnection | None = None
        self._rng = random.Random(os.urandom(16))
        self._thread = threading.Thread(target=self._run, name="otlp-export", daemon=True)

    # -- the event loop's side ----------------------------------------------------------------
    def on_finish(self, seq: Seq) -> None:
        """EngineCore.on_finish: one tuple per finished request, nothing else on the token path."""
        if len(self._queue) >= self.queue_max:
            self._dropped_full += 1
            return
        wall, perf = wall_and_perf()
        self._queue.append(
            (
                seq.request_id,
                wall - perf,
                seq.arrival,
                seq.t_first_sched,
                seq.t_first_token,
                seq.t_last_token,
                seq.prompt_len,
                seq.num_output,
                seq.max_tokens,
            )
        )
        if len(self._queue) >= self.batch_max:
            self._wake.set()

    def start(self) -> None:
        self._thread.start()

    def close(self, timeout_s: float = 10.0) -> None:
        """Send what is queued (bounded by `timeout_s`), then stop the thread."""
        self._stopping = True
        self._wake.set()
        self._thread.join(timeout_s)
        self._dropped_full += len(self._queue)  # only non-zero when the receiver hung past the timeout
        self._queue.clear()

    @property
    def dropped(self) -> int:
        """Spans lost: queue full, receiver down or answering an error."""
        return self._dropped_full + self._dropped_send

    # -- the export thread ---------------------------------------------------------------------
    def _run(self) -> None:
        queue = self._queue
        while True:
            self._wake.wait(self.interval_s)
            self._wake.clear()
            stopping = self._stopping
            while queue:
                batch = [queue.popleft() for _ in range(min(self.batch_max, len(queue)))]
                self._send(batch)
            if stopping:
                break
        if self._conn is not None:
            self._conn.close()

    def _send(self, batch: list[Record]) -> None:
        body = encode(batch, self.resource, self._rng)
        try:
            status = self._post(body)
        except (OSError, http.client.HTTPException) as e:
            self._fail(len(batch), f"{type(e).__name__}: {e}")
            return
        if status == 200:
            self.exported += len(batch)
            if self._failing:
                self._failing = False
                print(f"simserver: OTLP export to {self.url} works again", file=sys.stderr, flush=True)
        else:
            self._fail(len(batch), f"HTTP {status}")

    def _post(self, body: bytes) -> int:
        """POST once; a kept-alive connection the receiver closed meanwhile is retried once."""
        for attempt in (0, 1):
            fresh = self._conn is None
            if self._conn is None:
                cls = http.client.HTTPSConnection if self._https else http.client.HTTPConnection
                self._conn = cls(self._host, self._port, timeout=self.timeout_s)
            try:
                self._conn.request("POST", self._path, body, {"Content-Type": CONTENT_TYPE})
                resp = self._conn.getresponse()
                resp.read()
                if resp.will_close:
                    self._conn.close()
                    self._conn = None
                return resp.status
            except (OSError, http.client.HTTPException):
                self._conn.close()
                self._conn = None
                if fresh or attempt:
                    raise
        raise AssertionError("unreachable")

    def _fail(self, n: int, reason: str) -> None:
        self._dropped_send += n
        if not self._failing:
            self._failing = True
            print(
                f"simserver: OTLP export to {self.url} failed ({reason}); dropping spans while it fails "
                "(simserver:otlp_spans_dropped_total counts them)",
                file=sys.stderr,
                flush=True,
            )


class SpanCollector:
    """/metrics counters of the exporter, labelled like the engine's series."""

    def __init__(self, exporter: SpanExporter, labels: dict[str, str]) -> None:
        self.exporter, self.labels = exporter, labels

    def collect(self) -> Iterator[Metric]:
        for name, doc, value in (
            ("simserver:otlp_spans_exported", "Spans the OTLP receiver accepted.", self.exporter.exported),
            (
                "simserver:otlp_spans_dropped",
                "Spans lost: queue full, receiver down or answering an error.",
                self.exporter.dropped,
            ),
        ):
            c = CounterMetricFamily(name, doc, labels=list(self.labels))
            c.add_metric(list(self.labels.values()), value)
            yield c


def resource_attributes(replica: int) -> dict[str, str]:
    """The Resource vLLM's tracer provider sets (process id, module name) plus the replica index."""
    return {
        "service.name": os.environ.get("OTEL_SERVICE_NAME", "simserver"),
        "vllm.instrumenting_module_name": "vllm.llm_engine",
        "vllm.process_id": str(os.getpid()),
        "simserver.replica": str(replica),
    }
