"""`make test`'s pytest: most of the suite in three processes at once, then the timing tests alone.

Why: the end-to-end tests mostly wait (a Locust run of N seconds, an engine stepping in real time):
run one after another they keep ~35 % of one core busy and took ~15 minutes on 2 cores. Three
pytest processes at once (GOODPUT_TEST_PROCESSES chooses another count) cut that part to a
third. The tests marked `alone` assert a timing figure (send lag, TTFT against the engine's emit,
a rate or a capacity against the engine's model) that another test's CPU use would move, so they
run afterwards with nothing beside them.

Why not pytest-xdist: its workers talk to the controller from a thread started before the tests
import Locust, and Locust's gevent monkey-patching under that thread stalls the worker
(pytest-xdist #254, locust #3202). Here each part is a plain pytest process; pytest-split picks
each process's tests from the recorded durations (tests/durations.json) so they end together.
Refresh those after adding slow tests:
    .venv/bin/python -m pytest --store-durations --durations-path tests/durations.json

Every part runs even when an earlier one failed (CI keeps the whole picture); the exit status
is non-zero when any part failed, and the last lines name each failed test with pytest's one-line
reason (a CI log is often read from its tail, where three processes' output has long scrolled
past). Plain `pytest` still runs the whole suite in one process.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DURATIONS = "tests/durations.json"
# Part 1 keeps ~28 % of 2 cores busy with two processes (2 min 14 s user + 20 s sys in 4 min 32 s):
# three end in ~3 min 20 s with the host still half idle; four gained 45 s more but moved first-token
# stamps of the SDK path past the zoo's 2-ms tolerance once (an SDK parses on a busy core).
SHARDS_DEFAULT = 3
NO_TESTS = 5  # pytest's exit status when a selection is empty: not a failure here
# how a failed or erred test's line starts in pytest's short summary (-ra)
SUMMARY_WORDS = ("FAILED ", "ERROR ")
# "____ test_name[param] ____" heads a failed test's report
REPORT_TITLE = re.compile(r"_{3,} (\S.*?) _{3,}$")
SUMMARY_CHARS = 400  # a failed test's line at the end is cut here: the whole text is above


def pytest_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args]


def relay(proc: subprocess.Popen, prefix: str, failures: list[str]) -> None:
    """Print a process's output line by line under `prefix` (whole lines, so two never mix);
    keep in `failures` its short-summary line of each failed or erred test, with the first `E` line
    of that test's report when the summary line gives no reason (it drops it past 80 columns)."""
    assert proc.stdout is not None
    in_summary = False  # inside pytest's "short test summary info" section (a captured log's lines are not)
    test, reasons = "", {}  # the test whose report is being printed; its first `E   ` line, by its title
    for line in proc.stdout:
        sys.stdout.write(prefix + line)
        sys.stdout.flush()
        if line.startswith("="):
            in_summary = "short test summary info" in line
        elif title := REPORT_TITLE.match(line):
            test = title.group(1)
        elif line.startswith("E   ") and test and test not in reasons:
            reasons[test] = line[1:].strip()
        elif in_summary and line.startswith(SUMMARY_WORDS):
            said = line.rstrip("\n")
            name = said.split(" ", 1)[1].split(" - ", 1)[0].split("::", 1)[-1].replace("::", ".")
            if " - " not in said and name in reasons:
                said += " - " + reasons[name]
            failures.append(prefix + said)


def run_part(cmds: list[list[str]], prefixes: list[str], failures: list[str]) -> list[int]:
    """Run pytest processes at once, relaying their output; their exit statuses in order."""
    procs, threads = [], []
    for cmd, prefix in zip(cmds, prefixes, strict=True):
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        thread = threading.Thread(target=relay, args=(proc, prefix, failures), daemon=True)
        thread.start()
        procs.append(proc)
        threads.append(thread)
    for thread in threads:
        thread.join()
    return [proc.wait() for proc in procs]


def shards() -> int:
    """How many pytest processes part 1 runs at once: GOODPUT_TEST_PROCESSES, or SHARDS_DEFAULT."""
    raw = os.environ.get("GOODPUT_TEST_PROCESSES", str(SHARDS_DEFAULT))
    if not raw.isdigit() or int(raw) < 1:
        sys.exit(f"scripts/test.py: GOODPUT_TEST_PROCESSES: expected a whole number ≥ 1, got {raw!r}")
    return int(raw)


def shared_part(n: int, failures: list[str]) -> list[int]:
    """The tests not marked `alone`, split into `n` pytest processes run at once."""
    cmds = [pytest_cmd("-m", "not alone", "--splits", str(n), "--group", str(group),
                       "--splitting-algorithm", "least_duration", "--durations-path", DURATIONS)
            for group in range(1, n + 1)]  # fmt: skip
    return run_part(cmds, [f"[{group}/{n}] " for group in range(1, n + 1)], failures)


def main() -> int:
    n = shards()
    t0 = time.monotonic()
    print(f"==> test: pytest, part 1: every test not marked `alone`, in {n} processes at once "
          f"(their lines prefixed [i/{n}])", flush=True)  # fmt: skip
    failures: list[str] = []
    statuses = {f"part 1, process {i}": rc for i, rc in enumerate(shared_part(n, failures), 1)}
    t1 = time.monotonic()
    print(f"==> test: part 1 done in {t1 - t0:.0f} s; part 2: the timing tests (marked `alone`), "
          "one at a time with nothing beside them", flush=True)  # fmt: skip
    statuses["part 2"] = run_part([pytest_cmd("-m", "alone")], [""], failures)[0]
    failed = [name for name, rc in statuses.items() if rc not in (0, NO_TESTS)]
    t2 = time.monotonic()
    took = f"{t2 - t0:.0f} s (part 2 {t2 - t1:.0f} s)"
    if failed:
        print(f"==> test: {len(failures)} failed or erred (pytest's short summary lines, as above):")
        for line in failures:
            print("    " + (line if len(line) <= SUMMARY_CHARS else line[: SUMMARY_CHARS - 1] + "…"))
        print(f"==> test: FAILED in {', '.join(failed)} (their output above); {took}", flush=True)
        return 1
    print(f"==> test: all parts passed in {took}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
