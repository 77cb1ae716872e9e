"""Post-run analysis: requests.csv → metrics → SLO/goodput → typed results → summary, plots, report, comparisons.

`python -m analysis RUN_DIR` and `python -m analysis compare RUN_DIR ...` (README.md § Analysis);
other code uses `analysis.api` and nothing else. One request's way through, top to bottom:

- `api.py` — the public API (its docstring is the documentation); `__main__.py` — the CLI on it.
- `load.py` — run folder → `Run` (requests.csv rows, run.json), warm-up marked; `errors.py` —
  `AnalysisError`, the one-line user error.
- `summary.py` — `analyze()`: picks the rows and SLOs and assembles the `Summary` from
  `metrics.py` (every aggregate, defined once), `itl.py` (inter-token gaps, parsed fast),
  `steps.py` (per-step table, capacity at SLO) and `server.py` + `engines.py` (engine metrics).
- `results.py` — the typed results (`Summary` and its parts; `Summary.to_json()` is summary.json).
- `compare.py` — several runs → `Comparison` (rows, repeats grouped, best cells marked).
- `render/` — text and pictures from results: `markdown.py` (summary.md, console), `html.py`
  (report.html), `comparison.py` (comparison.md/csv/html), `plots.py`, `server.py` (the server
  sections and plot), built from `tables.py` (shared table cells) and `page.py` (shared HTML);
  `fmt.py` (beside the computing modules) formats numbers the same way everywhere.
- `outputs.py` — writes the files: a run's (staged, then moved into the run folder) and a comparison's.

Computing never imports render/, and nothing here imports the load path (loadgen/, users/,
shapes/) or the arena (tests/unit/analysis/test_analysis_structure.py checks both). This package
file stays import-free, so importing `analysis.api` costs no pandas, numpy or matplotlib.
"""
