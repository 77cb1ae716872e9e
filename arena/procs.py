"""Child processes of a cell: the launched server and the Locust run, each in its own process group.

A cell restarts its server (a fresh port, a cold cache: nothing leaks from one cell into the next)
and always stops everything it started — also on Ctrl-C — by process group, so a server's own
children (vLLM's engine core, Locust's workers) go with it.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

from arena.matrix import HOST, Target


class CellError(Exception):
    """Why one cell failed: one line; the matrix records it and goes on."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def last_line(path: Path, prefer: tuple[str, ...] = ("error",)) -> str:
    """The most telling line of a log: the last one mentioning an error, else the last one."""
    try:
        lines = [x.strip() for x in path.read_text(errors="replace").splitlines() if x.strip()]
    except OSError:
        return ""
    for line in reversed(lines):
        if any(p in line.lower() for p in prefer) and "traceback" not in line.lower():
            return line[:300]
    return lines[-1][:300] if lines else ""


class Child:
    """A started process group with its log file."""

    def __init__(self, cmd: list[str], log: Path, env: dict[str, str] | None = None) -> None:
        self.cmd, self.log = cmd, log
        log.parent.mkdir(parents=True, exist_ok=True)
        self._fh = open(log, "wb")  # noqa: SIM115 - closed in stop()
        try:
            self.popen = subprocess.Popen(
                cmd,
                stdout=self._fh,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
                start_new_session=True,
            )
        except OSError as e:
            self._fh.close()
            raise CellError(f"cannot start '{cmd[0]}': {e.strerror or e}") from None

    def running(self) -> bool:
        return self.popen.poll() is None

    def stop(self, timeout_s: float = 15.0) -> int | None:
        """SIGTERM to the group, SIGKILL after `timeout_s`; returns the exit status."""
        if self.popen.poll() is None:
            self._signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self._signal(signal.SIGKILL)
                self.popen.wait(10)
        else:
            self._signal(signal.SIGKILL)  # leftovers of a group whose leader already exited
        self._fh.close()
        return self.popen.returncode

    def _signal(self, sig: int) -> None:
        try:
            os.killpg(self.popen.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass


def healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2.0) as r:
            return r.status == 200
    except (urllib.error.URLError, OSError, ValueError):
        return False


def start_server(target: Target, log: Path) -> tuple[Child, str]:
    """Launch on a free port and wait for its health URL; a CellError if it exits or never answers."""
    port = free_port()
    child = Child(target.command(port), log, target.environment(port))
    base = f"http://{HOST}:{port}"
    try:
        return child, _wait_healthy(target, child, base, log)
    except BaseException:  # a failed start, or Ctrl-C while waiting
        child.stop()
        raise


def _wait_healthy(target: Target, child: Child, base: str, log: Path) -> str:
    deadline = time.monotonic() + target.startup_timeout_s
    while True:
        if not child.running():
            code = child.stop()
            detail = last_line(log)
            raise CellError(
                f"target '{target.label}': launch command exited with status {code} before it was healthy"
                + (f": {detail}" if detail else "")
                + f" (log: {log})"
            )
        if healthy(base + target.health):
            return base
        if time.monotonic() > deadline:
            raise CellError(
                f"target '{target.label}': not healthy after {target.startup_timeout_s:g} s "
                f"at {base}{target.health} (log: {log})"
            )
        time.sleep(0.2)
