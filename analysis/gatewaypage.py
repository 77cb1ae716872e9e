"""A gateway's own page: the TTFT it timed between the client and the engine (OpenTelemetry's GenAI metrics).

An AI gateway in front of the engines times each request itself. Envoy AI Gateway (its external
processor's admin port, 1064, `/metrics`) and the others that follow OpenTelemetry's GenAI semantic
conventions keep `gen_ai.server.time_to_first_token` — from the request's headers reaching the gateway
to the first token passing back through it — and `gen_ai.server.request.duration`, to the last; the
SGLang Model Gateway in gRPC mode, where it tokenizes for its workers, keeps its own (`SMG_GRPC`). Scraped
beside the engine's page, it cuts the client's TTFT in three: the client and the network up to the
gateway (client − gateway), the gateway and whatever stands behind it up to the engine — its filters,
an endpoint picker, a second hop (gateway − engine) — and the engine's own TTFT.

Each cut is taken as the client-vs-server gap is (analysis/server.py, one definition): the gateway's
histogram is read as an engine's over the same windows (`server.build` with `GENAI`'s names), the
client's rows are picked by when their first token came and weighted like the interpolated counters,
the span stops before the first request the load generator cancelled, and the engine's mean is taken
over that same span. Prometheus names as OpenTelemetry's exporter writes them (dots to underscores, the
unit as a suffix: `gen_ai_server_time_to_first_token_seconds`); a page without the suffix is read too.
Token counts (`gen_ai.client.token.usage`, by `gen_ai_token_type`) are the engine's `usage` passed on:
the rows already hold them.
"""

from __future__ import annotations

from pathlib import Path
from typing import cast

import pandas as pd

from analysis import server
from analysis.engines import Engine
from analysis.results import GatewayFigures, GatewayLevel, ServerFigures, Step

SOURCE = "OpenTelemetry GenAI metrics"
# a gateway on the requests' path times each first token before the client sees it: a cut below
# −max(AHEAD_S, AHEAD_SHARE × the client's TTFT) says the page timed other requests
AHEAD_S, AHEAD_SHARE = 0.005, 0.1
GENAI = Engine(
    name=SOURCE,
    prefix="gen_ai_",
    running=(),
    waiting=(),
    ttft=("gen_ai_server_time_to_first_token_seconds", "gen_ai_server_time_to_first_token"),
    e2e=("gen_ai_server_request_duration_seconds", "gen_ai_server_request_duration"),
)
# the SGLang Model Gateway in gRPC mode (it tokenizes and detokenizes itself, the workers speak gRPC) times
# each streamed request's first token: `smg_router_ttft_seconds` — for prefill/decode pairs only the decode
# leg, so its `smg_pd_ttft_seconds` (dispatch → the decode answer's head: what the client waits) comes first
SMG_GRPC = Engine(
    name="SGLang Model Gateway, gRPC mode",
    prefix="smg_",
    running=(),
    waiting=(),
    ttft=("smg_pd_ttft_seconds", "smg_router_ttft_seconds"),
    e2e=("smg_router_generation_duration_seconds",),
)
GATEWAYS = (GENAI, SMG_GRPC)


def build(df: pd.DataFrame | None) -> server.ServerData | None:
    """The gateway's TTFT and duration series from its page in `df` (None: no such page, or no TTFT)."""
    if df is None or df.empty:
        return None
    for gateway in GATEWAYS:
        mine = df[df["metric"].str.startswith(gateway.prefix)]
        d, _ = server.build(mine, gateway) if not mine.empty else (None, [])
        if d is not None and "ttft_count" in d.counters:
            return d
    return None


def _level(fig: ServerFigures, gap: dict, engine: server.ServerData | None) -> GatewayLevel:
    """One window's cut of the TTFT: the gateway's figures, the client's and the engine's means over the
    span they are compared on."""
    cmp = gap.get("ttft_compare")
    engine_mean = None
    if cmp is not None and engine is not None:
        a, b = cmp["window"]
        engine_mean = server.ratio(
            server.increase(engine, "ttft_sum", a, b), server.increase(engine, "ttft_count", a, b)
        )
    gateway = cmp["server_mean_s"] if cmp else None
    return GatewayLevel(
        requests=fig["server_ttft_count"],
        ttft_mean_s=fig["server_ttft_mean_s"],
        ttft_p50_s=fig["server_ttft_p50_s"],
        ttft_p90_s=fig["server_ttft_p90_s"],
        ttft_p99_s=fig["server_ttft_p99_s"],
        e2e_mean_s=fig["server_e2e_mean_s"],
        compare_window=cmp["window"] if cmp else None,
        client_ttft_mean_s=cmp["client_mean_s"] if cmp else None,
        gateway_ttft_compared_s=gateway,
        engine_ttft_mean_s=engine_mean,
        client_minus_gateway_ttft_s=gap.get("client_minus_server_ttft_s"),
        gateway_minus_engine_ttft_s=gateway - engine_mean if gateway is not None and engine_mean is not None else None,
    )  # fmt: skip


def figures(
    g: server.ServerData | None,
    engine: server.ServerData | None,
    window: tuple[float, float],
    df: pd.DataFrame,
    steps: list[Step],
    run_dir: Path,
) -> GatewayFigures | None:
    """summary.json `gateway_page`: the run window's cut and each level's (None without the page)."""
    if g is None:
        return None
    fig = server.window_figures(g, *window)
    whole = _level(fig, server.client_gap(fig, g, df, server.first_cancelled_send(df)), engine)
    levels = server.step_figures(g, steps, df, run_dir)
    per_step = [
        {"step": st.step, **_level(cast(ServerFigures, f), cast(dict, f), engine)}
        for st, f in zip(steps, levels, strict=True)
    ]
    return GatewayFigures(
        source=g.engine.name, metric=g.sources["ttft"], window=list(window), **whole, steps=per_step
    )


def warnings(g: GatewayFigures | None) -> list[str]:
    """A line when the gateway's page timed first tokens clearly later than the client saw them over the
    same span: it is not on these requests' path (another replica of the gateway, a page shared with
    others' traffic), so its cut is not this run's."""
    if g is None or g["client_minus_gateway_ttft_s"] is None or g["client_ttft_mean_s"] is None:
        return []
    gap, client = g["client_minus_gateway_ttft_s"], g["client_ttft_mean_s"]
    if gap >= -max(AHEAD_S, AHEAD_SHARE * client):
        return []
    return [
        f"server_metrics.csv: the gateway's page ({g['metric']}) timed the first tokens {-gap * 1e3:.1f} ms later "
        f"on average than the client saw them ({client * 1e3:.1f} ms): a gateway on these requests' path times "
        "them earlier, so that page timed others (another replica of the gateway, or a page shared with other "
        "traffic) and its cut of the TTFT is not this run's"
    ]
