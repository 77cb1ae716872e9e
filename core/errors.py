"""The errors of user mistakes, shared by every layer, and the one way a process ends on one.

A user mistake (a bad option, SLO string, file) is reported as one line that names the place and
what is expected, never as a traceback: raise one of these, and let the entry point call `exit_with`.
"""

from __future__ import annotations

import sys
from typing import NoReturn

USAGE_EXIT = 2  # a user mistake, or a target failing systematically (argparse's own code for bad usage)


class GoodputError(ValueError):
    """A user mistake: the message is one line naming the place and what is expected."""


class OptionError(GoodputError):
    """A bad command-line option (or web-form field)."""


class SloError(GoodputError):
    """A bad SLO (profile name, inline spec, YAML file)."""


def exit_with(message: str, code: int = USAGE_EXIT) -> NoReturn:
    """End the process with one line on stderr and `code` (no traceback)."""
    sys.stderr.write(f"goodput: error: {message}\n")
    sys.stderr.flush()
    sys.exit(code)
