"""A gateway's own TTFT page (analysis/gatewaypage.py) against truth that is known: a synthetic run whose
every request's first token the gateway timed 10 ms before the client saw it and the engine 15 ms
before the gateway at the first level, 45 ms at the second (a queue in front of the engine that grows
with the load; scrapes on the levels' edges, so each level's requests are its own) — each cut must come out exactly; and Envoy AI Gateway's page as its source declares it
(tests/fixtures), read as the increase from an all-zero scrape so every figure is the page's own."""

from __future__ import annotations

import re

import pandas as pd
import pytest

from analysis import gatewaypage
from analysis.render import gatewaypage as render
from tests.support.metric_pages import FIX
from tests.support.synthetic import T0
from tests.unit.analysis.test_models import analyze, two_models
from tests.unit.analysis.test_replicas import write_metrics
from tests.unit.analysis.test_router import page_frame

TO_GATEWAY, BEHIND = 0.01, (0.015, 0.045)  # client − gateway; gateway − engine at level 0, level 1


GENAI_TTFT = "gen_ai_server_time_to_first_token_seconds"


def three_points(run_dir, gateway: bool = True, engine: bool = True, base_gw: str = GENAI_TTFT) -> None:
    """server_metrics.csv from the run's own rows: at each 1 s scrape, the engine's and the gateway's
    TTFT histograms hold every first token that came by then, each shorter by its own part."""
    rows = pd.read_csv(run_dir / "requests.csv")
    rows = rows[rows["ttft_s"].notna()]
    first = (rows["t_start_unix"] + rows["ttft_s"]).to_numpy()
    ttft, step = rows["ttft_s"].to_numpy(), rows["step"].to_numpy()
    out = []
    for k in range(23):
        t = T0 - 1.0 + k
        came = first <= t
        gw = ttft[came] - TO_GATEWAY
        en = gw - [BEHIND[s] for s in step[came]]
        if gateway:
            out += [[t, base_gw + "_count", "model=m", float(came.sum())], [t, base_gw + "_sum", "model=m", float(gw.sum())]]  # fmt: skip
        if engine:
            base = "vllm:time_to_first_token_seconds"
            out += [[t, base + "_count", "engine=0", float(came.sum())], [t, base + "_sum", "engine=0", float(en.sum())], [t, "vllm:num_requests_running", "engine=0", 1.0]]  # fmt: skip
    write_metrics(run_dir, out)


def test_the_clients_ttft_is_cut_at_the_gateway_and_at_the_engine(tmp_path) -> None:
    run = two_models(tmp_path / "run")
    three_points(run)
    s = analyze(run)
    g = s.gateway_page
    assert g is not None and g["source"] == "OpenTelemetry GenAI metrics"
    assert g["metric"] == "gen_ai_server_time_to_first_token_seconds"
    assert g["client_minus_gateway_ttft_s"] == pytest.approx(TO_GATEWAY)
    assert g["client_ttft_mean_s"] - g["gateway_ttft_compared_s"] == pytest.approx(TO_GATEWAY)
    assert BEHIND[0] < g["gateway_minus_engine_ttft_s"] < BEHIND[1]  # the run: both levels
    assert g["gateway_ttft_compared_s"] - g["engine_ttft_mean_s"] == pytest.approx(
        g["gateway_minus_engine_ttft_s"]
    )
    by = {st["step"]: st for st in g["steps"]}
    for k in (0, 1):
        assert by[k]["client_minus_gateway_ttft_s"] == pytest.approx(TO_GATEWAY)
        assert by[k]["gateway_minus_engine_ttft_s"] == pytest.approx(BEHIND[k])
    assert "gateway_page" in s.to_dict() and s.to_dict()["gateway_page"]["steps"] == g["steps"]
    text = render.line(g)
    assert text.startswith(f"Gateway (OpenTelemetry GenAI metrics, {g['requests']:.0f} requests): TTFT mean ")
    assert "ms up to the gateway, " in text and "ms from it to the engine and back, " in text
    assert render.at_level(g, 1) == (
        f"by the gateway's page, the client's TTFT {render.fmt.ms(by[1]['client_ttft_mean_s'])} ms: {render.fmt.ms(by[1]['client_minus_gateway_ttft_s'])} ms up "
        f"to the gateway, 45.0 ms from it to the engine and back, {render.fmt.ms(by[1]['engine_ttft_mean_s'])} ms in the engine"
    )  # fmt: skip
    assert render.markdown(s)[1] == "## Gateway (its own metrics page)" and len(render.step_rows(g, s)) == 2
    assert not [w for w in s.warnings if "gateway's page" in w]  # on the path: timed before the client
    late = dict(g, client_minus_gateway_ttft_s=-0.03, client_ttft_mean_s=0.2)
    assert gatewaypage.warnings(late)[0].startswith(
        "server_metrics.csv: the gateway's page (gen_ai_server_time_to_first_token_seconds) timed the first "
        "tokens 30.0 ms later on average than the client saw them (200.0 ms)"
    )
    assert gatewaypage.warnings(dict(late, client_minus_gateway_ttft_s=-0.015)) == []  # within 10 % of 200 ms
    assert gatewaypage.warnings(None) == []


def test_a_gateways_page_alone_gives_its_cut_from_the_client_and_no_engine_warning(tmp_path) -> None:
    run = two_models(tmp_path / "run")
    three_points(run, engine=False)
    s = analyze(run)
    g = s.gateway_page
    assert g is not None and g["client_minus_gateway_ttft_s"] == pytest.approx(TO_GATEWAY)
    assert g["engine_ttft_mean_s"] is None and g["gateway_minus_engine_ttft_s"] is None
    assert render.line(g).endswith(
        "ms up to the gateway, " + render.fmt.ms(g["gateway_ttft_compared_s"]) + " ms from there on."
    )
    assert s.server is None and not [w for w in s.warnings if "no vLLM, SGLang" in w]


