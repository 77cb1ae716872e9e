"""The timing tests' host watcher (tests/support/hostwatch.py): it must see a stall it is put through,
and name each kind of trouble — else a timing test would skip on a sound host or judge on a broken one."""

from __future__ import annotations

import os
import signal
import time

from tests.support.hostwatch import HostReport, HostWatch

SOUND = dict(wakeups=2000, late_p50_ms=0.1, late_p90_ms=0.2, late_max_ms=4.0, stalled_share=0.0,
             step_ms=0.001, stamp_ms=0.0, steal_share=0.0)  # fmt: skip


def test_a_stall_it_is_put_through_is_seen_and_named() -> None:
    w = HostWatch().start()
    assert w.popen is not None
    time.sleep(0.3)
    os.kill(w.popen.pid, signal.SIGSTOP)  # as a throttled cgroup or a descheduled vCPU would
    time.sleep(0.4)
    os.kill(w.popen.pid, signal.SIGCONT)
    time.sleep(0.3)
    r = w.stop()
    assert r.wakeups >= 40 and r.late_p50_ms <= r.late_p90_ms <= r.late_max_ms
    assert r.late_max_ms >= 300 and r.stalled_share >= 0.25, r
    assert "stalled" in r.trouble() and r.trouble().startswith("this host could not keep millisecond time")


def test_each_trouble_is_named_and_a_sound_host_has_none() -> None:
    assert HostReport(**SOUND).trouble() == ""
    cases = {
        "late_p90_ms": (2.5, "woke 2.5 ms late at p90"),
        "stalled_share": (0.02, "stalled 2.0% of the time"),
        "step_ms": (3.0, "wall clock moved 3.0 ms"),
        "stamp_ms": (1.5, "kernel receive stamps lay 1.5 ms outside"),
        "steal_share": (0.2, "took 20% of this VM's CPU time"),
    }
    for field, (value, words) in cases.items():
        assert words in HostReport(**{**SOUND, field: value}).trouble(), field


def test_a_watch_its_test_abandoned_is_ended() -> None:
    w = HostWatch().start()
    assert w.popen is not None
    w.close()
    assert w.popen.poll() is not None
