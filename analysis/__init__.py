"""Post-run analysis: requests.csv → metrics → SLO/goodput → tables, plots, report, comparisons.

`python -m analysis RUN_DIR` (see README.md § Analysis). This package file stays import-free on
purpose: the Locust load path imports `analysis.slo` for the live view, and must not pay for
pandas/numpy/matplotlib (nor risk their import-time work inside a gevent process).
"""
