"""The one exception of the workloads package.

Every user mistake (a bad spec string, a malformed dataset line, an unknown name) surfaces as a
`WorkloadError` whose message is a single line naming the place (`file:line`, the option) and what
was expected, so the CLI and Locust's start-up can print it without a traceback.
"""

from __future__ import annotations


class WorkloadError(Exception):
    """One-line, user-facing message naming file:line or the option and what is expected."""
