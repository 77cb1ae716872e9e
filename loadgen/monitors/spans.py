"""The engine's own per-request spans, received during the run into `<run>/server_spans.csv`.

Client rows say how long a request took; the engine's spans (vLLM `--otlp-traces-endpoint`, the
simulated engine likewise) say where the time went inside the engine: queue, prefill, decode.
Joined by request id after the run (analysis/spans.py), they answer "which part of the latency
is mine to fix". This plugin is the run's half: with `--otlp-listen HOST:PORT` the master (or the
local runner) runs the OTLP/HTTP receiver of loadgen/monitors/otlp.py while a run is open.

- init: the option is checked (one line naming it for a bad value) and, for a fixed port, the
  address is test-bound, so a port in use ends the start with one line before any load is sent.
- test_start (the run folder exists): the receiver starts on its own thread (a greenlet in
  Locust's gevent-patched process); each export batch is decoded and appended to
  server_spans.csv as it arrives (~13 µs per span, flushed per batch), never per request.
- closing (just before the run folder closes): engines export in batches on a timer (vLLM's
  BatchSpanProcessor every 5 s by default), so the last requests' spans are still on their way
  when the last row arrives. The plugin waits, at most `--otlp-wait` (default 7 s), until it has
  received as many spans as the run has completed rows, then stops the receiver and closes the file.
- run.json `spans`: `listen`, `endpoint` (what to give the engine), `received` (spans that carry
  `gen_ai.request.id`, handed to the file), `written` (rows in server_spans.csv), `ignored`
  (spans without a request id: another tracer's), `rejected` (export requests answered 4xx),
  `exports` (HTTP requests), `waited_s`, `file`, and a `note` when nothing came. Whether a span
  joins a row is the analysis' business (summary.json `server_timing`): nothing is guessed here.

Off by default: the engine's exporter endpoint is fixed when the engine starts, so the address
must be one the user chose and gave it; a default port (4318, OTLP/HTTP's) would take the place
of an OpenTelemetry collector on the same host, and a free port picked per run cannot be known
to an engine started before it.
"""

from __future__ import annotations

import errno
import logging
import socket
import time
from typing import Any

import gevent

from core.durations import parse_duration_s
from core.errors import OptionError
from core.optgroups import add_option
from loadgen import context
from loadgen.context import RunContext
from loadgen.monitors import perrun
from loadgen.monitors.otlp import OtlpReceiver
from loadgen.monitors.spanrows import SpanCsvWriter, parse_listen

log = logging.getLogger("goodput")

OFF = "off"
CSV_NAME = "server_spans.csv"
META_KEY = "spans"
POLL_S = 0.1
VLLM_HINT = "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL=http/protobuf vllm serve … --otlp-traces-endpoint {url}"


def resolve(value: str | None) -> tuple[str, int] | None:
    """`--otlp-listen` → (host, port), or None when off; OptionError naming the option otherwise."""
    v = (value or "").strip()
    if v.lower() in (OFF, "none", "no", "false", ""):
        return None
    try:
        return parse_listen(v, "--otlp-listen")
    except ValueError as e:
        raise OptionError(str(e)) from None


def wait_of(value: str) -> float:
    return parse_duration_s(value, "--otlp-wait")


def check_free(host: str, port: int) -> None:
    """OptionError when HOST:PORT cannot be listened on (in use, or not an address of this host)."""
    if port == 0:
        return
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_STREAM) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the receiver's server does
            s.bind((host, port))
    except OSError as e:
        shown = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        if e.errno == errno.EADDRINUSE:
            raise OptionError(
                f"--otlp-listen: {shown} is in use; pick a free port (e.g. 127.0.0.1:4318)"
            ) from None
        raise OptionError(f"--otlp-listen: cannot listen on {shown} ({e.strerror or e})") from None


