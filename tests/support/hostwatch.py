"""Whether this host could keep millisecond time while a timing test ran: a watcher process beside it.

The tests marked `alone` judge Goodput to the millisecond (a send within 10 ms of its intended time,
the engine's part of a request within 2 ms of its trace). That judges the client only where the host
itself keeps time. This project's CI VM does not always: one run's four timing tests failed together
(every send ≥ 5.8 ms late, the simulated engine's token writes 6 ms late) while the vLLM test just
before them found the host's clocks apart — and the same tests and checkout passed before and after
(bench/README.md § When the host's clocks disagree). So these tests run a small watcher process that
measures the host while they run, independently of Goodput:

- **wake-up lateness**: it sleeps 5 ms at a time (in `select`, as an event loop does) and records how
  late each wake-up came — a host whose idle process cannot wake on time cannot run a client on time:
  late throughout (p90), or stalled in spells (the share of the watch spent in wake-ups ≥ 5 ms late:
  a CPU quota exhausted, a vCPU descheduled);
- **clock steps**: `time.time() − time.monotonic()`, which moves only where the wall clock is stepped;
- **kernel stamps vs clock reads**: a loopback datagram's kernel receive stamp must lie between the
  wall-clock reads taken before its send and after its receipt;
- **steal**: the share of the VM's CPU time its hypervisor gave to others (`/proc/stat`).

A test asks `trouble()` after its run and, when the host failed, skips its millisecond checks with
the figures (its other checks still run). The limits are far above what a sound host shows (wake-ups
late by 0.1 ms at p90 on the 2-core dev VM while a test runs; no step; stamps within µs).
"""

from __future__ import annotations

import json
import select
import socket
import subprocess
import sys
import time
from dataclasses import dataclass

LATE_P90_MS = 2.0  # a sound 2-core host while a timing test runs: ~0.1
STALL_MS = 5.0  # a wake-up this late is a stall
STALLED_SHARE = 0.01  # of the watch, in stalls (sound runs here: 0)
STEP_MS = 1.0  # the wall clock stepped against the monotonic one
STAMP_MS = 1.0  # a kernel stamp outside its reads by more than this
STEAL_SHARE = 0.05  # of the CPU time while the test ran (the dev VM: 0.02 % since boot)
PERIOD_S = 0.005
MAX_S = 900.0  # the watcher ends itself after this, whatever happens to its test
_SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)


@dataclass
class HostReport:
    """What the watcher saw: wake-ups (count, lateness p50/p90/max, ms; the share of the watch spent in
    stalls), the wall clock's steps against the monotonic one (span of their difference, ms), kernel
    stamps outside their reads (worst, ms), the hypervisor's steal (share of the CPU time)."""

    wakeups: int
    late_p50_ms: float
    late_p90_ms: float
    late_max_ms: float
    stalled_share: float
    step_ms: float
    stamp_ms: float
    steal_share: float

    def trouble(self) -> str:
        """Why millisecond timing cannot be judged on this host during the watch ("" when it can)."""
        why = []
        if self.late_p90_ms > LATE_P90_MS:
            why.append(f"an idle process's 5 ms sleeps woke {self.late_p90_ms:.1f} ms late at p90 "
                       f"(p50 {self.late_p50_ms:.1f}, max {self.late_max_ms:.1f}; a sound host: ~0.1)")  # fmt: skip
        if self.stalled_share > STALLED_SHARE:
            why.append(f"it stalled {self.stalled_share:.1%} of the time in wake-ups ≥ {STALL_MS:g} ms late "
                       f"(the latest {self.late_max_ms:.0f} ms)")  # fmt: skip
        if self.step_ms > STEP_MS:
            why.append(f"the wall clock moved {self.step_ms:.1f} ms against the monotonic one")
        if self.stamp_ms > STAMP_MS:
            why.append(
                f"kernel receive stamps lay {self.stamp_ms:.1f} ms outside the clock reads around them"
            )
        if self.steal_share > STEAL_SHARE:
            why.append(f"the hypervisor took {self.steal_share:.0%} of this VM's CPU time (steal)")
        if not why:
            return ""
        return "this host could not keep millisecond time during the run: " + "; ".join(why)


