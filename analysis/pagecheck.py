"""Is the scraped page the run's server — all of it, and only this run's? Two checks on `server_metrics.csv`.

**A page that several processes answer in turn** is left out of the figures. A router in front of
replicas may pass `/metrics` on like any other request: vllm-router (and the sglang-router it was
forked from) sends each GET to the next backend in its rotation, so the target's `/metrics` — what
`--server-metrics auto` scrapes — is one replica's page at one scrape and another's at the next; a
Kubernetes Service does the same to a scraper that opens new connections. The counters then fall and
rise from scrape to scrape; read as one engine, each fall looks like a restart, and every figure built
on them (tokens, finished requests, the hit rate, the engine's TTFT) adds up different processes.
The sign: the scrapes at which one of the page's counters (`_total`, histograms' `_count`) fell. A
restart falls once; pages answered in turn fall at a large share of scrapes (two replicas under load:
about every other one). A page is taken as answered in turn when its counters fell at `MIN_FALLS`
scrapes or more and at `MIN_SHARE` of its scrape-to-scrape steps or more. Pages are told apart by
the `instance` label (several `--server-metrics` URLs), else the file is one page.

**A router's own page under an engine's names** is left out too. vLLM production-stack's router
(`vllm_router` of vllm-project/production-stack, the Helm chart's router) answers its `/metrics` —
what `--server-metrics auto` scrapes through it — with `vllm:` names labelled by backend (`server`):
`vllm:num_requests_running` is its own count of the requests it has in prefill or decode there,
`vllm:gpu_prefix_cache_hits_total` a gauge echoing the engine's counter, beside families no vLLM
engine has (`vllm:current_qps`, `vllm:healthy_pods_total`, `vllm:num_incoming_requests_total`,
`vllm:avg_itl`). Read as an engine, its estimates would be called the engine's figures. The sign
is one of those families on the page (`ROUTER_ONLY`).

**A page that counted another number of requests than the client** is named in a warning, its
figures kept. The same rotation can land every scrape on one replica (users in step send an even
number of requests between two scrapes, and round robin over two backends comes back to the same one):
the counters rise steadily and the page is one replica's — half the server's tokens, its cache and
queue for half the load. And a server that others use during the run counts their requests too. The
engine's finished requests from the first scrape to the last (Δ E2E count, else Δ TTFT count) are set
against the client's: under `COVERAGE[0]` of the requests it got answered in full in that span, the
page is part of the server; over `COVERAGE[1]` of every request it sent in the span (whatever became
of them: one the client gave up on may still finish in the engine), others used the server — or a
router in front of it retried. `MIN_GAP` requests apart at least, so the few in flight at either end
are never a finding.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from analysis import windows as win
from analysis.replicas import finished
from analysis.samples import parse_labels
from analysis.server import ServerData

MIN_FALLS = 2  # a restart falls once
MIN_SHARE = 0.1  # of a page's scrape-to-scrape steps
COUNTER_ENDS = ("_total", "_count")
COVERAGE = (0.8, 1.25)  # engine's finished requests / the client's, within which the page is the run's server
MIN_GAP = 10  # requests: a few in flight at either end of the span are not a finding
# families that production-stack's router serves (its services/metrics_service) and no vLLM engine does
ROUTER_ONLY = (
    "vllm:current_qps",
    "vllm:healthy_pods_total",
    "vllm:num_incoming_requests_total",
    "vllm:avg_itl",
)
PRODUCTION_STACK = "vLLM production-stack's router"


def _pages(df: pd.DataFrame) -> np.ndarray:
    """Each row's page: its `instance` label, "" without one (one URL scraped)."""
    if "labels" not in df:
        return np.full(len(df), "", dtype=object)
    codes, uniques = pd.factorize(df["labels"].astype(str))
    inst = np.array([parse_labels(str(x)).get("instance", "") for x in uniques], dtype=object)
    return inst[codes] if len(uniques) else np.full(len(df), "", dtype=object)


def _where(page: str, url: str) -> str:
    """A page as a warning names it: its `instance`, else the one URL scraped (run.json's)."""
    return f"the page of {page}" if page else f"the page at {url or 'the scraped URL'}"


