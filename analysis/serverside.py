"""The server's side of one run: the engine's pages, its replicas' and a router's, read from `server_metrics.csv`.

`read` is the one place that decides which samples count: a page several processes answered in turn is
left out and a page that counted another number of requests than the client is named
(analysis/pagecheck.py); the rest gives the engine's figures over the run's window and each level's
(analysis/server.py), each replica's (analysis/replicas.py), the router's own (analysis/router.py) and a
gateway's own TTFT (analysis/gatewaypage.py). A router's or a gateway's page needs no engine page beside
it: where the replicas cannot be reached from the client, theirs are all there is.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from analysis import gatewaypage, pagecheck, replicas, router, server
from analysis.load import Run
from analysis.results import GatewayFigures, RouterFigures, ServerSummary, Step, Throughput


@dataclass
class ServerSide:
    series: server.ServerData | None  # the engine's series (the plots draw them); None without an engine page
    summary: ServerSummary | None  # summary.json `server`
    steps: list[Step]  # the levels, each with its `server` figures where there are any
    warnings: list[str]
    router: RouterFigures | None = None  # summary.json `router`
    gateway_page: GatewayFigures | None = None  # summary.json `gateway_page`


def read(run: Run, tp: Throughput, steps: list[Step]) -> ServerSide:
    """Everything server_metrics.csv says over the run's window and each level's (no file: nothing, the
    levels as they were), and what reading it noticed."""
    samples, warnings = server.load_server_metrics(run.path)
    if samples is None:
        return ServerSide(None, None, steps, warnings)
    url = str((run.meta.get("server_metrics") or {}).get("url", ""))
    samples, routers = pagecheck.drop_routers(samples, url)
    samples, turned = pagecheck.drop(samples, url)
    series, more = server.build(samples)
    warnings += routers + turned + pagecheck.coverage(series, run.df)
    reps = replicas.build(samples)  # each replica's series, once for the run and all its levels
    rd = router.build(samples)
    gw = gatewaypage.build(samples)
    if rd is not None or gw is not None:  # a router's or a gateway's page alone is enough
        more = [w for w in more if not w.startswith(server.NO_ENGINE)]
    summary, levels = None, [None] * len(steps)
    if series is not None:
        summary = server.summarize(series, (tp.t_start_unix, tp.t_end_unix), run.df, run.path)
        summary["replicas"] = replicas.figures(reps, tp.t_start_unix, tp.t_end_unix)
        levels = server.step_figures(series, steps, run.df, run.path)
        for f in levels:
            f["replicas"] = replicas.figures(reps, *f["window"])
        steps = [dataclasses.replace(st, server=f) for st, f in zip(steps, levels, strict=True)]
    spread = router.figures(rd, tp.t_start_unix, tp.t_end_unix, summary["replicas"] if summary else None)
    if spread is not None:
        for st, f in zip(steps, levels, strict=True):
            window = f["window"] if f else [st.t_start_unix, st.t_end_unix]
            one = router.figures(rd, *window, f["replicas"] if f else None)
            spread["steps"].append({"step": st.step, **(one or {}), "steps": []})
        warnings += router.warnings(spread)
    if summary is not None:
        explained = router.policy_starved(spread, summary["replicas"])
        warnings += replicas.starved_warnings(summary["replicas"], explained)
    window = (tp.t_start_unix, tp.t_end_unix)
    gateway = gatewaypage.figures(gw, series, window, run.df, steps, run.path)
    warnings += gatewaypage.warnings(gateway)
    return ServerSide(series, summary, steps, warnings + more, spread, gateway)