class HostWatch:
    """The watcher process: `start()` before the run, `stop()` after it (returns the HostReport)."""

    def __init__(self, python: str = sys.executable) -> None:
        self.python = python
        self.popen: subprocess.Popen | None = None

    def start(self) -> HostWatch:
        self.popen = subprocess.Popen([self.python, __file__], stdin=subprocess.PIPE,
                                      stdout=subprocess.PIPE, text=True)  # fmt: skip
        assert self.popen.stdout is not None
        self.popen.stdout.readline()  # "ready": it watches from here on
        return self

    def stop(self) -> HostReport:
        p = self.popen
        assert p is not None and p.stdin is not None
        out, _ = p.communicate(timeout=30)  # closing stdin ends the watch
        return HostReport(**json.loads(out.strip().splitlines()[-1]))

    def close(self) -> None:
        """End the watcher if its test did not (a failed test): never left running."""
        if self.popen is not None and self.popen.poll() is None:
            self.popen.kill()
            self.popen.communicate()


def _stamp_error_s(tx: socket.socket, rx: socket.socket) -> float:
    """How far one datagram's kernel receive stamp lay outside the wall-clock reads around it (s)."""
    before = time.time()
    tx.sendto(b".", rx.getsockname())
    _, anc, _, _ = rx.recvmsg(16, 64)
    after = time.time()
    for level, kind, data in anc:
        if level == socket.SOL_SOCKET and kind == _SO_TIMESTAMPNS:
            sec, nsec = int.from_bytes(data[:8], sys.byteorder), int.from_bytes(data[8:16], sys.byteorder)
            k = sec + nsec * 1e-9
            return max(before - k, k - after, 0.0)
    return 0.0


def _cpu_jiffies() -> tuple[int, int]:
    """(steal, total) CPU time since boot, all CPUs, from /proc/stat's `cpu` line ((0, 0) elsewhere)."""
    try:
        with open("/proc/stat") as fh:
            fields = [int(x) for x in fh.readline().split()[1:]]
    except (OSError, ValueError):
        return 0, 0
    return (fields[7] if len(fields) > 7 else 0), sum(fields[:8])


def watch() -> None:
    """The watcher's loop: until its stdin closes (or MAX_S), then one JSON line of figures."""
    tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx.bind(("127.0.0.1", 0))
    rx.setsockopt(socket.SOL_SOCKET, _SO_TIMESTAMPNS, 1)
    late: list[float] = []
    offsets: list[float] = []
    stamp = 0.0
    steal0, total0 = _cpu_jiffies()
    print("ready", flush=True)
    start = time.monotonic()
    end = start + MAX_S
    while time.monotonic() < end:
        t0 = time.perf_counter()
        if select.select([sys.stdin], [], [], PERIOD_S)[0]:
            break  # stdin closed: the test's run is over
        late.append(time.perf_counter() - t0 - PERIOD_S)
        if len(late) % 10 == 0:
            offsets.append(time.time() - time.monotonic())
            stamp = max(stamp, _stamp_error_s(tx, rx))
    steal1, total1 = _cpu_jiffies()
    stalled = sum(x for x in late if x >= STALL_MS / 1e3) / max(1e-9, time.monotonic() - start)
    late.sort()

    def at(q: float) -> float:
        """The q-quantile of the wake-ups' lateness, ms (the nearest rank below)."""
        return late[int(q * (len(late) - 1))] * 1e3 if late else 0.0

    print(json.dumps({"wakeups": len(late), "late_p50_ms": at(0.5), "late_p90_ms": at(0.9),
                      "late_max_ms": at(1.0), "stalled_share": stalled, "step_ms": (max(offsets) - min(offsets)) * 1e3 if offsets else 0.0,
                      "stamp_ms": stamp * 1e3, "steal_share": (steal1 - steal0) / max(1, total1 - total0)}),
          flush=True)  # fmt: skip


if __name__ == "__main__":
    watch()


def until_quiet(timeout_s: float = 3.0, late_ms: float = 1.0, in_a_row: int = 20) -> bool:
    """Wait until this process wakes on time again: `in_a_row` 5 ms sleeps (in `select`, as the
    watcher sleeps) each late by under `late_ms`; False if the host stays busy for `timeout_s`.

    For a test that judges a stamp to the millisecond on a host shared with other tests: a busy spell
    lasts longer than a few back-to-back tries, so a retry waits for the fact that the host is quiet
    again rather than landing in the same spell."""
    deadline = time.monotonic() + timeout_s
    good = 0
    while good < in_a_row:
        t0 = time.monotonic()
        if t0 > deadline:
            return False
        select.select([], [], [], 0.005)
        good = good + 1 if (time.monotonic() - t0 - 0.005) * 1e3 < late_ms else 0
    return True
