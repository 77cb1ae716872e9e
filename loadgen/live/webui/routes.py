"""HTTP side of the LLM view, mounted on Locust's own Flask app (`environment.web_ui.app`).

- `/llm`               the charts page (plain SVG drawn by static/llm.js: no CDN, no build step)
- `/llm/stats?since=N` JSON: run info, tables, and the time-series points after `seq` N
- `/llm/series.csv`    the whole ring as CSV (also listed in Locust's "Download Data" tab)
- `/llm/form/shape`, `/llm/run`  the start form's shape note and the run folder after STOP (form.py)
- main UI: an "LLM" and an "LLM goodput" tab (Locust's extended tabs/tables, fed by adding
  `extended_stats` to `/stats/requests`), a small script that links the charts page, and one that
  groups Goodput's fields on the start form (static/form.js).
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

from flask import Blueprint, Response, jsonify, make_response, request, send_from_directory

from loadgen.transport.urls import safe_url

STATIC = Path(__file__).with_name("static")
TAB_LATENCY, TAB_GOODPUT = "llm", "llm-goodput"
CSV_SKIP = ("errors_rps",)
SCRIPTS = ("embed.js", "form.js")  # added to Locust's page: the LLM charts in the tab; the start form


def fmt_ms(v: float | None) -> str:
    if v is None:
        return "–"
    return f"{v:.0f} ms" if v >= 10 else f"{v:.1f} ms"


def fmt_pct(v: float | None) -> str:
    return "–" if v is None else f"{v * 100:.1f} %"


def fmt_rate(v: float | None, unit: str) -> str:
    return "–" if v is None else f"{v:,.2f} {unit}" if v < 100 else f"{v:,.0f} {unit}"


def tab_config(base: str) -> dict:
    """template_args for Locust's React UI: two extra tabs, their table columns, a CSV link."""
    return {
        "extended_tabs": [
            {"title": "LLM", "key": TAB_LATENCY},
            {"title": "LLM goodput", "key": TAB_GOODPUT},
        ],
        "extended_tables": [
            {
                "key": TAB_LATENCY,
                "structure": [
                    {"key": "metric", "title": "Metric"},
                    {"key": "count", "title": "# samples"},
                    {"key": "p50", "title": "p50"},
                    {"key": "p90", "title": "p90"},
                    {"key": "p95", "title": "p95"},
                    {"key": "p99", "title": "p99"},
                    {"key": "mean", "title": "Mean"},
                    {"key": "max", "title": "Max"},
                    {"key": "now50", "title": "Last 10 s p50"},
                    {"key": "now95", "title": "Last 10 s p95"},
                    {"key": "slo", "title": "SLO limit"},
                ],
            },
            {
                "key": TAB_GOODPUT,
                "structure": [
                    {"key": "figure", "title": "Figure"},
                    {"key": "run", "title": "Whole run"},
                    {"key": "now", "title": "Last 10 s"},
                ],
            },
        ],
        "extended_csv_files": [{"href": f"{base}/llm/series.csv", "title": "Download LLM time series CSV"}],
    }


def latency_table(view: Any) -> list[dict]:
    out = []
    for r in view.latency_rows():
        out.append(
            {
                "metric": r["metric"],
                "count": r["count"],
                **{k: fmt_ms(r[k]) for k in ("p50", "p90", "p95", "p99", "mean", "max")},
                "now50": fmt_ms(r["now_p50"]),
                "now95": fmt_ms(r["now_p95"]),
                "slo": "≤ " + fmt_ms(r["slo"]) if r["slo"] else "–",
            }
        )
    return out


def goodput_table(view: Any) -> list[dict]:
    run = view.run_figures()  # the run and the last 10 s at the same sample (livefigures.py)
    last = view.series.points[-1] if view.series.points else {}
    slo, mix = view.ctx.slo, view.ctx.mix
    # --mix: every row is judged by its own class's SLO (loadgen/request.py)
    judged = "each class's own SLO" if mix is not None else slo.name
    slo_text = (
        "; ".join(f"{c.name}: {c.slo.describe()}" for c in mix.classes) if mix is not None else slo.describe()
    )
    rows = [
        ("Completed requests/s", fmt_rate(run["ok_rps"], "req/s"), fmt_rate(last.get("ok_rps"), "req/s")),
        ("Output tokens/s", fmt_rate(run["out_tok_s"], "tok/s"), fmt_rate(last.get("out_tok_s"), "tok/s")),
        (
            f"Goodput ({judged})",
            fmt_rate(run["goodput_rps"], "req/s"),
            fmt_rate(last.get("goodput_rps"), "req/s"),
        ),
        (
            f"SLO attainment (target {slo.attain_target:.0%})",
            fmt_pct(run["attainment"]),
            fmt_pct(last.get("attainment")),
        ),
        ("Error ratio", fmt_pct(run["error_ratio"]), fmt_pct(last.get("error_ratio"))),
        ("Requests sent", str(run["sent"]), "–"),
        ("Requests ok / failed", f"{run['ok']} / {run['failed']}", "–"),
        ("Requests in flight", "–", str(view.in_flight())),
        ("Users (target)", "–", f"{view.env.runner.user_count} ({view.ctx.stage.target_users})"),
        ("SLO", slo_text, "–"),
    ]
    return [{"figure": f, "run": r, "now": n} for f, r, n in rows]


