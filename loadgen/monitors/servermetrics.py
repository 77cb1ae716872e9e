"""Server-side metrics: the engine's Prometheus `/metrics`, scraped during the run into `<run>/server_metrics.csv`.

Cache hit rate, batch size and the engine's own TTFT live on the server; the client cannot see
them. The master (or the local runner) scrapes them in a greenlet from test_start to test_stop:
the workers, which time the tokens, never do. Each scrape appends rows `t, metric, labels, value`:
- `t`: wall-clock unix seconds (ms resolution), the midpoint of the HTTP exchange, one per scrape;
- `metric`: the sample name as prometheus_client's parser gives it (`vllm:prefix_cache_hits_total`,
  `..._bucket`, `..._sum`; counters always end in `_total`);
- `labels`: `k=v;k=v`, keys sorted; `%`, `;`, `=` and newlines in values are %-escaped;
- `value`: the float (`NaN`, `+Inf`, `-Inf` as Prometheus writes them).
Histograms keep every bucket, sum and count (the analysis derives server-side TTFT from them).
`python_*` / `process_*` families and `*_created` timestamps are dropped: they cost parse time and
say nothing about serving. The mapping of engine names to common series is post-run (analysis/engines.py).

A failed scrape never stops the run: it is counted, warned about once, and reported in run.json
`server_metrics` (URL without credentials, scrapes, failures, last error). With the default
`--server-metrics auto`, a target that serves no Prometheus text at its first scrape turns the
scraper off quietly (noted in run.json) — after one more try at `/prometheus/metrics`, where
TensorRT-LLM's `trtllm-serve` serves its Prometheus page (its `/metrics` is JSON iteration stats).
The parser yields to the event loop every `CHUNK_SAMPLES` samples, so on a local runner no slice of
a scrape holds the users' greenlets for more than a few ms (bench/servermetrics_cost.py measures it).
"""

from __future__ import annotations

import csv
import logging
import os
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import urlsplit

import gevent

from core.durations import parse_duration_s
from core.errors import OptionError
from core.optgroups import add_option
from loadgen import context
from loadgen.context import RunContext
from loadgen.monitors import perrun
from loadgen.monitors.promtext import parse
from loadgen.transport.headers import static_headers
from loadgen.transport.urls import is_http_url, opener_like, safe_url

log = logging.getLogger("goodput")

AUTO, OFF = "auto", "off"
CSV_NAME = "server_metrics.csv"
HEADER = ("t", "metric", "labels", "value")
META_KEY = "server_metrics"
MIN_INTERVAL_S = 0.1
PAUSE_S = 0.0001  # a real (timer) sleep between pieces: the loop polls sockets and timers
MAX_BODY = 32 * 1024 * 1024  # a /metrics page larger than this is not an inference engine's
ACCEPT = "text/plain;version=0.0.4;q=1.0, */*;q=0.1"  # the classic text format, not OpenMetrics
# where else `auto` looks when the target's /metrics is not Prometheus text: trtllm-serve mounts
# prometheus_client's app there (tensorrt_llm/serve/openai_server.py) and answers /metrics with JSON
AUTO_ELSEWHERE = ("/prometheus/metrics",)


def _pause() -> None:
    """Let every due timer and socket of the users run: `gevent.sleep(0)` only runs callbacks already
    queued, so a user whose send time or token came due would still wait for the whole parse."""
    gevent.sleep(PAUSE_S)


class ScrapeError(Exception):
    """One scrape failed: a short reason for the counter and the warning."""


# -- options ------------------------------------------------------------------------------------
def resolve(value: str, host: str) -> tuple[str, str]:
    """(`auto` | `url` | `off`, URL) from `--server-metrics` and the target; OptionError when malformed."""
    v = (value or "").strip()
    if v.lower() in (OFF, "none", "no", "false", ""):
        return OFF, ""
    if v.lower() == AUTO:
        return (AUTO, host.rstrip("/") + "/metrics") if host else (OFF, "")
    if not is_http_url(v):
        shown = safe_url(v) or ("the value" if "@" in v else v)  # never echo credentials
        raise OptionError(
            f"--server-metrics: '{shown}' is not a URL (expected http://HOST:PORT/metrics, auto or off)"
        )
    if "@" in urlsplit(v).netloc:
        raise OptionError(
            "--server-metrics: credentials in the URL (user:password@HOST) are not supported: they would "
            "reach logs and the web UI; the API key of --api-key-env is sent when the URL is the target's"
        )
    return "url", v


