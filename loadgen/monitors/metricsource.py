"""One `/metrics` URL of the server: fetched, parsed into `(metric, labels, value)` rows, its counts kept.

The scraper (loadgen/monitors/servermetrics.py) holds one `Source` per URL of `--server-metrics` and
asks each for its page once per round. A source never raises: a failed fetch is counted with a short
reason. With `auto` (one URL, the target's), a source that has never served Prometheus text tries the
places in `AUTO_ELSEWHERE` before it gives up and turns itself off.

Several URLs are the replicas of one server (behind a router or a Kubernetes Service, each pod's own
/metrics): each sample then gets an `instance` label naming its URL as Prometheus' own scraper does
(`HOST:PORT`; with the path too where two URLs share a host and port), and a page's own `instance`
label moves to `exported_instance` (Prometheus' `honor_labels: false`), so replicas never merge.
"""

from __future__ import annotations

import logging
import time
import urllib.error
import urllib.request
from urllib.parse import urlsplit

import gevent

from loadgen.monitors.promtext import parse
from loadgen.transport.urls import opener_like, safe_url

log = logging.getLogger("goodput")

AUTO = "auto"
PAUSE_S = 0.0001  # a real (timer) sleep between pieces: the loop polls sockets and timers
MAX_BODY = 32 * 1024 * 1024  # a /metrics page larger than this is not an inference engine's
ACCEPT = "text/plain;version=0.0.4;q=1.0, */*;q=0.1"  # the classic text format, not OpenMetrics
# where else `auto` looks when the target's /metrics is not Prometheus text: trtllm-serve mounts
# prometheus_client's app there (tensorrt_llm/serve/openai_server.py) and answers /metrics with JSON;
# NVIDIA NIM for LLMs serves its page under its API's prefix (its observability guide: /v1/metrics)
AUTO_ELSEWHERE = ("/prometheus/metrics", "/v1/metrics")
Row = tuple[str, str, str]  # metric, labels, value (the CSV's columns after `t`)


def pause() -> None:
    """Let every due timer and socket of the users run: `gevent.sleep(0)` only runs callbacks already
    queued, so a user whose send time or token came due would still wait for the whole parse."""
    gevent.sleep(PAUSE_S)


class ScrapeError(Exception):
    """One scrape failed: a short reason for the counter and the warning."""


def instance_names(urls: list[str]) -> list[str]:
    """Each URL's `instance` label: `HOST:PORT` as Prometheus names a target, with the path where two
    URLs would otherwise share a name (one host's replicas behind a path-routing gateway)."""
    nets = [urlsplit(u).netloc for u in urls]
    return [n if nets.count(n) == 1 else n + urlsplit(u).path for n, u in zip(nets, urls, strict=True)]


class Source:
    """One URL: `rows()` fetches and parses its page (ScrapeError on failure); the counts and the
    first failure's warning are kept here, summed into run.json by the scraper."""

    def __init__(
        self, url: str, mode: str, timeout_s: float, headers: dict[str, str], client: str, instance: str = ""
    ) -> None:
        self.url, self.mode, self.timeout_s, self.instance = url, mode, timeout_s, instance
        base = url[: -len("/metrics")] if mode == AUTO and url.endswith("/metrics") else None
        self.elsewhere = [base + p for p in AUTO_ELSEWHERE] if base is not None else []
        self.tried: list[str] = []  # auto: "URL (why not)" for each one given up before the first scrape
        self.opener = opener_like(client, follow_redirects=True)  # the way the load reaches the server
        self.shown = safe_url(url)
        self.headers = {"Accept": ACCEPT, **headers}
        self.scrapes = self.failures = self.samples = 0
        self.last_error = self.note = ""
        self.enabled, self.warned = True, False

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

    def rows(self, text: str) -> list[Row]:
        """The page's samples (this URL's `instance` label added when there are several URLs)."""
        extra = {"instance": self.instance} if self.instance else None
        try:
            rows = list(parse(text, pause, extra))
        except ValueError as e:
            raise ScrapeError(f"not Prometheus text ({' '.join(str(e).split())[:100]})") from None
        if not rows:
            raise ScrapeError("no samples on the page")
        return rows

    def scrape(self) -> tuple[float, list[Row]] | None:
        """(midpoint time, rows) of one good scrape, else None with the failure counted."""
        try:
            t, text = self.fetch()
            rows = self.rows(text)
        except ScrapeError as e:
            if self.mode == AUTO and self.scrapes == 0 and self.elsewhere:
                self.tried.append(f"{self.shown} ({e})")
                self.url = self.elsewhere.pop(0)
                self.shown = safe_url(self.url)
                return self.scrape()
            self.failed(str(e))
            return None
        self.scrapes += 1
        self.samples += len(rows)
        return t, rows

    def failed(self, reason: str) -> None:
        self.failures += 1
        self.last_error = reason
        if self.mode == AUTO and self.scrapes == 0:
            # The target was never shown to serve metrics: not an error, just nothing to scrape.
            self.enabled = False
            tried = ", ".join([*self.tried, f"{self.shown} ({reason})"])
            self.note = f"the target serves no Prometheus /metrics: {tried}; server metrics off"
            log.info(
                "goodput: %s; pass --server-metrics URL to scrape elsewhere (a router — vllm-router, the SGLang "
                "Model Gateway — keeps its own page on its --prometheus-port, 29000 by default; each replica "
                "serves its own)",
                self.note,
            )
        elif not self.warned:
            self.warned = True
            log.warning(
                "goodput: server metrics: scrape of %s failed (%s); the run goes on, failures are counted "
                "in run.json server_metrics",
                self.shown,
                reason,
            )

    def counts(self) -> dict:
        """This URL's line in run.json `server_metrics.instances` (several URLs)."""
        return {
            "instance": self.instance,
            "url": self.shown,
            "scrapes": self.scrapes,
            "failures": self.failures,
            "samples": self.samples,
            "last_error": self.last_error,
        }
