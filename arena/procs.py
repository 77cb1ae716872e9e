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
from typing import Any

from arena.matrix import HOST, Target
from arena.targets import Ports

# The arena's Ctrl-C is a KeyboardInterrupt raised by its signal handler, wherever the main thread
# is. It must not land inside Popen.poll/wait: CPython takes the Popen's waitpid lock there, and an
# exception raised between the take and the try/finally that gives it back leaves it held, so every
# later wait on that child times out though the child is long gone (seen once: the arena's Ctrl-C
# test on a busy host, a SIGKILLed Locust "still running" 10 s later, exit 1 with a traceback).
# While a child's status is read, the handler only notes the signal; the wait raises it after.
_reading = False
_deferred = False
POLL_S = 0.05


def interrupt(signum: int, frame: Any) -> None:
    """The arena's SIGTERM/SIGINT handler: stop the matrix as Ctrl-C does (KeyboardInterrupt), at
    once, or right after a child's status read if one is under way. SIGINT is set explicitly: a
    process started in the background by a non-interactive shell inherits SIGINT ignored, and Python
    then leaves it ignored, so `kill -INT` (or a CI job's Ctrl-C) would not reach the arena."""
    global _deferred
    if _reading:
        _deferred = True
        return
    raise KeyboardInterrupt


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
        return self._poll() is None

    def _poll(self) -> int | None:
        """The child's exit status or None, read with the interrupt handler deferring (above)."""
        global _reading, _deferred
        _reading = True
        try:
            code = self.popen.poll()
        finally:
            _reading = False
        if _deferred:
            _deferred = False
            raise KeyboardInterrupt
        return code

    def wait(self, timeout_s: float) -> int:
        """Popen.wait(timeout_s) that Ctrl-C can interrupt without spoiling the Popen."""
        deadline = time.monotonic() + timeout_s
        while (code := self._poll()) is None:
            if time.monotonic() >= deadline:
                raise subprocess.TimeoutExpired(self.cmd, timeout_s)
            time.sleep(POLL_S)
        return code

    def stop(self, timeout_s: float = 15.0) -> int | None:
        """SIGTERM to the group, SIGKILL after `timeout_s`; returns the exit status."""
        if self._poll() is None:
            self._signal(signal.SIGTERM)
            try:
                self.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self._signal(signal.SIGKILL)
                self.wait(10)
        else:
            self._signal(signal.SIGKILL)  # leftovers of a group whose leader already exited
        self._fh.close()
        return self.popen.returncode

    def _signal(self, sig: int) -> None:
        try:
            os.killpg(self.popen.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass


_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def healthy(url: str) -> bool:
    """The server answers its health route, asked directly: a proxy in the environment (HTTP_PROXY)
    must not stand between the arena and a server it started on this host."""
    try:
        with _DIRECT.open(url, timeout=2.0) as r:
            return r.status == 200
    except (urllib.error.URLError, OSError, ValueError):
        return False


class Servers:
    """A cell's launched processes, named: a router target's replicas first, then the target itself
    ("server"); stopped together, the target first, so no request it still holds finds a replica gone."""

    def __init__(self) -> None:
        self.children: list[tuple[str, Child]] = []

    def add(self, name: str, child: Child) -> Child:
        self.children.append((name, child))
        return child

    def exited(self) -> tuple[str, Child] | None:
        """The first of them that is no longer running (None: all are)."""
        return next(((n, c) for n, c in self.children if not c.running()), None)

    def stop(self) -> None:
        for _, child in reversed(self.children):
            child.stop()


def _free_ports(n: int) -> list[int]:
    """`n` distinct free ports (two binds in a row can be given the same one once the first is closed)."""
    out: list[int] = []
    while len(out) < n:
        if (p := free_port()) not in out:
            out.append(p)
    return out


def start_server(target: Target, logs: Path, prefix: str) -> tuple[Servers, str, Ports]:
    """Launch the target (after its replicas, if it has any) on free ports and wait until each answers
    its health URL; a CellError if one exits or never answers. Logs: `<prefix>.server.log`, and
    `<prefix>.replicaN.log` for each replica."""
    servers = Servers()
    try:
        urls: list[str] = []
        b = target.backends
        if b is not None:
            for i, port in enumerate(_free_ports(b.replicas), 1):
                values = Ports(port).values() | {"replica": str(i - 1)}
                log = logs / f"{prefix}.replica{i}.log"
                servers.add(f"replica {i}", Child(b.command(values), log, b.environment(values)))
                urls.append(f"http://{HOST}:{port}")
            # started together (a real engine loads for a minute or more), awaited in turn
            for (name, child), url in zip(servers.children, urls, strict=True):
                _wait_healthy(f"target '{target.label}', {name}", child, url + b.health, b.startup_timeout_s)
        port, metrics_port = _free_ports(2)  # (the replicas hold theirs by now: they answered)
        ports = Ports(port, metrics_port, tuple(urls))
        log = logs / f"{prefix}.server.log"
        child = servers.add("server", Child(target.command(ports), log, target.environment(ports)))
        base = f"http://{HOST}:{port}"
        _wait_healthy(f"target '{target.label}'", child, base + target.health, target.startup_timeout_s)
        return servers, base, ports
    except BaseException:  # a failed start, or Ctrl-C while waiting
        servers.stop()
        raise


def _wait_healthy(what: str, child: Child, url: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        if not child.running():
            code = child.stop()
            detail = last_line(child.log)
            raise CellError(
                f"{what}: launch command exited with status {code} before it was healthy"
                + (f": {detail}" if detail else "")
                + f" (log: {child.log})"
            )
        if healthy(url):
            return
        if time.monotonic() > deadline:
            raise CellError(f"{what}: not healthy after {timeout_s:g} s at {url} (log: {child.log})")
        time.sleep(0.2)
