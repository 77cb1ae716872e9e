// Goodput: shows the LLM charts (the /llm page, embedded) under the "LLM" tab's table in Locust's UI.
// Locust's extended tabs render a table only; this adds a sibling after that table's panel while the
// tab is open and removes it otherwise. It adds its own node and never changes the ones React renders.
(function () {
  "use strict";
  var me = document.currentScript && document.currentScript.src;
  var base = me ? me.replace(/llm\/static\/embed\.js.*$/, "") : "./";
  var box = null, frame = null;

  function build() {
    box = document.createElement("div");
    box.id = "goodput-llm-charts";
    box.style.cssText = "margin-top:16px";
    var link = document.createElement("a");
    link.href = base + "llm";
    link.target = "_blank";
    link.textContent = "Open the LLM charts on their own page ↗";
    link.style.cssText = "display:inline-block;margin:0 0 6px 4px;font:14px system-ui,sans-serif;color:inherit;opacity:.75";
    frame = document.createElement("iframe");
    frame.src = base + "llm?embed=1";
    frame.title = "LLM live charts";
    frame.style.cssText = "width:100%;height:1200px;border:0;display:block;border-radius:4px";
    box.appendChild(link);
    box.appendChild(frame);
  }

  function fit() {
    try {
      var h = frame.contentDocument.documentElement.scrollHeight;
      if (h > 200) frame.style.height = h + "px";
    } catch (e) { /* not loaded yet */ }
  }

  function place() {
    var open = new URLSearchParams(location.search).get("tab") === "llm";
    var table = open && document.querySelector("#root main table");
    var panel = table && table.closest(".MuiPaper-root");
    if (!panel) {
      if (box && box.parentNode) box.parentNode.removeChild(box);
      return;
    }
    if (!box) build();
    if (panel.nextElementSibling !== box) panel.parentNode.insertBefore(box, panel.nextSibling);
    fit();
  }

  setInterval(place, 400);
})();
