"""The demo's load against a live simulated engine, to check calibration end to end.

    .venv/bin/python bench/simserver_ramp.py                  # starts `python -m simserver --profile default`
    .venv/bin/python bench/simserver_ramp.py --url http://127.0.0.1:8000 --duration 60

Closed-loop streaming chat users (no think time), 1 user +1 every `--step` seconds, prompts of
300–800 tokens (by simserver's tokenizer: random words, nothing shared) and max_tokens 128–256,
like `make demo`. Prints TTFT and TPOT percentiles per load level as the client measured them,
next to the server's num_requests_waiting — the same table bench/simserver_calibrate.py computes
in virtual time, so the two can be compared.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from loadgen_common import simserver  # noqa: E402

from simserver.offline import percentile  # noqa: E402 - after the path is set


async def stream_chat(host: str, port: int, body: bytes) -> tuple[float, list[float]]:
    """One streaming request on a fresh connection: (send time, arrival time of each text chunk)."""
    reader, writer = await asyncio.open_connection(host, port)
    head = f"POST /v1/chat/completions HTTP/1.1\r\nHost: {host}\r\nContent-Length: {len(body)}\r\n\r\n"
    t0 = time.perf_counter()
    writer.write(head.encode() + body)
    await reader.readuntil(b"\r\n\r\n")
    times: list[float] = []
    while True:
        size = int((await reader.readline()).strip(), 16)
        data = await reader.readexactly(size + 2)
        t = time.perf_counter()
        if size == 0:
            break
        for event in data[:-2].split(b"\n\n"):
            if event.startswith(b"data: {") and b'"content":"' in event and b'"role"' not in event:
                times.append(t)
    writer.close()
    return t0, times


async def ramp(args: argparse.Namespace, url: str) -> None:
    host, port = url.split("//")[1].split(":")
    rng = random.Random(args.seed)
    rows: list[tuple[int, float, float | None]] = []  # (users at send, ttft, tpot)
    waiting: dict[int, int] = {}
    start = time.perf_counter()

    def users_now() -> int:
        return 1 + int((time.perf_counter() - start) // args.step)

    async def user(level: int) -> None:
        while (elapsed := time.perf_counter() - start) < args.duration:
            n = rng.randint(300, 800) - 8
            text = " ".join(f"w{rng.randrange(1_000_000)}" for _ in range(n))
            body = orjson.dumps(
                {
                    "model": "sim-llm",
                    "messages": [{"role": "user", "content": text}],
                    "max_tokens": rng.randint(128, 256),
                    "stream": True,
                }
            )
            active = users_now()
            t0, times = await stream_chat(host, int(port), body)
            if times and elapsed < args.duration:
                tpot = (times[-1] - times[0]) / (len(times) - 1) if len(times) > 1 else None
                rows.append((active, times[0] - t0, tpot))

    async def scrape() -> None:
        while time.perf_counter() - start < args.duration:
            text = await asyncio.to_thread(lambda: urllib.request.urlopen(url + "/metrics").read().decode())
            w = next(float(line.split()[-1]) for line in text.splitlines() if line.startswith("vllm:num_requests_waiting{"))  # fmt: skip
            lvl = users_now()
            waiting[lvl] = max(waiting.get(lvl, 0), int(w))
            await asyncio.sleep(0.5)

    tasks = [asyncio.create_task(scrape())]
    for level in range(1, int(args.duration // args.step) + 2):
        if time.perf_counter() - start >= args.duration:
            break
        tasks.append(asyncio.create_task(user(level)))
        await asyncio.sleep(max(0.0, start + level * args.step - time.perf_counter()))
    await asyncio.gather(*tasks)
    print(f"live step ramp: +1 user every {args.step:.0f}s for {args.duration:.0f}s against {url}")
    print("users  reqs  TTFT p50   p95 (ms)   TPOT p50   p95 (ms)  max waiting")
    for n in sorted({r[0] for r in rows}):
        ttft = [r[1] for r in rows if r[0] == n]
        tpot = [r[2] for r in rows if r[0] == n and r[2] is not None]
        print(
            f"{n:5d} {len(ttft):5d} {percentile(ttft, 50) * 1e3:9.0f} {percentile(ttft, 95) * 1e3:6.0f}"
            f" {percentile(tpot, 50) * 1e3:14.1f} {percentile(tpot, 95) * 1e3:6.1f} {waiting.get(n, 0):12d}"
        )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--url", default="")
    ap.add_argument("--profile", default="default")
    ap.add_argument("--duration", type=float, default=120.0)
    ap.add_argument("--step", type=float, default=10.0)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    if args.url:
        asyncio.run(ramp(args, args.url.rstrip("/")))
        return 0
    with tempfile.TemporaryDirectory(prefix="goodput-ramp-") as tmp:
        engine_args = ["--profile", args.profile, "--seed", "1"]
        with simserver(Path(tmp), engine_args=engine_args, trace=False) as engine:
            asyncio.run(ramp(args, engine.url))
    return 0


if __name__ == "__main__":
    sys.exit(main())
