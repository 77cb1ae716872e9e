// Goodput: the start form and the end of a run, in Locust's own page (server side: ../form.py).
//
// Locust lists plugin options in one alphabetical heap under "Custom parameters", each labelled with
// its dest and --help text. This groups Goodput's fields under headings (target and model, workload,
// load shape, SLO, output), most important first, with a real label and the help as a line beneath:
// the table comes from the server (window.templateArgs.goodput_form; core/optgroups.py declares it).
// React owns the form, so nothing of it is moved or removed: each field gets a CSS `order` inside the
// accordion's flex column, headings and help lines are nodes of our own beside them, and the label
// texts React rendered once are rewritten (their props never change afterwards).
// Under the user-count and ramp fields a note says whether the chosen load shape uses them; the server
// applies the shape rule to the form's values (llm/form/shape), so it is defined once. After STOP a
// card shows the run folder and the command that analyses it (llm/run).
(function () {
  "use strict";
  var me = document.currentScript && document.currentScript.src;
  var base = me ? me.replace(/llm\/static\/form\.js.*$/, "") : "./";
  var cfg = (window.templateArgs && window.templateArgs.goodput_form) || { fields: [] };
  var byField = {};
  cfg.fields.forEach(function (f) { byField[f.field] = f; });
  var note = null, card = null, shown = "", dismissed = "", pending = null;

  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  }
  function style(e, css) { e.style.cssText += css; return e; }

  function wrapperOf(input, box) {  // the child of `box` that holds `input`
    var w = input;
    while (w && w.parentElement !== box) w = w.parentElement;
    return w;
  }

  function relabel(wrapper, f) {
    var box = wrapper.querySelector(".MuiFormControlLabel-label");  // a checkbox
    if (box) { box.textContent = f.label; return; }
    var label = wrapper.querySelector("label");
    if (label && label.firstChild && label.firstChild.nodeType === 3) label.firstChild.nodeValue = f.label;
    var legend = wrapper.querySelector("legend span");  // the gap in the outline, sized by this text
    if (legend) legend.textContent = f.label;
  }

  function group() {
    var first = cfg.fields.length && document.querySelector('form [name="' + cfg.fields[0].field + '"]');
    var box = first && first.closest(".MuiAccordionDetails-root > *");
    if (!box || box.getAttribute("data-goodput") === "grouped") return;
    box.setAttribute("data-goodput", "grouped");
    var order = 0, heading = "";
    cfg.fields.forEach(function (f) {
      var input = box.querySelector('[name="' + f.field + '"]');
      var w = input && wrapperOf(input, box);
      if (!w) return;
      if (f.heading !== heading) {
        heading = f.heading;
        var h = style(el("div", "goodput-heading", heading), "order:" + order++ +
          ";font:600 15px system-ui,sans-serif;margin:6px 0 -14px;opacity:.85;text-transform:uppercase;letter-spacing:.04em");
        h.setAttribute("data-group", f.group);
        box.appendChild(h);
      }
      w.style.order = order++;
      w.setAttribute("data-goodput-field", f.name);
      relabel(w, f);
      if (f.help) {
        var help = style(el("div", "goodput-help", f.help + "  (" + f.flag + ")"),
          "font:12px system-ui,sans-serif;opacity:.7;margin:3px 0 0 2px;display:block");
        w.appendChild(help);
      }
    });
    Array.prototype.forEach.call(box.children, function (c) {  // anything else (other plugins): last
      if (!c.style.order) c.style.order = 1000;
    });
  }

  function formValues(form) {
    var q = new URLSearchParams();
    Array.prototype.forEach.call(form.querySelectorAll("[name]"), function (i) {
      var f = byField[i.name];
      if (!f) return;
      q.set(f.name, i.type === "checkbox" ? (i.checked ? "true" : "false") : i.value);
    });
    return q;
  }

  function placeNote() {
    var spawn = document.querySelector('form [name="spawnRate"]');
    if (!spawn) return null;
    var box = spawn.closest(".MuiFormControl-root");
    if (!box) return null;
    if (!note) {
      note = style(el("div", "goodput-shape-note"), "font:13px system-ui,sans-serif;margin:-4px 0 4px 2px;line-height:1.4");
      note.id = "goodput-shape-note";
    }
    if (box.nextSibling !== note) box.parentNode.insertBefore(note, box.nextSibling);
    return note;
  }

  function refreshShape() {
    var form = document.querySelector("form");
    if (!form || !placeNote()) return;
    fetch(base + "llm/form/shape?" + formValues(form).toString(), { cache: "no-store" })
      .then(function (r) { return r.json(); })
      .then(function (a) {
        note.textContent = a.error ? (a.note ? a.note + " " : "") + "✗ " + a.error : a.note;
        note.style.color = a.error ? "#dc2626" : "";
        note.setAttribute("data-shape", a.shape || "");
        note.setAttribute("data-uses-users", a.uses_users ? "1" : "0");
        ["userCount", "spawnRate"].forEach(function (n) {  // dim the fields the shape overrides
          var i = document.querySelector('form [name="' + n + '"]');
          var w = i && i.closest(".MuiFormControl-root");
          if (w) w.style.opacity = a.uses_users ? "" : "0.55";
        });
      })
      .catch(function () { /* server gone: the page says so elsewhere */ });
  }

  function onEdit(ev) {
    if (!ev.target.closest || !ev.target.closest("form")) return;
    clearTimeout(pending);
    pending = setTimeout(refreshShape, 250);
  }

  function showRun(r) {
    if (!card) {
      card = style(el("div", "goodput-run-card"), "position:fixed;right:16px;bottom:16px;z-index:2000;max-width:760px;" +
        "background:#111827;color:#f9fafb;border-radius:8px;padding:12px 40px 12px 14px;font:14px system-ui,sans-serif;" +
        "box-shadow:0 4px 18px rgba(0,0,0,.35);line-height:1.5");
      card.id = "goodput-run-card";
      var close = style(el("button", "", "×"), "position:absolute;top:6px;right:8px;background:none;border:0;color:inherit;font-size:20px;cursor:pointer");
      close.title = "dismiss";
      close.onclick = function () { dismissed = shown; card.style.display = "none"; };
      card.appendChild(close);
      card.body = card.appendChild(el("div"));
      document.body.appendChild(card);
    }
    var b = card.body;
    b.textContent = "";
    b.appendChild(el("div", "", "Run " + (r.outcome || "stopped") + ": " + (r.rows === null ? "?" : r.rows) + " rows in"));
    var dir = b.appendChild(style(el("code", "goodput-run-dir", r.run_dir), "display:block;font:13px ui-monospace,monospace;word-break:break-all"));
    dir.setAttribute("data-run-dir", r.run_dir);
    b.appendChild(el("div", "", "Analyse it with:"));
    var cmd = b.appendChild(style(el("code", "goodput-analyse", r.analyse), "display:block;font:13px ui-monospace,monospace;word-break:break-all;user-select:all"));
    cmd.title = "click to select, then copy";
    card.style.display = "";
    shown = r.run_dir;
  }

  function pollRun() {
    fetch(base + "llm/run", { cache: "no-store" }).then(function (r) { return r.json(); }).then(function (r) {
      if (r.state === "running" || r.state === "spawning") {
        if (card) card.style.display = "none";
      } else if (r.run_dir && r.run_dir !== dismissed && r.run_dir !== shown) {
        showRun(r);
      }
    }).catch(function () {}).then(function () { setTimeout(pollRun, 2000); });
  }

  document.addEventListener("input", onEdit, true);
  document.addEventListener("change", onEdit, true);
  setInterval(function () {
    group();
    var had = note && note.isConnected;
    placeNote();
    if (note && !had) refreshShape();
  }, 400);
  pollRun();
})();