class SpanCapture:
    """One run's receiver and server_spans.csv, with the counts run.json shows."""

    def __init__(self, host: str, port: int, path: Any, meta: dict, wait_s: float) -> None:
        self.listen = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        self.wait_s = wait_s
        self.meta = meta
        self.writer = SpanCsvWriter(path)
        self.receiver = OtlpReceiver(host, port, self.writer.write)
        self.waited_s = 0.0
        self.note = ""

    def start(self) -> None:
        """Listen (OSError when the address is taken); the endpoint to give the engine is logged."""
        try:
            self.receiver.start()
        except OSError:
            self.writer.close()
            raise
        self.publish()
        log.info("goodput: receiving engine spans on %s (vLLM: %s)", self.receiver.url, self.hint())

    def hint(self) -> str:
        return VLLM_HINT.format(url=self.receiver.url)

    def stop(self, expected: int) -> None:
        """Wait (bounded) for `expected` spans, then stop receiving and close the file."""
        t0 = time.monotonic()
        deadline = t0 + self.wait_s
        while self.receiver.rows < expected and time.monotonic() < deadline:
            gevent.sleep(POLL_S)
        self.waited_s = time.monotonic() - t0
        self.receiver.stop()
        self.writer.close()
        if self.receiver.rows == 0:
            self.note = f"no span received: start the engine with {self.hint()}"
            log.warning("goodput: %s", self.note)
        elif self.receiver.rows < expected:
            self.note = (
                f"{self.receiver.rows} spans for {expected} completed requests after waiting "
                f"{self.waited_s:.1f} s (--otlp-wait): the rest are counted as not joined"
            )
        self.publish()

    def publish(self) -> None:
        """Into the run's meta (written to run.json at stop and when the run closes)."""
        r = self.receiver
        self.meta[META_KEY] = {
            "enabled": True,
            "listen": self.listen,
            "endpoint": r.url,
            "received": r.rows,
            "written": self.writer.rows_written,
            "ignored": r.ignored,
            "rejected": r.rejected,
            "exports": r.requests,
            "waited_s": round(self.waited_s, 3),
            "file": CSV_NAME,
            **({"note": self.note} if self.note else {}),
        }


def make_capture(environment: Any) -> SpanCapture | None:
    """The capture for the run that begins (master/local, run folder open), or None (off, refused)."""
    ctx = context.find(environment)
    if ctx is None or ctx.run_dir is None or ctx.refused or ctx.sink is None:
        return None
    opts = environment.parsed_options
    try:
        addr = resolve(getattr(opts, "otlp_listen", OFF))
        wait_s = wait_of(getattr(opts, "otlp_wait", "7s"))
    except OptionError as e:
        log.error("goodput: %s; spans off for this run", e)
        ctx.meta[META_KEY] = {"enabled": False, "note": str(e)}
        return None
    if addr is None:
        return None
    capture = SpanCapture(addr[0], addr[1], ctx.run_dir / CSV_NAME, ctx.meta, wait_s)
    try:
        capture.start()
    except OSError as e:
        note = f"--otlp-listen: cannot listen on {capture.listen} ({e.strerror or e}); spans off for this run"
        log.error("goodput: %s", note)
        ctx.meta[META_KEY] = {"enabled": False, "listen": capture.listen, "note": note}
        (ctx.run_dir / CSV_NAME).unlink(missing_ok=True)
        return None
    return capture


def install(events: Any) -> None:
    @events.init_command_line_parser.add_listener
    def _options(parser: Any) -> None:
        add_option(
            parser,
            "output",
            "--otlp-listen",
            label="OTLP span receiver",
            default=OFF,
            help="HOST:PORT where the master receives the engine's OTLP/HTTP spans into server_spans.csv "
            "(vLLM: --otlp-traces-endpoint http://HOST:PORT/v1/traces); default off",
        )
        add_option(
            parser,
            "output",
            "--otlp-wait",
            label="OTLP wait at the end",
            default="7s",
            help="How long the end of a run waits for the engine's last spans (default 7s; vLLM exports every 5 s)",
        )

    perrun.install(events, _check, _start, _stop)


def _check(opts: Any, host: str) -> None:
    addr = resolve(opts.otlp_listen)
    wait_of(opts.otlp_wait)
    if addr is not None:
        check_free(*addr)


def _start(environment: Any, ctx: RunContext) -> None:
    ctx.spans = make_capture(environment)


def _stop(environment: Any, **_: Any) -> None:
    ctx = context.find(environment)
    if ctx is not None and ctx.spans is not None:
        capture, ctx.spans = ctx.spans, None
        expected = 0
        if ctx.sink is not None:
            ctx.sink.flush()  # rows still pending count too
            expected = ctx.sink.ok_written
        capture.stop(expected)
