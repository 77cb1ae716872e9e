"""Renderers: typed results (analysis/results.py, analysis/compare.py) → markdown, HTML, CSV and PNG.

They read fields of the results they are given and compute nothing; shared pieces are
`tables.py` (table cells) and `page.py` (HTML frame). See the package docstring for the list.
"""
