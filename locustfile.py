"""Goodput's Locust entry point: `locust -f locustfile.py --host http://HOST:PORT [options]`, from any cwd.

The composition lives in goodput/locustfile.py (installed with the package, where the `goodput`
command runs it); this file puts the checkout on sys.path and re-exports it, so Locust finds the
user classes and the shape class here. `python -m goodput --help` lists Goodput's options
(Locust prints `--help` before it imports a locustfile: goodput/cli.py).
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the packages beside this file, from any cwd

from goodput.locustfile import *  # noqa: F403  (user classes, GoodputShape, the plugins installed)