def falls(df: pd.DataFrame, pages: np.ndarray | None = None) -> dict[str, tuple[int, int]]:
    """Per page: (scrapes at which one of its counters fell, its scrape-to-scrape steps)."""
    pages = _pages(df) if pages is None else pages
    out: dict[str, tuple[int, int]] = {}
    is_counter = df["metric"].astype(str).str.endswith(COUNTER_ENDS).to_numpy()
    for page in pd.unique(pages):
        mine = pages == page
        steps = max(0, int(pd.unique(df["t"].to_numpy()[mine]).size) - 1)
        c = df[mine & is_counter]
        if c.empty or steps == 0:
            out[str(page)] = (0, steps)
            continue
        key = pd.factorize(c["metric"].astype(str) + "\x1f" + c["labels"].astype(str))[0]
        t, v = c["t"].to_numpy(dtype=float), c["value"].to_numpy(dtype=float)
        order = np.lexsort((t, key))
        key, t, v = key[order], t[order], v[order]
        fell = (key[1:] == key[:-1]) & (v[1:] < v[:-1])
        out[str(page)] = (int(np.unique(t[1:][fell]).size), steps)
    return out


def answered_in_turn(fell: int, steps: int) -> bool:
    return fell >= MIN_FALLS and fell >= MIN_SHARE * steps


def drop(df: pd.DataFrame, url: str = "") -> tuple[pd.DataFrame, list[str]]:
    """`df` without the pages several processes answered in turn, and a warning for each one dropped.
    `url` names the page when the file holds one (run.json `server_metrics.url`)."""
    if df.empty:
        return df, []
    pages = _pages(df)
    found = {p: n for p, n in falls(df, pages).items() if answered_in_turn(*n)}
    if not found:
        return df, []
    warnings = []
    for page, (fell, steps) in found.items():
        warnings.append(
            f"server_metrics.csv: {_where(page, url)} went back at {fell} of {steps} scrapes — its counters fell and "
            "rose again, so different processes answered it in turn (a router such as vllm-router passing "
            "/metrics to one backend at a time, or a Service spreading connections); its figures would mix "
            "them and are left out: scrape each replica's own page and the router's own "
            "(--server-metrics URL,URL,…)"
        )
    return df[~np.isin(pages, list(found))].reset_index(drop=True), warnings


def drop_routers(df: pd.DataFrame, url: str = "") -> tuple[pd.DataFrame, list[str]]:
    """`df` without the pages of a router that uses vLLM's names for its own figures, a warning for each."""
    if df.empty:
        return df, []
    pages = _pages(df)
    found = sorted(set(pages[df["metric"].isin(ROUTER_ONLY).to_numpy()]))
    warnings = [
        f"server_metrics.csv: {_where(page, url)} is "
        f"{PRODUCTION_STACK} (`vllm:current_qps`, `vllm:healthy_pods_total`): its `vllm:` names hold its own "
        "count of each backend's requests in flight and echoes of the engines' counters, not an engine's "
        "figures, and are left out of them: scrape each engine's own page beside it (--server-metrics URL,URL,…)"
        for page in found
    ]
    return (df[~np.isin(pages, found)].reset_index(drop=True), warnings) if found else (df, [])


def coverage(d: ServerData | None, df: pd.DataFrame) -> list[str]:
    """A warning when the engine's page finished far fewer requests than the client got answered in the
    same span (it is part of the server), or far more than the client even sent in it (others used the
    server too, or something in front of it sent some twice). The second bound counts every request
    sent, whatever became of it: one the client gave up on may still have finished in the engine."""
    if d is None or len(d.times) < 2:
        return []
    a, b = float(d.times[0]), float(d.times[-1])
    server_n = finished(d, [a, b])
    if server_n is None:
        return []
    answered = int(win.completed_in(df, df["ok"].to_numpy(dtype=bool), a, b).sum())
    start = df["t_start_unix"].to_numpy(dtype=float)
    sent = int(((start >= a) & (start <= b)).sum())
    head = f"server_metrics.csv: the engine's page counted {server_n:.0f} finished requests from its first scrape to its last"
    if answered and server_n < COVERAGE[0] * answered and answered - server_n >= MIN_GAP:
        return [
            f"{head}, the client {answered} answered — the page is part of the server (one replica of several "
            "behind a router or a Service?): its figures are that part's; scrape each replica's own page "
            "(--server-metrics URL,URL,…)"
        ]
    if sent and server_n > COVERAGE[1] * sent and server_n - sent >= MIN_GAP:
        return [
            f"{head}, the client sent {sent} — others used the server during the run (or a router or gateway in "
            "front of it sent some twice): its figures are not this run's alone"
        ]
    return []