def interval_of(value: str) -> float:
    s = parse_duration_s(value, "--scrape-interval")
    if s < MIN_INTERVAL_S:
        raise OptionError(f"--scrape-interval: '{value}' must be at least {MIN_INTERVAL_S * 1000:g}ms")
    return s


def same_origin(a: str, b: str) -> bool:
    """The API key goes only where the requests go, never to a third-party metrics URL."""
    try:
        ua, ub = urlsplit(a), urlsplit(b)
        return (ua.scheme, ua.hostname, ua.port) == (ub.scheme, ub.hostname, ub.port)
    except ValueError:
        return False


# -- the scraper --------------------------------------------------------------------------------
class Scraper:
    """Scrapes one URL every `interval_s` into `path` (opened at the first good scrape) and keeps the counts."""

    def __init__(
        self,
        url: str,
        mode: str,
        interval_s: float,
        path: Path,
        headers: dict[str, str] | None = None,
        meta: dict | None = None,
        client: str = "raw",
    ) -> None:
        self.url, self.mode, self.interval_s, self.path = url, mode, interval_s, path
        base = url[: -len("/metrics")] if mode == AUTO and url.endswith("/metrics") else None
        self.elsewhere = [base + p for p in AUTO_ELSEWHERE] if base is not None else []
        self.tried: list[str] = []  # auto: "URL (why not)" for each one given up before the first scrape
        self.opener = opener_like(client, follow_redirects=True)  # the way the load reaches the server
        self.shown = safe_url(url)
        self.timeout_s = max(1.0, min(5.0, interval_s))
        self.headers = {"Accept": ACCEPT, **(headers or {})}
        self.meta = meta if meta is not None else {}
        self.scrapes = self.failures = self.samples = 0
        self.last_error = ""
        self.note = ""
        self.enabled = True
        self.warned = False
        self._fh: TextIO | None = None
        self._writer: Any = None
        self._greenlet: gevent.Greenlet | None = None
        self.publish()

    # one scrape
    def fetch(self) -> tuple[float, str]:
        """(midpoint wall time, body); ScrapeError with a short reason otherwise."""
        req = urllib.request.Request(self.url, headers=self.headers)
        t0 = time.time()
        try:
            with self.opener.open(req, timeout=self.timeout_s) as r:
                body = r.read(MAX_BODY + 1)
        except urllib.error.HTTPError as e:
            raise ScrapeError(f"HTTP {e.code}") from None
        except (urllib.error.URLError, OSError) as e:
            reason = getattr(e, "reason", None) or e
            raise ScrapeError(" ".join(str(reason).split())[:160] or type(e).__name__) from None
        t1 = time.time()
        if len(body) > MAX_BODY:
            raise ScrapeError(f"page larger than {MAX_BODY // (1024 * 1024)} MiB")
        try:
            return (t0 + t1) / 2, body.decode("utf-8")
        except UnicodeDecodeError:
            raise ScrapeError("not UTF-8 text") from None

    def scrape_once(self) -> bool:
        """Fetch, parse, append; count a failure instead of raising. True when rows were written."""
        try:
            t, text = self.fetch()
            stamp = f"{t:.3f}"
            try:
                rows = [(stamp, m, lab, v) for m, lab, v in parse(text, _pause)]
            except ValueError as e:
                raise ScrapeError(f"not Prometheus text ({' '.join(str(e).split())[:100]})") from None
            if not rows:
                raise ScrapeError("no samples on the page")
        except ScrapeError as e:
            if self.mode == AUTO and self.scrapes == 0 and self.elsewhere:
                self.tried.append(f"{self.shown} ({e})")
                self.url = self.elsewhere.pop(0)
                self.shown = safe_url(self.url)
                return self.scrape_once()
            self._failed(str(e))
            return False
        self._write(rows)
        self.scrapes += 1
        self.samples += len(rows)
        self.publish()
        return True

    def _write(self, rows: list[tuple[str, str, str, str]]) -> None:
        if self._fh is None:
            self._fh = open(self.path, "w", newline="", encoding="utf-8")  # noqa: SIM115 - closed in close()
            self._writer = csv.writer(self._fh)
            self._writer.writerow(HEADER)
        self._writer.writerows(rows)
        self._fh.flush()  # a crash loses at most the scrape in progress

    def _failed(self, reason: str) -> None:
        self.failures += 1
        self.last_error = reason
        if self.mode == AUTO and self.scrapes == 0:
            # The target was never shown to serve metrics: not an error, just nothing to scrape.
            self.enabled = False
            tried = ", ".join([*self.tried, f"{self.shown} ({reason})"])
            self.note = f"the target serves no Prometheus /metrics: {tried}; server metrics off"
            log.info("goodput: %s; pass --server-metrics URL to scrape elsewhere", self.note)
        elif not self.warned:
            self.warned = True
            log.warning(
                "goodput: server metrics: scrape of %s failed (%s); the run goes on, failures are counted "
                "in run.json server_metrics",
                self.shown,
                reason,
            )
        self.publish()

    def publish(self) -> None:
        """Into the run's meta (loadgen/run/lifecycle.py writes it to run.json at stop and when the run closes)."""
        self.meta[META_KEY] = {
            "url": self.shown,
            "mode": self.mode,
            "interval_s": self.interval_s,
            "enabled": self.enabled,
            "scrapes": self.scrapes,
            "failures": self.failures,
            "samples": self.samples,
            "last_error": self.last_error,
            "file": CSV_NAME if self.scrapes else None,
            **({"note": self.note} if self.note else {}),
        }

    # the loop
    def start(self) -> None:
        self._greenlet = gevent.spawn(self._loop)

    def _loop(self) -> None:
        due = time.monotonic()
        while self.enabled:
            self.scrape_once()
            due += self.interval_s
            now = time.monotonic()
            if due < now:  # a slow scrape: skip the missed ticks rather than scraping back to back
                due = now + self.interval_s - (now - due) % self.interval_s
            gevent.sleep(due - now)

    def stop(self) -> None:
        """Stop the loop, take a last scrape (the counters at the end of the run) and close the file."""
        if self._greenlet is not None:
            self._greenlet.kill(block=True, timeout=self.timeout_s + 1)
            self._greenlet = None
        if self.enabled:
            self.scrape_once()  # cooperative too: users may still be finishing
        self.close()

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None
        self.publish()


