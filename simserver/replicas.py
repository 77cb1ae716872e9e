"""A replica set: N independent engine processes behind one port, like vLLM's data-parallel engines.

One simulator process tops out near ~20k chunks/s on one core; `--replicas N` runs N copies of
the whole engine (scheduler, KV cache, step loop, HTTP server), each in its own process. It is a
replica set, not a bigger engine: a request is served start to finish by the replica whose socket
accepted its connection, and no replica sees another's queue or cache.

Transport — SO_REUSEPORT (Linux): the parent binds N listening sockets to the same address with
SO_REUSEPORT and forks one replica per socket; the kernel spreads new connections over them by a
hash of the connection's addresses. Chosen over one acceptor process handing sockets out because
the acceptor would be a hop on every connection and a single process that must keep up with all N
(the very ceiling this removes), while the kernel's balancing costs nothing and a replica that
dies takes only its own socket with it. A keep-alive connection stays on one replica, as behind an
L4 load balancer. The parent first binds the address *without* SO_REUSEPORT, so a port that any
process (including another replica set) listens on is refused instead of silently shared.

/metrics — any replica answers for the set: it asks each sibling over a unix socket in a private
temp dir (one line, `stats`), the sibling answers with its metric families as JSON at its next
step boundary (where the single-process server also renders /metrics: never inside a step), and
the answering replica renders all families with each series labelled `engine="<i>"` (vLLM's
data-parallel label), so a scraper that sums over `engine` gets totals. Counters and histograms
are each replica's exact values at the moment it answered. `/reset_prefix_cache` resets every
replica the same way (`reset`). `/health`, `/v1/models` are answered by whichever replica got the
connection.

Trace: every replica appends to the same `--trace` file, each line tagged `"replica": i`. A flush
is one write(2) of whole lines on an O_APPEND file, and Linux serializes writes to a regular file,
so lines of different replicas never interleave mid-line (lines are not in time order across
replicas). Replica i uses seed `seed + i`.

Lifecycle: the parent prints one line when every replica is listening; SIGTERM/SIGINT to the
parent stop all replicas (each flushes its trace and spans), SIGKILL after 15 s. Replicas die with
the parent (PR_SET_PDEATHSIG), and if one replica exits on its own the parent stops the set.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import select
import shutil
import signal
import socket
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import orjson
from prometheus_client import generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.samples import Sample

from simserver.http import Connection, Request
from simserver.runner import EngineRunner
from simserver.trace import TraceWriter

PROM = "text/plain; version=0.0.4; charset=utf-8"
READY_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 15.0
ASK_TIMEOUT_S = 5.0


@dataclass
class ReplicaCtx:
    """What a forked replica inherits: its index, its sockets, its siblings' addresses."""

    index: int
    count: int
    listen_sock: socket.socket
    stats_sock: socket.socket
    stats_paths: list[str]
    ready_fd: int


def unsupported() -> str | None:
    """Why this platform cannot run a replica set, or None."""
    if not sys.platform.startswith("linux") or not hasattr(socket, "SO_REUSEPORT"):
        return "--replicas above 1 needs Linux (SO_REUSEPORT load balancing); use --replicas 1 here"
    return None


def bind_listeners(host: str, port: int, n: int) -> list[socket.socket]:
    """N listening SO_REUSEPORT sockets on one address; OSError when the address is taken."""
    family, kind, proto, _, addr = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    with socket.socket(family, kind, proto) as probe:  # exclusive: refuses a port anyone listens on
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind(addr)
        addr = (addr[0], probe.getsockname()[1], *addr[2:])
    socks = []
    try:
        for _ in range(n):
            s = socket.socket(family, kind, proto)
            socks.append(s)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            s.bind(addr)
            s.listen(4096)
            s.setblocking(False)
    except OSError:
        for s in socks:
            s.close()
        raise
    return socks


def _unix_listener(path: str) -> socket.socket:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(path)
    s.listen(64)
    s.setblocking(False)
    return s


