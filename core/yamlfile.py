"""A YAML file a user named (an SLO file, a `--mix` file): read it, or say in one line why not.

YAML is the one third-party import core/ allows, and only here, lazily: only a run that names such
a file pays for it (import-linter's exception in pyproject.toml).
"""

from __future__ import annotations

import os
from typing import Any


def read_yaml(path: str, error: type[Exception], missing: str, where: str) -> Any:
    """The document in `path`; `error(missing)` when there is no such file, `error("<where>: not
    readable YAML (<the parser's first line>)")` when it cannot be read or parsed."""
    if not os.path.isfile(path):
        raise error(missing)
    import yaml

    try:
        with open(path, encoding="utf-8") as fh:
            return yaml.safe_load(fh)
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise error(f"{where}: not readable YAML ({first})") from None