def test_without_a_gateways_page_there_is_no_key(tmp_path) -> None:
    run = two_models(tmp_path / "run")
    three_points(run, gateway=False)
    s = analyze(run)
    assert s.gateway_page is None and "gateway_page" not in s.to_dict() and render.markdown(s) == []
    assert gatewaypage.build(None) is None


def test_envoy_ai_gateways_page_gives_its_own_ttft_and_duration() -> None:
    text = (FIX / "envoy-ai-gateway-metrics.txt").read_text()

    def total(metric: str) -> float:
        return sum(float(v) for v in re.findall(rf"^{metric}\{{[^}}]*\}} (\S+)$", text, re.M))

    g = gatewaypage.build(page_frame("envoy-ai-gateway-metrics.txt"))
    assert g is not None and g.sources["ttft"] == "gen_ai_server_time_to_first_token_seconds"
    f = gatewaypage.server.window_figures(g, 0.0, 10.0)
    base, e2e = "gen_ai_server_time_to_first_token_seconds", "gen_ai_server_request_duration_seconds"
    assert f["server_ttft_count"] == total(base + "_count") > 0
    assert f["server_ttft_mean_s"] == pytest.approx(total(base + "_sum") / total(base + "_count"))
    assert f["server_e2e_mean_s"] == pytest.approx(total(e2e + "_sum") / total(e2e + "_count"))
    assert (
        0.0 < f["server_ttft_p50_s"] < f["server_ttft_p90_s"] <= f["server_ttft_p99_s"] <= 0.5
    )  # its buckets
    unsuffixed = page_frame("envoy-ai-gateway-metrics.txt")
    unsuffixed["metric"] = unsuffixed["metric"].str.replace("_seconds_", "_")  # an exporter without units
    g2 = gatewaypage.build(unsuffixed)
    assert g2 is not None and g2.sources["ttft"] == "gen_ai_server_time_to_first_token"


def test_a_comparison_shows_the_gateways_part_and_what_the_picker_refused(tmp_path) -> None:
    """Not ranked (where the time went and what was shed, beside the figures they bought); blank for a run
    without such pages, and the columns shown only where some run has them."""
    from analysis.compare import METRICS, compare, shown
    from analysis.render.comparison import COLUMNS
    from tests.unit.analysis.test_epp import epp_rows
    from tests.unit.analysis.test_models import CHAT

    cut = two_models(tmp_path / "cut" / "run")
    three_points(cut)
    picked = two_models(tmp_path / "picked" / "run")
    write_metrics(picked, [[T0 + t, m, lab, v] for t, m, lab, v in epp_rows()])
    plain = two_models(tmp_path / "plain" / "run")
    c = compare([analyze(cut), analyze(picked), analyze(plain)], CHAT)
    got = [(r.figures.gateway_minus_engine_ttft_s, r.figures.router_refused) for r in c.runs]
    assert (
        got[0][0] == pytest.approx(analyze(cut).gateway_page["gateway_minus_engine_ttft_s"])
        and got[0][1] is None
    )
    assert got[1] == (None, pytest.approx(5.0))  # 0.5 shed a second over the page's 10 s
    assert got[2] == (None, None)
    assert {"gateway_minus_engine_ttft_s", "router_refused"} <= set(shown(c.rows))
    assert METRICS["gateway_minus_engine_ttft_s"] == METRICS["router_refused"] == 0
    assert COLUMNS["gateway_minus_engine_ttft_s"] == ("gateway − engine TTFT (ms)", "ms")
    assert "gateway_minus_engine_ttft_s" not in shown(compare([analyze(plain)], CHAT).rows)


def test_the_sglang_gateway_in_grpc_mode_is_cut_the_same_way(tmp_path) -> None:
    """smg in gRPC mode times each streamed request's first token itself (it tokenizes for its workers):
    `smg_router_ttft_seconds`, or for prefill/decode pairs `smg_pd_ttft_seconds` — what the client waits,
    where the router's own holds only the decode leg — read first."""
    run = two_models(tmp_path / "run")
    three_points(run, base_gw="smg_router_ttft_seconds")
    g = analyze(run).gateway_page
    assert g is not None and (g["source"], g["metric"]) == (
        "SGLang Model Gateway, gRPC mode",
        "smg_router_ttft_seconds",
    )
    assert g["client_minus_gateway_ttft_s"] == pytest.approx(TO_GATEWAY)
    pd = two_models(tmp_path / "pd" / "run")
    three_points(pd, base_gw="smg_pd_ttft_seconds")
    rows = pd.joinpath("server_metrics.csv").read_text().splitlines()
    decode_leg = [
        r.replace("smg_pd_ttft_seconds", "smg_router_ttft_seconds") for r in rows[1:] if "smg_pd_ttft" in r
    ]
    decode_leg = [",".join([*r.split(",")[:3], "0.0"]) for r in decode_leg]  # the decode leg's: nothing timed
    pd.joinpath("server_metrics.csv").write_text("\n".join([*rows, *decode_leg]) + "\n")
    g = analyze(pd).gateway_page
    assert (
        g is not None
        and g["metric"] == "smg_pd_ttft_seconds"
        and g["client_minus_gateway_ttft_s"] == pytest.approx(TO_GATEWAY)
    )
