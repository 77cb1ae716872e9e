"""OTLP trace requests → flat rows, one per request span, and server_spans.csv.

Rows: one per span that carries `gen_ai.request.id` (other spans are counted in `ignored`).
`on_rows(rows)` may be called from several threads at once. server_spans.csv (SpanCsvWriter)
has the columns SPAN_COLUMNS, in this order:

    request_id        gen_ai.request.id as sent (vLLM 0.32: chatcmpl-<X-Request-Id> for chat,
                      cmpl-<X-Request-Id>-<prompt index> for completions)
    x_request_id      the client's X-Request-Id recovered from it (the join key with client rows)
    span_name         `llm_request` for vLLM's request span
    t_start_unix, t_end_unix   span start (the engine's arrival) and end, Unix seconds
    queue_s, prefill_s, decode_s, inference_s, ttft_s, e2e_s      gen_ai.latency.* (seconds):
                      time_in_queue, time_in_model_prefill, time_in_model_decode,
                      time_in_model_inference, time_to_first_token, e2e
    scheduler_s, model_forward_s, model_execute_s   gen_ai.latency.time_in_scheduler,
                      time_in_model_forward, time_in_model_execute (named by vLLM, rarely sent)
    prompt_tokens, completion_tokens, num_sequences   gen_ai.usage.*
    max_tokens, n, temperature, top_p, model    gen_ai.request.* and gen_ai.response.model
    service_name, process_id   resource attributes service.name and vllm.process_id
    trace_id, span_id          hex
    other_attrs       any other gen_ai.* attribute, as a JSON object (empty when none)

Empty cells are attributes the span did not carry.
"""

from __future__ import annotations

import base64
import csv
import json
import re
import threading
import zlib
from pathlib import Path
from typing import Any

from google.protobuf import json_format
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

MAX_BODY = 64 * 1024 * 1024  # an OTLP request larger than this is refused (413)
ATTRIBUTE_COLUMNS = {  # vLLM 0.32 vllm/tracing/utils.py SpanAttributes → column
    "gen_ai.request.id": "request_id",
    "gen_ai.latency.time_in_queue": "queue_s",
    "gen_ai.latency.time_in_model_prefill": "prefill_s",
    "gen_ai.latency.time_in_model_decode": "decode_s",
    "gen_ai.latency.time_in_model_inference": "inference_s",
    "gen_ai.latency.time_to_first_token": "ttft_s",
    "gen_ai.latency.e2e": "e2e_s",
    "gen_ai.latency.time_in_scheduler": "scheduler_s",
    "gen_ai.latency.time_in_model_forward": "model_forward_s",
    "gen_ai.latency.time_in_model_execute": "model_execute_s",
    "gen_ai.usage.prompt_tokens": "prompt_tokens",
    "gen_ai.usage.completion_tokens": "completion_tokens",
    "gen_ai.usage.num_sequences": "num_sequences",
    "gen_ai.request.max_tokens": "max_tokens",
    "gen_ai.request.n": "n",
    "gen_ai.request.temperature": "temperature",
    "gen_ai.request.top_p": "top_p",
    "gen_ai.response.model": "model",
}
SPAN_COLUMNS = (
    "request_id",
    "x_request_id",
    "span_name",
    "t_start_unix",
    "t_end_unix",
    "queue_s",
    "prefill_s",
    "decode_s",
    "inference_s",
    "ttft_s",
    "e2e_s",
    "scheduler_s",
    "model_forward_s",
    "model_execute_s",
    "prompt_tokens",
    "completion_tokens",
    "num_sequences",
    "max_tokens",
    "n",
    "temperature",
    "top_p",
    "model",
    "service_name",
    "process_id",
    "trace_id",
    "span_id",
    "other_attrs",
)
Row = dict[str, Any]
_COMPLETION_ID = re.compile(r"^cmpl-(.*)-\d+$")


