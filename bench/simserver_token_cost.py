"""What one streamed token costs the simulator's writer, with and without --trace-tokens.

    .venv/bin/python bench/simserver_token_cost.py [--streams 200 --tokens 200 --rounds 5]

The end-to-end bench (simserver_capacity.py, `--server-args '--trace … --trace-tokens'`) shows the
cost inside everything else a server does, and on a shared host its CPU times move by more than
the difference. This one times only the writer: real StreamSinks (chat format) writing to real
loopback sockets drained by a reader, fed tokens the way the engine feeds them (one token to every
stream, then the next), each request ending in its trace line. It reports CPU µs per token for the
plain writer and the --trace-tokens writer (best of --rounds, which is the least disturbed).
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from simserver.answer import Answer
from simserver.engine import Seq
from simserver.http import Connection, ServerCounters
from simserver.sinks import RequestCtx, StreamSink, TracedStreamSink
from simserver.trace import TraceWriter
from simserver.wire import Reply
from simserver.wire_openai import ChatWire


def drain(sock: socket.socket) -> None:
    while sock.recv(1 << 20):
        pass


async def one_round(streams: int, tokens: int, traced: bool, trace: TraceWriter) -> float:
    loop = asyncio.get_running_loop()
    counters = ServerCounters()
    sinks, seqs, readers = [], [], []
    for i in range(streams):
        a, b = socket.socketpair()
        readers.append(threading.Thread(target=drain, args=(b,), daemon=True))
        readers[-1].start()
        _, conn = await loop.connect_accepted_socket(lambda: Connection(lambda r, c: None, counters), a)
        conn.start_stream(200, "text/event-stream")
        answer = Answer(0, None, tokens, "length")
        ctx = RequestCtx(f"r{i}", "chat", time.time(), trace, tokens=traced)
        wire = ChatWire(Reply(f"chatcmpl-{i}", 0, "m"), answer, True, None)
        sink = (TracedStreamSink if traced else StreamSink)(conn, ctx, wire, answer, None, None)
        seqs.append(Seq(f"r{i}", ["x"], tokens, tokens, "length", sink, 0, 16, False))
        sinks.append(sink)
    cpu0 = time.thread_time()
    for k in range(1, tokens + 1):
        finish = "length" if k == tokens else None
        for sink, seq in zip(sinks, seqs, strict=True):
            sink.on_token(seq, k % 200, finish, 0.0)
        await asyncio.sleep(0)  # let the transports flush, as the engine does between steps
    trace.flush()
    cpu = time.thread_time() - cpu0
    for sink in sinks:
        sink.conn.close()
    await asyncio.sleep(0.05)
    return cpu / (streams * tokens) * 1e6


async def main(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as d:
        trace = TraceWriter(Path(d) / "t.jsonl")
        best = {False: float("inf"), True: float("inf")}
        for _ in range(args.rounds):
            for traced in (False, True):
                best[traced] = min(best[traced], await one_round(args.streams, args.tokens, traced, trace))
        trace.close()
    print(f"writer CPU per token: plain {best[False]:.2f} µs, --trace-tokens {best[True]:.2f} µs "
          f"(+{best[True] - best[False]:.2f} µs; {args.streams} streams x {args.tokens} tokens, best of {args.rounds})")  # fmt: skip


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--streams", type=int, default=200)
    ap.add_argument("--tokens", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=5)
    import uvloop

    uvloop.run(main(ap.parse_args()))
