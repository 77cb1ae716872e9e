"""Goodput's entry points: the Locust composition (`goodput/locustfile.py`) and the console scripts
of an installed Goodput (`goodput/cli.py`, pyproject.toml `[project.scripts]`).

The top of the import graph: nothing of ours imports this package (checked by import-linter) but
the checkout's `locustfile.py`, which re-exports the composition.
"""