class OtlpError(ValueError):
    """A request the receiver refuses: `status` is the HTTP answer."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def parse_listen(text: str, place: str = "--otlp-listen") -> tuple[str, int]:
    """'HOST:PORT' (IPv6 as [::1]:PORT) → (host, port); a one-line error naming `place` otherwise."""
    host, sep, port = text.rpartition(":")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if not sep or not host or "/" in host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"{place}: expected HOST:PORT (e.g. 127.0.0.1:4318), got '{text}'")
    return host, int(port)


def client_request_id(request_id: str) -> str:
    """The client's X-Request-Id inside vLLM's engine request id (see the module docstring)."""
    if request_id.startswith("chatcmpl-"):
        return request_id[len("chatcmpl-") :]
    m = _COMPLETION_ID.match(request_id)
    return m.group(1) if m else request_id


def _value(v: Any) -> Any:
    kind = v.WhichOneof("value")
    if kind in ("array_value", "kvlist_value"):
        return json_format.MessageToDict(getattr(v, kind))
    if kind == "bytes_value":
        return v.bytes_value.hex()
    return getattr(v, kind) if kind else None


def span_rows(request: ExportTraceServiceRequest) -> tuple[list[Row], int]:
    """(rows of the spans that carry gen_ai.request.id, number of spans without one)."""
    rows: list[Row] = []
    ignored = 0
    for rs in request.resource_spans:
        resource = {kv.key: _value(kv.value) for kv in rs.resource.attributes}
        for ss in rs.scope_spans:
            for span in ss.spans:
                attrs = {kv.key: _value(kv.value) for kv in span.attributes}
                if "gen_ai.request.id" not in attrs:
                    ignored += 1
                    continue
                row: Row = dict.fromkeys(SPAN_COLUMNS)
                other = {}
                for key, value in attrs.items():
                    column = ATTRIBUTE_COLUMNS.get(key)
                    if column is not None:
                        row[column] = value
                    elif key.startswith("gen_ai."):
                        other[key] = value
                row["request_id"] = str(row["request_id"])
                row["x_request_id"] = client_request_id(row["request_id"])
                row["span_name"] = span.name
                row["t_start_unix"] = span.start_time_unix_nano / 1e9
                row["t_end_unix"] = span.end_time_unix_nano / 1e9
                row["service_name"] = resource.get("service.name")
                row["process_id"] = resource.get("vllm.process_id")
                row["trace_id"] = span.trace_id.hex()
                row["span_id"] = span.span_id.hex()
                row["other_attrs"] = json.dumps(other, sort_keys=True) if other else ""
                rows.append(row)
    return rows, ignored


def _hex_ids_to_base64(data: Any) -> None:
    """OTLP/JSON writes trace and span ids as hex, protobuf's JSON mapping expects base64."""
    for rs in data.get("resourceSpans", []) if isinstance(data, dict) else []:
        for ss in rs.get("scopeSpans", []):
            for span in ss.get("spans", []):
                for item in (span, *span.get("links", [])):
                    for key in ("traceId", "spanId", "parentSpanId"):
                        if isinstance(item.get(key), str) and item[key]:
                            item[key] = base64.b64encode(bytes.fromhex(item[key])).decode()


def decode(body: bytes, content_type: str, content_encoding: str = "") -> ExportTraceServiceRequest:
    """The request body as an ExportTraceServiceRequest, or OtlpError(400/415)."""
    if content_encoding.lower() == "gzip":
        inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
        try:
            body = inflater.decompress(body, MAX_BODY)
        except zlib.error as e:
            raise OtlpError(400, f"bad gzip body: {e}") from None
        if inflater.unconsumed_tail:
            raise OtlpError(413, "decompressed body over 64 MiB")
    elif content_encoding not in ("", "identity"):
        raise OtlpError(415, f"unsupported Content-Encoding '{content_encoding}'")
    media = content_type.split(";")[0].strip().lower()
    msg = ExportTraceServiceRequest()
    try:
        if media == "application/x-protobuf":
            msg.ParseFromString(body)
        elif media == "application/json":
            data = json.loads(body)
            _hex_ids_to_base64(data)
            json_format.ParseDict(data, msg, ignore_unknown_fields=True)
        else:
            raise OtlpError(415, f"unsupported Content-Type '{content_type}' (use application/x-protobuf)")
    except (DecodeError, json_format.ParseError, ValueError, AttributeError, TypeError) as e:
        if isinstance(e, OtlpError):
            raise
        raise OtlpError(400, f"body is not an ExportTraceServiceRequest: {e}") from None
    return msg


class SpanCsvWriter:
    """server_spans.csv: a header, then rows as they arrive (flushed per batch); thread-safe."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._fh = self.path.open("w", newline="", encoding="utf-8")
        self._writer = csv.DictWriter(self._fh, fieldnames=SPAN_COLUMNS, extrasaction="ignore")
        self._writer.writeheader()
        self._fh.flush()
        self._lock = threading.Lock()
        self.rows_written = 0

    def write(self, rows: list[Row]) -> None:
        with self._lock:
            if self._fh.closed:
                return
            self._writer.writerows(rows)
            self._fh.flush()
            self.rows_written += len(rows)

    def close(self) -> None:
        with self._lock:
            self._fh.close()
