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

`--server-metrics URL,URL,…` scrapes the replicas of one server (each pod's or process's own
/metrics behind a router): all in one round, at once, the round's rows stamped with one `t` (the mean
of the exchanges' midpoints) so the analysis lines the replicas' gauges up scrape by scrape, and each
sample labelled `instance=HOST:PORT` (loadgen/monitors/metricsource.py). The analysis sums them into
the server's figures and keeps each replica's apart (analysis/replicas.py). `dns+http://NAME:PORT/PATH`
stands for every address NAME has, looked up before each round (loadgen/monitors/discovery.py).

What a page is sent: the API key and `--header`'s only where the requests go (the target's origin),
and `--server-metrics-header`'s to every page (each URL, each address a name has, `auto`'s) and never
with a request: a page may want credentials of its own (the llm-d endpoint picker's authenticated
/metrics, a kube-rbac-proxy in front of vLLM's); one of the same name replaces the key's there.

A failed scrape never stops the run: it is counted, warned about once, and reported in run.json
`server_metrics` (URL without credentials, scrapes, failures, last error; per URL under `instances`
when there are several). With the default `--server-metrics auto`, a target that serves no
Prometheus text at its first scrape turns the scraper off quietly (noted in run.json) — after trying
`/prometheus/metrics`, where TensorRT-LLM's `trtllm-serve` serves its Prometheus page (its `/metrics`
is JSON iteration stats), and `/v1/metrics`, NVIDIA NIM's. The parser yields to the event loop every `CHUNK_SAMPLES`
samples, so on a local runner no slice of a scrape holds the users' greenlets for more than a few ms
(bench/servermetrics_cost.py measures it).
"""

from __future__ import annotations

import csv
import logging
import os
import time
from collections.abc import Callable
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
from loadgen.monitors.discovery import DnsName, Resolver, is_dns, lookup
from loadgen.monitors.metricsource import AUTO, Row, Source, instance_names
from loadgen.transport import headers as extra_headers
from loadgen.transport.headers import overlay, static_headers
from loadgen.transport.urls import is_http_url, safe_url

log = logging.getLogger("goodput")

OFF = "off"
CSV_NAME = "server_metrics.csv"
HEADER = ("t", "metric", "labels", "value")
META_KEY = "server_metrics"
MIN_INTERVAL_S = 0.1
MAX_URLS = 64  # replicas of one server, not a fleet
HEADER_OPTION = "--server-metrics-header"


# -- options ------------------------------------------------------------------------------------
def _one_url(v: str) -> str:
    if is_dns(v):
        DnsName(v)  # checked here, looked up at each round
        return v
    if not is_http_url(v):
        shown = safe_url(v) or ("the value" if "@" in v else v)  # never echo credentials
        raise OptionError(
            f"--server-metrics: '{shown}' is not a URL (expected http://HOST:PORT/metrics, a comma-separated "
            "list of them, dns+http://NAME:PORT/metrics for every address of a name, auto or off)"
        )
    if "@" in urlsplit(v).netloc:
        raise OptionError(
            "--server-metrics: credentials in the URL (user:password@HOST) are not supported: they would "
            "reach logs and the web UI; the API key of --api-key-env is sent when the URL is the target's"
        )
    return v


def scrape_headers(values: list[str] | None) -> list[tuple[str, str]]:
    """`--server-metrics-header`s parsed as `--header`s are (names and values as written)."""
    return extra_headers.parse(values, option=HEADER_OPTION)


def resolve(value: str, host: str) -> tuple[str, list[str]]:
    """(`auto` | `url` | `off`, URLs) from `--server-metrics` and the target; OptionError when malformed."""
    v = (value or "").strip()
    if v.lower() in (OFF, "none", "no", "false", ""):
        return OFF, []
    if v.lower() == AUTO:
        return (AUTO, [host.rstrip("/") + "/metrics"]) if host else (OFF, [])
    urls = [_one_url(x.strip()) for x in v.split(",") if x.strip()]
    if not urls:
        raise OptionError(
            f"--server-metrics: '{v}' names no URL (expected http://HOST:PORT/metrics, auto or off)"
        )
    if len(urls) > MAX_URLS:
        raise OptionError(
            f"--server-metrics: {len(urls)} URLs; at most {MAX_URLS} (the replicas of one server)"
        )
    if len(set(urls)) < len(urls):
        twice = next(u for u in urls if urls.count(u) > 1)
        raise OptionError(f"--server-metrics: '{safe_url(twice)}' is given twice; each replica's URL once")
    return "url", urls


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
    """Scrapes its URLs every `interval_s` into `path` (opened at the first good scrape), one round at a
    time, and keeps the counts in the run's meta. `headers_for(url)` gives the headers a URL may get
    (the key's, where the requests go); `headers` (`--server-metrics-header`) go to every page, over those."""

    def __init__(
        self,
        urls: str | list[str],
        mode: str,
        interval_s: float,
        path: Path,
        headers_for: Callable[[str], dict[str, str]] | None = None,
        meta: dict | None = None,
        client: str = "raw",
        resolver: Resolver = lookup,
        headers: dict[str, str] | None = None,
    ) -> None:
        urls = [urls] if isinstance(urls, str) else list(urls)
        self.mode, self.interval_s, self.path = mode, interval_s, path
        self.timeout_s = max(1.0, min(5.0, interval_s))
        self.client, self.headers_for = client, headers_for or (lambda _: {})
        self.headers = dict(headers or {})
        self.names = [DnsName(u, resolver) for u in urls if is_dns(u)]  # replicas found by DNS each round
        urls = [u for u in urls if not is_dns(u)]
        labels = instance_names(urls) if len(urls) > 1 or self.names else [""] * len(urls)
        self.sources = [
            Source(u, mode, self.timeout_s, overlay(self.headers_for(u), self.headers), client, name)
            for u, name in zip(urls, labels, strict=True)
        ]
        self._discovered: set[str] = set()  # the URLs of the addresses the names have had
        self._gone: set[str] = set()  # of those, the ones a name no longer has
        self._too_many = False
        self.meta = meta if meta is not None else {}
        self.scrapes = 0
        self._fh: TextIO | None = None
        self._writer: Any = None
        self._greenlet: gevent.Greenlet | None = None
        self.publish()

    @property
    def enabled(self) -> bool:
        return bool(self.names) or any(s.enabled for s in self.sources)

    @property
    def failures(self) -> int:
        return sum(s.failures for s in self.sources)

    def scrape_once(self) -> bool:
        """One round: every live URL at once, the good pages' rows under one stamp. True when rows were written."""
        self.discover()
        live = [s for s in self.sources if s.enabled and s.url not in self._gone]
        if len(live) == 1:
            got = [live[0].scrape()]
        else:
            jobs = [gevent.spawn(s.scrape) for s in live]
            gevent.joinall(jobs)
            got = [j.value for j in jobs]
        good = [x for x in got if x is not None]
        if good:
            stamp = f"{sum(t for t, _ in good) / len(good):.3f}"
            rows: list[Row] = [r for _, page in good for r in page]
            self._write([(stamp, *r) for r in rows])
            self.scrapes += 1
        self.publish()
        return bool(good)

    def discover(self) -> None:
        """Each DNS name looked up again: a source for every new address, the vanished ones left out."""
        if not self.names:
            return
        wanted: set[str] = set()
        for d in self.names:
            for address in d.resolve():
                url, label = d.url_of(address)
                wanted.add(url)
                if url in self._discovered or any(src.url == url for src in self.sources):
                    continue
                if len(self.sources) >= MAX_URLS:
                    if not self._too_many:
                        self._too_many = True
                        log.warning(
                            "goodput: server metrics: over %d pages; %s and later not scraped", MAX_URLS, url
                        )
                    continue
                # an address found by DNS is never the target's origin (no API key): the page's own only
                self.sources.append(
                    Source(url, "url", self.timeout_s, dict(self.headers), self.client, label)
                )
                self._discovered.add(url)
        self._gone = self._discovered - wanted

    def _write(self, rows: list[tuple[str, str, str, str]]) -> None:
        if self._fh is None:
            self._fh = open(self.path, "w", newline="", encoding="utf-8")  # noqa: SIM115 - closed in close()
            self._writer = csv.writer(self._fh)
            self._writer.writerow(HEADER)
        self._writer.writerows(rows)
        self._fh.flush()  # a crash loses at most the scrape in progress

    def publish(self) -> None:
        """Into the run's meta (loadgen/run/lifecycle.py writes it to run.json at stop and when the run closes)."""
        src = self.sources
        several = len(src) > 1 or bool(self.names)
        failed = [s for s in src if s.last_error]
        last = "" if not failed else (f"{failed[-1].shown}: " if several else "") + failed[-1].last_error
        notes = [s.note for s in src if s.note]
        listed = [s.shown for s in src if s.url not in self._discovered] + [d.value for d in self.names]
        self.meta[META_KEY] = {
            "url": ", ".join(listed),
            "mode": self.mode,
            "interval_s": self.interval_s,
            "enabled": self.enabled,
            "scrapes": self.scrapes,
            "failures": self.failures,
            "samples": sum(s.samples for s in src),
            "last_error": last,
            "file": CSV_NAME if self.scrapes else None,
            **({"note": "; ".join(notes)} if notes else {}),
            **({"headers": list(self.headers)} if self.headers else {}),  # names, never a value
            **({"instances": [{**s.counts(), **self._found(s.url)} for s in src]} if several else {}),
            **({"lookups": [d.counts() for d in self.names]} if self.names else {}),
        }

    def _found(self, url: str) -> dict:
        """An address a DNS name gave: `discovered`, and `gone` once the name no longer has it."""
        if url not in self._discovered:
            return {}
        return {"discovered": True, **({"gone": True} if url in self._gone else {})}

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
        mode, urls = resolve(getattr(opts, "server_metrics", AUTO), host)
        interval_s = interval_of(getattr(opts, "scrape_interval", "2s"))
        own = ctx.scrape_headers
    except OptionError as e:  # web UI: the form may hold what the command line would have refused
        log.error("goodput: %s; server metrics off for this run", e)
        ctx.meta[META_KEY] = {"enabled": False, "note": str(e)}
        return None
    if mode == OFF:
        ctx.meta[META_KEY] = {"enabled": False, "note": "--server-metrics off"}
        return None
    key = os.environ.get(getattr(opts, "api_key_env", "") or "")
    ours = static_headers(key or None, ctx.extra_headers)

    def headers_for(url: str) -> dict[str, str]:
        return (
            dict(ours) if same_origin(url, host) else {}
        )  # the key and --header's go only where the requests go

    path = ctx.run_dir / CSV_NAME
    return Scraper(urls, mode, interval_s, path, headers_for, ctx.meta, opts.client, headers=own)


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
            "target's /metrics when it answers, else its /prometheus/metrics, else its /v1/metrics; off to disable); a "
            "comma-separated list scrapes each replica of a server behind a router, each labelled instance; "
            "dns+http://NAME:PORT/metrics scrapes every address NAME has, looked up each round (a headless Service)",
            web=True,
        )
        add_option(
            parser,
            "output",
            HEADER_OPTION,
            label="Server metrics header",
            action="append",
            default=None,
            metavar="'NAME: VALUE'",
            help="A header sent with every server-metrics scrape, never with the requests (repeatable), "
            "e.g. 'Authorization: Bearer $METRICS_TOKEN' for a page that wants credentials of its own: a $VAR "
            "is read from the environment, it replaces the key's or a --header's of the same name, and only "
            "names reach run.json",
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
    extra_headers.check_set(
        scrape_headers(getattr(opts, "server_metrics_header", None)), option=HEADER_OPTION
    )


def _start(environment: Any, ctx: RunContext) -> None:
    ctx.scraper = make_scraper(environment)
    if ctx.scraper is not None:
        ctx.scraper.start()


def _stop(environment: Any, **_: Any) -> None:
    ctx = context.find(environment)
    if ctx is not None and ctx.scraper is not None:
        scraper, ctx.scraper = ctx.scraper, None
        scraper.stop()