# -- Locust wiring ------------------------------------------------------------------------------
def make_scraper(environment: Any) -> Scraper | None:
    """The scraper for the run that begins (master/local, run folder open), or None (off, refused, worker)."""
    ctx = context.find(environment)
    if ctx is None or ctx.run_dir is None or ctx.refused or ctx.sink is None:
        return None
    opts = environment.parsed_options
    host = environment.host or ""
    try:
        mode, url = resolve(getattr(opts, "server_metrics", AUTO), host)
        interval_s = interval_of(getattr(opts, "scrape_interval", "2s"))
    except OptionError as e:  # web UI: the form may hold what the command line would have refused
        log.error("goodput: %s; server metrics off for this run", e)
        ctx.meta[META_KEY] = {"enabled": False, "note": str(e)}
        return None
    if mode == OFF:
        ctx.meta[META_KEY] = {"enabled": False, "note": "--server-metrics off"}
        return None
    headers = {}
    if same_origin(url, host):  # the key and --header's go only where the requests go
        key = os.environ.get(getattr(opts, "api_key_env", "") or "")
        headers = static_headers(key or None, ctx.extra_headers)
    return Scraper(url, mode, interval_s, ctx.run_dir / CSV_NAME, headers, ctx.meta, opts.client)


def install(events: Any) -> None:
    @events.init_command_line_parser.add_listener
    def _options(parser: Any) -> None:
        add_option(
            parser,
            "output",
            "--server-metrics",
            label="Server metrics URL",
            default=AUTO,
            help="Prometheus URL scraped during the run into server_metrics.csv (default auto: the "
            "target's /metrics when it answers, else its /prometheus/metrics; off to disable)",
            web=True,
        )
        add_option(
            parser,
            "output",
            "--scrape-interval",
            label="Scrape interval",
            web=True,
            default="2s",
            help="Seconds between server-metrics scrapes (default 2s)",
        )

    perrun.install(events, _check, _start, _stop)


def _check(opts: Any, host: str) -> None:
    resolve(opts.server_metrics, host)
    interval_of(opts.scrape_interval)


def _start(environment: Any, ctx: RunContext) -> None:
    ctx.scraper = make_scraper(environment)
    if ctx.scraper is not None:
        ctx.scraper.start()


def _stop(environment: Any, **_: Any) -> None:
    ctx = context.find(environment)
    if ctx is not None and ctx.scraper is not None:
        scraper, ctx.scraper = ctx.scraper, None
        scraper.stop()
