#!/usr/bin/env python3
"""Write the shipped workload sets (datasets/*.jsonl + MANIFEST.json) deterministically.

    python datasets/regenerate.py              # rewrite the shipped (small) sets in datasets/
    python datasets/regenerate.py --check      # exit 1 if a shipped file differs from its generator
    python datasets/regenerate.py --full --out /tmp/goodput-full   # full-size sets, outside the repo

The generators live in workloads/gen/ (this folder holds data only: no __init__.py, since a
package named `datasets` would shadow Hugging Face's). The same sets, any size, are also available
without files as spec options, e.g. `--dataset agentic:sessions=1000`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from workloads.shipped import SHIPPED, check_all, write_all  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "names",
        nargs="*",
        choices=[*SHIPPED, []],
        help=f"sets to write (default: all of {', '.join(SHIPPED)})",
    )
    parser.add_argument("--check", action="store_true", help="compare instead of writing; exit 1 when stale")
    parser.add_argument(
        "--full", action="store_true", help="full-size sets (needs --out outside the repository)"
    )
    parser.add_argument("--out", type=Path, default=HERE, help="output folder (default: this folder)")
    args = parser.parse_args()
    names = tuple(args.names) or SHIPPED
    if args.check:
        stale = check_all(args.out, names)
        for name in stale:
            print(f"stale: {name} (run python datasets/regenerate.py)", file=sys.stderr)
        return 1 if stale else 0
    if args.full and args.out.resolve() == HERE:
        parser.error("--full writes large files: give --out DIR outside the repository")
    manifest = write_all(args.out, names, full=args.full)
    for entry in manifest["sets"].values():
        print(
            f"{args.out / entry['file']}: {entry['sessions']} sessions, {entry['requests']} requests, {entry['bytes']:,} bytes"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
