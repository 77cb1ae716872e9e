"""The one error a user sees from the analysis: a bad input, shown as one line without a traceback.

Its own module so that `analysis.api` (and the arena, which catches it) can name it without
loading pandas and pyarrow.
"""

from __future__ import annotations


class AnalysisError(Exception):
    """A user-facing problem with the input: one line, names the file and what is wrong."""