def _die_with_parent(parent_pid: int) -> None:
    """SIGTERM this replica when the parent dies, however it dies (no orphans)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    if os.getppid() != parent_pid:  # the parent died before prctl took effect
        os._exit(1)


def serve_set(n: int, host: str, port: int, child: Callable[[ReplicaCtx], int], ready_line: Callable[[int], str]) -> int:  # fmt: skip
    """Fork N replicas running `child`, print `ready_line(port)` once all listen, wait, stop them all."""
    listeners = bind_listeners(host, port, n)
    port = listeners[0].getsockname()[1]
    tmp = tempfile.mkdtemp(prefix="simserver-replicas-")
    paths = [os.path.join(tmp, f"replica-{i}.sock") for i in range(n)]
    stats = [_unix_listener(p) for p in paths]
    ready_r, ready_w = os.pipe()
    parent, pids = os.getpid(), {}
    for i in range(n):
        pid = os.fork()
        if pid == 0:  # the replica: keep only its own sockets
            code = 1
            try:
                os.close(ready_r)
                _die_with_parent(parent)
                for j in range(n):
                    if j != i:
                        listeners[j].close()
                        stats[j].close()
                code = child(ReplicaCtx(i, n, listeners[i], stats[i], paths, ready_w))
            except BaseException:
                traceback.print_exc()
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        pids[pid] = i
    for s in (*listeners, *stats):
        s.close()
    os.close(ready_w)
    try:
        return _supervise(pids, ready_r, lambda: ready_line(port))
    finally:
        os.close(ready_r)
        shutil.rmtree(tmp, ignore_errors=True)


def _supervise(pids: dict[int, int], ready_r: int, ready_line: Callable[[], str]) -> int:
    """Wait for readiness, then for a stop signal or a replica's death; stop and reap all."""
    alive = dict(pids)
    state = {"stopping": False, "code": 0}

    def stop(signum: int = signal.SIGTERM, frame: Any = None) -> None:
        state["stopping"] = True
        for pid in alive:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)

    def reap(block: bool) -> None:
        while alive:
            pid, status = os.waitpid(-1, 0 if block else os.WNOHANG)
            if pid == 0:
                return
            index, code = alive.pop(pid), os.waitstatus_to_exitcode(status)
            if not state["stopping"]:
                print(
                    f"simserver: replica {index} exited ({code}); stopping the replica set", file=sys.stderr
                )
                state["code"] = 1
                stop()
            if block:
                return

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    ready: set[int] = set()
    deadline = time.monotonic() + READY_TIMEOUT_S
    while len(ready) < len(pids) and not state["stopping"]:
        reap(block=False)
        if time.monotonic() > deadline:
            print(f"simserver: replicas not ready within {READY_TIMEOUT_S:.0f}s", file=sys.stderr)
            state["code"] = 1
            stop()
            break
        if select.select([ready_r], [], [], 0.1)[0]:
            ready.update(os.read(ready_r, 256))
    if not state["stopping"]:
        print(ready_line(), file=sys.stderr, flush=True)
    while alive and not state["stopping"]:
        reap(block=False)
        time.sleep(0.1)  # a signal runs `stop` at once; polling keeps the kill deadline below reachable
    deadline = time.monotonic() + STOP_TIMEOUT_S
    while alive and time.monotonic() < deadline:
        reap(block=False)
        time.sleep(0.02)
    for pid in alive:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    while alive:
        reap(block=True)
    return state["code"]


# -- inside a replica ------------------------------------------------------------------------------
class TaggedTrace(TraceWriter):
    """The shared trace file, each line tagged with the replica that served it."""

    def __init__(self, path: str, replica: int) -> None:
        super().__init__(path)
        self.replica = replica

    def write(self, record: dict[str, Any]) -> None:
        record["replica"] = self.replica
        super().write(record)


def dump_families(registry: Any) -> bytes:
    """A registry's metric families as JSON (what a sibling sends)."""
    return orjson.dumps(
        [
            [
                m.name,
                m.documentation,
                m.type,
                m.unit,
                [[s.name, s.labels, s.value, s.timestamp] for s in m.samples],
            ]
            for m in registry.collect()
        ]
    )


def load_families(data: bytes) -> list[Metric]:
    out = []
    for name, doc, typ, unit, samples in orjson.loads(data):
        m = Metric(name, doc, typ, unit)
        m.samples = [Sample(n, labels, value, ts) for n, labels, value, ts in samples]
        out.append(m)
    return out


