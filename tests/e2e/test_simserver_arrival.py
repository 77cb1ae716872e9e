"""The simulated engine stamps a request's arrival when it reached the host, not when its busy loop
read it: its trace is the truth the client's timing is measured against (simserver/rxstamp.py)."""

from __future__ import annotations

import json
import subprocess

import pytest

from tests.conftest import PYTHON, ROOT

pytestmark = pytest.mark.e2e

# One simserver HTTP server (uvloop, as `python -m simserver` runs it) in its own process; a plain
# thread is the client. The second request is sent while a callback holds the server's loop for
# 100 ms, as a burst of one engine step's writes does (for a few ms at 1,000 streams).
PROBE = r"""
import asyncio, json, os, socket, threading, time
import uvloop
from simserver.http import ServerCounters, serve

REQ = b"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\n{}"
arrivals, result = [], {}
served, busy_now = threading.Event(), threading.Event()

def handler(req, conn):
    arrivals.append(req.t_arrival_unix)
    conn.respond(200, b"{}")

def fds():
    return len(os.listdir("/proc/self/fd"))

def client(port):
    with socket.create_connection(("127.0.0.1", port)) as c:
        c.sendall(REQ); c.recv(4096)
        served.set()
        busy_now.wait(5)
        result["sent"] = time.time()
        c.sendall(REQ); c.recv(4096)

def busy():
    busy_now.set()
    end = time.perf_counter() + 0.1
    while time.perf_counter() < end:
        pass

async def main():
    loop = asyncio.get_running_loop()
    server = await serve("127.0.0.1", 0, handler, ServerCounters())
    before = fds()
    th = threading.Thread(target=client, args=(server.sockets[0].getsockname()[1],))
    th.start()
    while not served.is_set():
        await asyncio.sleep(0.005)
    loop.call_soon(busy)
    while th.is_alive():
        await asyncio.sleep(0.005)
    for _ in range(100):  # the server side of the closed connection goes away
        if fds() <= before:
            break
        await asyncio.sleep(0.01)
    print(json.dumps({"late_s": arrivals[1] - result["sent"], "n": len(arrivals), "fds_left": fds() - before}))

uvloop.run(main())
"""


def probe(kernel_stamps: bool) -> dict:
    env = {"SIMSERVER_KERNEL_STAMPS": "1" if kernel_stamps else "0", "PYTHONPATH": str(ROOT)}
    out = subprocess.run([PYTHON, "-c", PROBE], capture_output=True, text=True, timeout=60, cwd=ROOT, env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_arrival_is_the_kernels_receive_time_not_the_busy_loops_read_time() -> None:
    late = probe(kernel_stamps=True)
    # without the kernel's stamp the arrival is the parse time, after the 100 ms hold: the probe bites
    parsed = probe(kernel_stamps=False)
    assert late["n"] == parsed["n"] == 2
    assert parsed["late_s"] >= 0.05, parsed
    assert -0.001 <= late["late_s"] < 0.005, late
    assert late["fds_left"] <= 0 and parsed["fds_left"] <= 0, (late, parsed)
