"""Ctrl-C while the arena waits on a child: the wait stops, and the child can still be waited on."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest

from arena import procs
from arena.procs import Child


def test_a_signal_during_a_status_read_is_raised_after_it(tmp_path: Path, monkeypatch) -> None:
    """The handler, called while the status is read (as a signal lands mid-poll), only notes it;
    the wait raises it once the read is over, and the Popen still answers: stop() reaps the child."""
    child = Child([sys.executable, "-c", "import time; time.sleep(30)"], tmp_path / "c.log")
    real_poll = child.popen.poll

    def poll_hit_by_ctrl_c() -> int | None:
        procs.interrupt(signal.SIGINT, None)  # what the signal handler does at this instant
        return real_poll()

    monkeypatch.setattr(child.popen, "poll", poll_hit_by_ctrl_c)
    with pytest.raises(KeyboardInterrupt):
        child.wait(20)
    monkeypatch.setattr(child.popen, "poll", real_poll)
    assert child.stop(timeout_s=5) == -signal.SIGTERM  # reaped within the stop's own waits
    assert not procs._deferred


def test_outside_a_status_read_the_signal_is_raised_at_once() -> None:
    with pytest.raises(KeyboardInterrupt):
        procs.interrupt(signal.SIGINT, None)


def test_wait_returns_the_status_or_times_out(tmp_path: Path) -> None:
    assert Child([sys.executable, "-c", "raise SystemExit(3)"], tmp_path / "a.log").wait(20) == 3
    slow = Child([sys.executable, "-c", "import time; time.sleep(30)"], tmp_path / "b.log")
    with pytest.raises(subprocess.TimeoutExpired):
        slow.wait(0.2)
    slow.stop(timeout_s=5)