class _Families:
    """Fixed metric families, in the shape generate_latest reads."""

    def __init__(self, families: list[Metric]) -> None:
        self.families = families

    def collect(self) -> Iterator[Metric]:
        return iter(self.families)


def render_merged(per_replica: list[list[Metric]]) -> bytes:
    """One exposition: each family once, with the series of every replica (in replica order)."""
    merged: dict[str, Metric] = {}
    for families in per_replica:
        for m in families:
            into = merged.get(m.name)
            if into is None:
                into = merged[m.name] = Metric(m.name, m.documentation, m.type, m.unit)
            into.samples.extend(m.samples)
    return generate_latest(_Families(list(merged.values())))  # type: ignore[arg-type]


class _StatsProtocol(asyncio.Protocol):
    """A sibling's question (`stats` or `reset`, one line); answered at the next step boundary."""

    def __init__(self, link: ReplicaLink) -> None:
        self.link = link
        self.buf = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buf += data
        if b"\n" in self.buf:
            command = self.buf.split(b"\n", 1)[0]
            self.link.runner.defer(lambda: self._answer(command))

    def _answer(self, command: bytes) -> None:
        t = self.transport
        if t is None or t.is_closing():
            return
        t.write(self.link.answer(command))
        t.close()


class ReplicaLink:
    """A replica's side of the set: answers its siblings, and serves /metrics for the whole set."""

    def __init__(self, ctx: ReplicaCtx, registry: Any, runner: EngineRunner) -> None:
        self.ctx, self.registry, self.runner = ctx, registry, runner
        self.siblings = [i for i in range(ctx.count) if i != ctx.index]
        self.server: asyncio.AbstractServer | None = None
        self._tasks: set[asyncio.Task] = set()
        self._warned = False

    def install(self, routes: dict[str, tuple[str, Any]]) -> None:
        routes["/metrics"] = ("GET", self._metrics)
        routes["/reset_prefix_cache"] = ("POST", self._reset)

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self.server = await loop.create_unix_server(lambda: _StatsProtocol(self), sock=self.ctx.stats_sock)

    def ready(self) -> None:
        """Tell the parent this replica listens (one byte: its index)."""
        os.write(self.ctx.ready_fd, bytes([self.ctx.index]))
        os.close(self.ctx.ready_fd)

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()

    def answer(self, command: bytes) -> bytes:
        if command == b"stats":
            return dump_families(self.registry)
        if command == b"reset":
            self.runner.core.kv.reset_prefix_cache()
            return b"ok"
        return b""

    async def _ask(self, index: int, command: bytes) -> bytes | None:
        try:
            async with asyncio.timeout(ASK_TIMEOUT_S):
                reader, writer = await asyncio.open_unix_connection(self.ctx.stats_paths[index])
                writer.write(command + b"\n")
                data = await reader.read()
                writer.close()
                return data or None
        except (OSError, TimeoutError) as e:
            if not self._warned:
                self._warned = True
                print(
                    f"simserver: replica {index} did not answer '{command.decode()}': {e!r}", file=sys.stderr
                )
            return None

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _metrics(self, req: Request, conn: Connection) -> None:
        self._spawn(self._scrape(conn))

    async def _scrape(self, conn: Connection) -> None:
        answers = await asyncio.gather(*(self._ask(i, b"stats") for i in self.siblings))
        others = dict(zip(self.siblings, answers, strict=True))

        def respond() -> None:  # at a step boundary, like the single server's /metrics
            per_replica = [
                list(self.registry.collect())
                if i == self.ctx.index
                else (load_families(others[i]) if others[i] else [])
                for i in range(self.ctx.count)
            ]
            conn.respond(200, render_merged(per_replica), PROM)

        self.runner.defer(respond)

    def _reset(self, req: Request, conn: Connection) -> None:
        self.runner.core.kv.reset_prefix_cache()

        async def rest() -> None:
            await asyncio.gather(*(self._ask(i, b"reset") for i in self.siblings))
            conn.respond(200, b"", "text/plain")

        self._spawn(rest())