def run_info(view: Any) -> dict:
    env, ctx = view.env, view.ctx
    opts = env.parsed_options
    slo = ctx.slo
    return {
        "run_id": ctx.run_id,
        "target": safe_url(env.host or ""),
        "model": ctx.model,
        "dataset": ctx.mix.label if ctx.mix is not None else opts.dataset,
        "transport": opts.client,
        "shape": _shape_title(ctx.meta.get("shape") or {}, opts),
        "slo_name": slo.name,
        "slo_text": slo.describe(),
        "slo_ms": {k: v * 1000.0 for k, v in slo.limits().items()},
        "attain_target": slo.attain_target,
        "workers": len(env.runner.clients) if hasattr(env.runner, "clients") else 0,
    }


def _shape_title(described: dict, opts: Any) -> str:
    """The shape as run.json names it; before the first run, what the options select."""
    return str(described.get("title") or described.get("name") or opts.shape)


def stats_payload(view: Any, since: int, epoch: int) -> dict:
    s = view.series
    total = view.env.runner.stats.total
    return {
        "epoch": s.epoch,
        "state": view.env.runner.state,
        "sample_s": s.sample_s,
        "window_s": s.window_s,
        "t0": s.t0,
        "run": run_info(view),
        "points": s.since(since if epoch == s.epoch else 0),
        "latency": view.latency_rows(),
        "figures": view.run_figures(),
        "in_flight": view.in_flight(),
        "users": view.env.runner.user_count,
        "aggregated": {"requests": total.num_requests, "failures": total.num_failures},
    }


def series_csv(points: list[dict]) -> str:
    cats = sorted({c for p in points for c in p.get("errors_rps", {})})
    cols = [k for k in (points[0] if points else {}) if k not in CSV_SKIP]
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(cols + [f"errors_rps_{c}" for c in cats])
    for p in points:
        errs = p.get("errors_rps", {})
        w.writerow([p.get(k) for k in cols] + [errs.get(c, 0) for c in cats])
    return buf.getvalue()


def _int_arg(name: str) -> int:
    try:
        return int(request.args.get(name, "0"))
    except ValueError:
        return 0


def mount(environment: Any, web_ui: Any, view: Any) -> None:
    base = (environment.parsed_options.web_base_path or "").rstrip("/")
    guard = web_ui.auth_required_if_enabled
    bp = Blueprint("goodput_llm", __name__, url_prefix=base or None)

    @bp.route("/llm")
    @guard
    def llm_page() -> Response:
        return send_from_directory(STATIC, "llm.html", max_age=0)

    @bp.route("/llm/static/<path:name>")
    @guard
    def llm_static(name: str) -> Response:
        return send_from_directory(STATIC, name, max_age=0)

    @bp.route("/llm/stats")
    @guard
    def llm_stats() -> Response:
        return jsonify(stats_payload(view, _int_arg("since"), _int_arg("epoch")))

    @bp.route("/llm/series.csv")
    @guard
    def llm_series_csv() -> Response:
        resp = make_response(series_csv(list(view.series.points)))
        resp.headers["Content-Type"] = "text/csv"
        resp.headers["Content-Disposition"] = f"attachment;filename=llm_series_{view.ctx.run_id}.csv"
        return resp

    from locust.argument_parser import get_parser

    from loadgen.live.webui.form import add_routes, form_config

    add_routes(bp, guard, environment)  # the start form's shape note, the run folder after STOP
    web_ui.app.register_blueprint(bp)
    web_ui.template_args.update(tab_config(base))
    web_ui.template_args["goodput_form"] = form_config(get_parser())  # read by static/form.js

    @web_ui.app.after_request
    def _extend(resp: Response) -> Response:
        path = request.path
        if path == f"{base}/stats/requests" and resp.status_code == 200 and resp.is_json:
            data = resp.get_json()
            data["extended_stats"] = [
                {"key": TAB_LATENCY, "data": latency_table(view)},
                {"key": TAB_GOODPUT, "data": goodput_table(view)},
            ]
            resp.set_data(json.dumps(data))
        elif path in (f"{base}/", base) and resp.status_code == 200 and resp.mimetype == "text/html":
            html = resp.get_data(as_text=True)
            tags = "".join(f'<script src="{base}/llm/static/{js}" defer></script>' for js in SCRIPTS)
            if tags not in html and "</body>" in html:
                resp.set_data(html.replace("</body>", tags + "</body>", 1))
        return resp
