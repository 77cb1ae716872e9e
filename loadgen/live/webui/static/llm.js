// Goodput LLM live view: polls llm/stats and draws plain SVG line charts (no library, no CDN).
(function () {
  "use strict";
  var doc = document.documentElement;
  var dark = localStorage.theme === "dark" ||
    (!("theme" in localStorage) && window.matchMedia("(prefers-color-scheme: dark)").matches);
  if (dark) doc.classList.add("dark");
  if (new URLSearchParams(location.search).has("embed")) document.body.classList.add("embed");

  var C = {
    p50: "#2563eb", p95: "#ea580c", slo: "#dc2626", good: "#16a34a", done: "#64748b",
    users: "#7c3aed", target: "#a78bfa", inflight: "#0891b2", tok: "#0d9488", fail: "#dc2626"
  };
  var ERR = ["#d97706", "#9333ea", "#db2777", "#0284c7", "#65a30d", "#475569", "#b91c1c"];
  var MAX_POINTS = 4000;
  var H = 190, M = { l: 54, r: 18, t: 10, b: 22 };

  var state = { epoch: -1, seq: 0, points: [], payload: null, hover: null, polls: 0 };
  window.goodputLLM = state; // read by the browser test; handy in the console

  function field(key, scale) {
    return function (p) {
      var v = p[key];
      return v === null || v === undefined ? null : v * (scale || 1);
    };
  }
  function pct(name, label, color) {
    return { label: label, color: color, get: field(name) };
  }
  var CHARTS = [
    { id: "ttft", title: "TTFT", sub: "send → first token", unit: "ms", slo: "ttft",
      lines: [pct("ttft_p50", "p50", C.p50), pct("ttft_p95", "p95", C.p95)] },
    { id: "tpot", title: "TPOT", sub: "time per output token", unit: "ms", slo: "tpot",
      lines: [pct("tpot_p50", "p50", C.p50), pct("tpot_p95", "p95", C.p95)] },
    { id: "itl", title: "ITL", sub: "gap between chunks", unit: "ms",
      lines: [pct("itl_p50", "p50", C.p50), pct("itl_p95", "p95", C.p95)] },
    { id: "e2e", title: "E2E latency", sub: "send → last chunk", unit: "ms", slo: "e2e",
      lines: [pct("e2e_p50", "p50", C.p50), pct("e2e_p95", "p95", C.p95)] },
    { id: "goodput", title: "Throughput vs goodput", sub: "req/s", unit: "req/s",
      lines: [{ label: "completed", color: C.done, get: field("ok_rps") },
              { label: "goodput", color: C.good, get: field("goodput_rps") }] },
    { id: "attainment", title: "SLO attainment", sub: "good / ended", unit: "%", yMax: 100, target: true,
      lines: [{ label: "attainment", color: C.good, get: field("attainment", 100) }] },
    { id: "tokens", title: "Output tokens/s", sub: "generated", unit: "tok/s",
      lines: [{ label: "tok/s", color: C.tok, get: field("out_tok_s") }] },
    { id: "load", title: "Load", sub: "users and requests in flight", unit: "",
      lines: [{ label: "users", color: C.users, width: 5, opacity: 0.35, get: field("users") },
              { label: "target", color: C.target, dash: true, get: field("target_users") },
              { label: "in flight", color: C.inflight, get: field("in_flight") }] },
    { id: "errors", title: "Errors", sub: "failed req/s by category", unit: "req/s", errors: true,
      lines: [{ label: "all", color: C.fail, get: field("fail_rps") }] }
  ];

  function esc(s) {
    return String(s).replace(/[&<>"]/g, function (c) {
      return { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" }[c];
    });
  }
  function fmt(v, unit) {
    if (v === null || v === undefined || isNaN(v)) return "–";
    if (unit === "ms") return v >= 1000 ? (v / 1000).toFixed(v >= 10000 ? 1 : 2) + " s" : v >= 10 ? v.toFixed(0) + " ms" : v.toFixed(1) + " ms";
    if (unit === "%") return v.toFixed(1) + " %";
    if (unit === "tok/s") return v >= 100 ? v.toFixed(0) : v.toFixed(1);
    if (unit === "req/s") return v >= 100 ? v.toFixed(0) : v.toFixed(2);
    return Math.round(v).toString();
  }
  function tickLabel(v, unit) {
    if (unit === "ms") return v >= 1000 ? +(v / 1000).toFixed(2) + " s" : +v.toFixed(1) + " ms";
    if (unit === "%") return v + " %";
    return +v.toFixed(2) + "";
  }
  function mmss(s) {
    s = Math.max(0, Math.round(s));
    var m = Math.floor(s / 60), r = s % 60;
    return m + ":" + (r < 10 ? "0" : "") + r;
  }
  function niceStep(span, n) {
    var raw = span / n, mag = Math.pow(10, Math.floor(Math.log10(raw))), f = raw / mag;
    return (f <= 1 ? 1 : f <= 2 ? 2 : f <= 2.5 ? 2.5 : f <= 5 ? 5 : 10) * mag;
  }

  var TIME_STEPS = [5, 10, 15, 20, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200];
  function timeStep(span, n) {
    for (var i = 0; i < TIME_STEPS.length; i++) if (span / TIME_STEPS[i] <= n) return TIME_STEPS[i];
    return TIME_STEPS[TIME_STEPS.length - 1];
  }

  function linesFor(def, points) {
    if (!def.errors) return def.lines;
    var cats = {};
    points.forEach(function (p) { Object.keys(p.errors_rps || {}).forEach(function (k) { cats[k] = 1; }); });
    return def.lines.concat(Object.keys(cats).sort().map(function (k, i) {
      return { label: k, color: ERR[i % ERR.length], get: function (p) { return (p.errors_rps || {})[k] || 0; } };
    }));
  }
  function refLines(def, run) {
    var out = [];
    if (def.slo && run && run.slo_ms[def.slo] !== undefined)
      out.push({ label: "SLO " + fmt(run.slo_ms[def.slo], "ms"), color: C.slo, v: run.slo_ms[def.slo] });
    if (def.target && run) out.push({ label: "target " + Math.round(run.attain_target * 100) + " %", color: C.slo, v: run.attain_target * 100 });
    return out;
  }

  function buildCards() {
    var box = document.getElementById("charts");
    CHARTS.forEach(function (def) {
      var card = document.createElement("div");
      card.className = "card";
      card.innerHTML = '<div class="head"><h3>' + esc(def.title) + " <small>" + esc(def.sub) + "</small></h3>" +
        '<div class="legend"></div></div><svg class="chart" data-chart="' + def.id + '" data-points="0"></svg>';
      box.appendChild(card);
      def.svg = card.querySelector("svg");
      def.legend = card.querySelector(".legend");
      def.svg.addEventListener("mousemove", function (ev) { hover(def, ev); });
      def.svg.addEventListener("mouseleave", function () { state.hover = null; renderCharts(); });
    });
  }

  function hover(def, ev) {
    if (!def.scale) return;
    var r = def.svg.getBoundingClientRect();
    state.hover = def.scale.invert(ev.clientX - r.left);
    renderCharts();
  }

  function nearest(points, t) {
    var best = points.length - 1, d = Infinity;
    for (var i = 0; i < points.length; i++) {
      var e = Math.abs(points[i].elapsed_s - t);
      if (e < d) { d = e; best = i; }
    }
    return best;
  }

  function renderChart(def, points, run) {
    var svg = def.svg, W = svg.clientWidth || 400, lines = linesFor(def, points), refs = refLines(def, run);
    var pw = W - M.l - M.r, ph = H - M.t - M.b;
    var t0 = points.length ? points[0].elapsed_s : 0, t1 = points.length ? points[points.length - 1].elapsed_s : 60;
    t1 = Math.max(t1, t0 + 30);  // at least 30 s wide, so the first points do not fill the chart
    var stride = Math.max(1, Math.floor(points.length / pw));
    var ymax = 0, filled = 0;
    points.forEach(function (p) {
      var any = false;
      lines.forEach(function (l) { var v = l.get(p); if (v !== null) { any = true; ymax = Math.max(ymax, v); } });
      if (any) filled++;
    });
    refs.forEach(function (r) { ymax = Math.max(ymax, r.v * 1.15); });
    if (def.yMax) ymax = def.yMax;
    var step = niceStep(ymax || 1, 4);
    ymax = Math.max(step, Math.ceil((ymax || 1) / step) * step);
    var X = function (t) { return M.l + (t - t0) / (t1 - t0) * pw; };
    var Y = function (v) { return M.t + ph - v / ymax * ph; };
    def.scale = { invert: function (x) { return t0 + (x - M.l) / pw * (t1 - t0); } };

    var s = [];
    for (var v = 0; v <= ymax + 1e-9; v += step) {
      s.push('<line class="gridline" x1="' + M.l + '" x2="' + (W - M.r) + '" y1="' + Y(v) + '" y2="' + Y(v) + '"/>');
      s.push('<text x="' + (M.l - 6) + '" y="' + (Y(v) + 4) + '" text-anchor="end">' + esc(tickLabel(v, def.unit)) + "</text>");
    }
    var xs = timeStep(t1 - t0, Math.max(2, Math.floor(pw / 70)));
    for (var t = Math.ceil(t0 / xs) * xs; t <= t1; t += xs)
      s.push('<text x="' + X(t) + '" y="' + (H - 6) + '" text-anchor="middle">' + mmss(t) + "</text>");
    s.push('<line class="axis" x1="' + M.l + '" x2="' + (W - M.r) + '" y1="' + Y(0) + '" y2="' + Y(0) + '"/>');
    refs.forEach(function (r) {
      s.push('<line x1="' + M.l + '" x2="' + (W - M.r) + '" y1="' + Y(r.v) + '" y2="' + Y(r.v) +
        '" stroke="' + r.color + '" stroke-width="1.5" stroke-dasharray="6 4" opacity="0.8"/>');
    });
    var shown = [];  // every stride-th point, and always the latest
    for (var k = 0; k < points.length; k += stride) shown.push(k);
    if (points.length && shown[shown.length - 1] !== points.length - 1) shown.push(points.length - 1);
    lines.forEach(function (l) {
      var d = "", pen = false, n = 0;
      shown.forEach(function (i) {
        var val = l.get(points[i]);
        if (val === null) { pen = false; return; }
        d += (pen ? "L" : "M") + X(points[i].elapsed_s).toFixed(1) + " " + Y(Math.min(val, ymax)).toFixed(1);
        pen = true; n++;
      });
      s.push('<path d="' + d + '" fill="none" stroke="' + l.color + '" stroke-width="' + (l.width || 2) +
        '" stroke-opacity="' + (l.opacity || 1) + '" stroke-linejoin="round"' +
        (l.dash ? ' stroke-dasharray="5 4"' : "") + ' data-n="' + n + '"/>');
      if (n === 1) { // a single point: a dot, so the first sample is visible
        var m = d.slice(1).split(" ");
        s.push('<circle cx="' + m[0] + '" cy="' + m[1] + '" r="3" fill="' + l.color + '"/>');
      }
    });
    var idx = points.length ? (state.hover === null ? points.length - 1 : nearest(points, state.hover)) : -1;
    if (state.hover !== null && idx >= 0) {
      var cx = X(points[idx].elapsed_s);
      s.push('<line class="cursor" x1="' + cx + '" x2="' + cx + '" y1="' + M.t + '" y2="' + Y(0) + '"/>');
    }
    if (!filled) s.push('<text class="empty" x="' + (M.l + pw / 2) + '" y="' + (M.t + ph / 2) + '" text-anchor="middle">waiting for data…</text>');
    svg.innerHTML = s.join("");
    svg.setAttribute("data-points", String(filled));

    var lg = lines.map(function (l) {
      var val = idx >= 0 ? l.get(points[idx]) : null;
      return '<span><i style="background:' + l.color + '"' + (l.dash ? ' class="dash"' : "") + "></i>" +
        esc(l.label) + " <b>" + esc(fmt(val, def.unit)) + "</b></span>";
    });
    refs.forEach(function (r) {
      lg.push('<span style="color:' + r.color + '"><i class="dash" style="color:' + r.color + '"></i>' + esc(r.label) + "</span>");
    });
    if (state.hover !== null && idx >= 0) lg.unshift("<span>at " + mmss(points[idx].elapsed_s) + "</span>");
    def.legend.innerHTML = lg.join("");
  }

  function renderCharts() {
    var run = state.payload && state.payload.run;
    CHARTS.forEach(function (def) { renderChart(def, state.points, run); });
  }

  function kpi(label, value, sub, cls) {
    return '<div class="kpi ' + (cls || "") + '"><div class="label">' + esc(label) + '</div><div class="value">' +
      esc(value) + '</div><div class="sub">' + esc(sub || "") + "</div></div>";
  }

  function renderKpis(pl) {
    var last = state.points.length ? state.points[state.points.length - 1] : {};
    var run = pl.run, fig = pl.figures, w = Math.round(pl.window_s) + " s";
    var att = last.attainment, tgt = run.attain_target;
    var attCls = att === null || att === undefined ? "" : att >= tgt ? "good" : "bad";
    document.getElementById("kpis").innerHTML = [
      kpi("Goodput (within SLO)", fmt(last.goodput_rps, "req/s") + " req/s", "last " + w + " · run " + fmt(fig.goodput_rps, "req/s")),
      kpi("SLO attainment", fmt(att === null || att === undefined ? null : att * 100, "%"), "run " + fmt(fig.attainment === null ? null : fig.attainment * 100, "%") + " · target " + Math.round(tgt * 100) + " %", attCls),
      kpi("Completed", fmt(last.ok_rps, "req/s") + " req/s", "run " + fig.sent + " sent · " + fig.ok + " ok · " + fig.failed + " failed"),
      kpi("Output tokens/s", fmt(last.out_tok_s, "tok/s"), "run " + fmt(fig.out_tok_s, "tok/s")),
      kpi("TTFT p95", fmt(last.ttft_p95, "ms"), "p50 " + fmt(last.ttft_p50, "ms")),
      kpi("TPOT p95", fmt(last.tpot_p95, "ms"), "p50 " + fmt(last.tpot_p50, "ms")),
      fig.reasoned ? kpi("TTFO p95", fmt(last.ttfo_p95, "ms"), "first answer token · p50 " + fmt(last.ttfo_p50, "ms")) : "",
      fig.reasoned ? kpi("Reasoning", fmt(fig.reasoning_tokens_mean) + " tok", fig.reasoned + " requests · time p50 " + fmt(fig.reasoning_p50_ms, "ms")) : "",
      kpi("In flight", String(pl.in_flight), "users " + pl.users + (last.target_users ? " · target " + last.target_users : "")),
      kpi("Errors", fmt(last.error_ratio === null || last.error_ratio === undefined ? null : last.error_ratio * 100, "%"), "run " + fmt(fig.error_ratio === null ? null : fig.error_ratio * 100, "%"), last.error_ratio > 0 ? "bad" : "")
    ].join("");
  }

  function renderHeader(pl) {
    var st = document.getElementById("state");
    st.textContent = pl.state;
    st.className = "pill " + pl.state;
    var r = pl.run, parts = [
      "model <b>" + esc(r.model || "–") + "</b>", "dataset <b>" + esc(r.dataset) + "</b>",
      "transport <b>" + esc(r.transport) + "</b>", "shape <b>" + esc(r.shape) + "</b>",
      "SLO <b>" + esc(r.slo_name) + "</b> (" + esc(r.slo_text) + ")", "target <b>" + esc(r.target || "–") + "</b>"
    ];
    if (r.workers) parts.push("workers <b>" + r.workers + "</b>");
    if (r.run_id) parts.push("run <b>" + esc(r.run_id) + "</b>");
    document.getElementById("runinfo").innerHTML = parts.join(" · ");
    document.querySelectorAll(".win").forEach(function (e) { e.textContent = Math.round(pl.window_s); });
    document.querySelectorAll(".every").forEach(function (e) { e.textContent = pl.sample_s; });
  }

  function renderTable(pl) {
    var cols = ["count", "p50", "p90", "p95", "p99", "mean", "max", "now_p50", "now_p95", "slo"];
    var heads = ["# samples", "p50", "p90", "p95", "p99", "mean", "max", "last " + Math.round(pl.window_s) + " s p50", "last p95", "SLO limit"];
    var h = "<tr><th>metric</th>" + heads.map(function (x) { return "<th>" + esc(x) + "</th>"; }).join("") + "</tr>";
    pl.latency.forEach(function (row) {
      h += "<tr><td>" + esc(row.metric) + "</td>" + cols.map(function (c) {
        return "<td>" + esc(c === "count" ? row[c] : c === "slo" && !row[c] ? "–" : fmt(row[c], "ms")) + "</td>";
      }).join("") + "</tr>";
    });
    document.getElementById("latency").innerHTML = h;
  }

  function poll() {
    var url = "llm/stats?since=" + state.seq + "&epoch=" + state.epoch;
    fetch(url, { cache: "no-store" }).then(function (r) { return r.json(); }).then(function (pl) {
      if (pl.epoch !== state.epoch) { state.points = []; state.epoch = pl.epoch; }
      state.points = state.points.concat(pl.points);
      if (state.points.length > MAX_POINTS) state.points = state.points.slice(-MAX_POINTS);
      state.seq = state.points.length ? state.points[state.points.length - 1].seq : 0;
      state.payload = pl;
      state.polls++;
      renderHeader(pl);
      renderKpis(pl);
      renderCharts();
      renderTable(pl);
      setTimeout(poll, (pl.sample_s || 2) * 1000);
    }).catch(function () {
      var st = document.getElementById("state");
      st.textContent = "offline";
      st.className = "pill";
      setTimeout(poll, 3000);
    });
  }

  buildCards();
  renderCharts();
  window.addEventListener("resize", renderCharts);
  poll();
})();
