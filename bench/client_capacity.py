"""Streamed chunks/s one load process sustains, and how true its first-token times stay, per transport.

    .venv/bin/python bench/client_capacity.py                         # 10 → 2,000 streams, raw and openai
    .venv/bin/python bench/client_capacity.py --streams 100 500 --transports raw raw-userstamps
    .venv/bin/python bench/client_capacity.py --pin                   # engine on core 0, Locust on core 1

Starts the simulated engine with a huge batch (every stream gets a token every `--step-ms`, the
step nearly independent of the batch, so the engine is not what is measured) and its trace, then
for each transport and stream count runs Locust in one process (`--shape none -u N`, closed-loop
streaming chat, `--ignore-eos`, output lengths uniform in [max/2, max]). Over the steady middle:
- chunks/s received (from requests.csv: each row's chunk arrival times) and the Locust process's
  CPU (psutil, from outside); `µs/chunk` is CPU per chunk with all per-request work included, and
  `per core` = chunks/s ÷ CPU share, the ceiling of one core;
- TTFT error (bench/loadgen_common.py `ttft_errors`): the client's TTFT minus the engine's own
  (first emit − arrival, its trace, joined by X-Request-Id), p50/p99 ms, and its two parts' p99:
  `recv` (client first-token time − engine emit) and `send` (engine arrival − client send stamp);
- the process's own event-loop lag p99 and saturated seconds (run.json `loadgen`).
Transports: `raw` (default client, kernel receive stamps, send stamped once the request's last byte
was written), `raw-userstamps` (GOODPUT_KERNEL_STAMPS=0: stamps taken in user space after each read),
`openai` (the SDK); bench/send_stamp.py compares send stamps. The last lines compare the transports at equal error (full
TTFT error p99 ≤ 2 / 10 / 50 ms). The engine and Locust share
this host's cores: on a small or busy host the engine's own CPU use lowers the achieved rates.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from loadgen_common import (
    ERR_HEAD,
    ERR_NOTE,
    chunk_times,
    machine,
    read_rows,
    read_trace,
    run_locust,
    simserver,
    tempdir,
    ttft_errors,
)

DEFAULT_STREAMS = {
    "raw": [10, 100, 200, 500, 1000, 2000],
    "raw-userstamps": [10, 100, 200, 500],
    "openai": [10, 20, 50, 100, 200],
}
TRANSPORTS = {
    "raw": ([], {}),
    "raw-userstamps": ([], {"GOODPUT_KERNEL_STAMPS": "0"}),
    "openai": (["--client", "openai"], {}),
}


def measure(engine, out: Path, transport: str, streams: int, args: argparse.Namespace) -> dict:
    extra, env = TRANSPORTS[transport]
    # Varied lengths, as real traffic: equal ones keep closed-loop users in lockstep (all finish and
    # resend in the same engine step), a worst case of its own (bench/vs_vllm_bench.py has it).
    dataset = f"random:n=2000,input=fixed({args.prompt_tokens}),output=uniform({args.max_tokens // 2},{args.max_tokens})"
    run = run_locust(engine.url, out, f"{transport}-{streams}", streams, args.duration,
                     ["--dataset", dataset, "--max-tokens", str(args.max_tokens), "--ignore-eos",
                      "--request-timeout", "60s", *extra], env=env,
                     pin_cores={1} if args.pin else None)  # fmt: skip
    request_s = args.max_tokens * args.step_ms / 1000
    t0 = run.meta["t_start_unix"] + args.warmup + streams / 1000
    t1 = run.meta["t_end_unix"] - 2 * request_s - 2.0
    if t1 - t0 < 3:
        raise SystemExit(f"client_capacity: --duration {args.duration} leaves no steady window")
    rows = read_rows(run.run_dir)
    chunks = sum(1 for r in rows for t in chunk_times(r) if t0 <= t <= t1)
    cpu_s = run.cpu.cpu_between(t0, t1)
    errs = ttft_errors(rows, read_trace(engine.trace), t0, t1)
    (lg,) = run.meta.get("loadgen", {}).get("workers", {}).values() or [{}]
    rate = chunks / (t1 - t0)
    share = cpu_s / (t1 - t0)
    return {
        "transport": transport,
        "streams": streams,
        "rate": rate,
        "cpu": share,
        "us_chunk": cpu_s / chunks * 1e6 if chunks else math.nan,
        "per_core": rate / share if share > 0 else math.nan,
        "errs": errs,
        "err99": errs.p("full", 0.99),
        "n_err": len(errs.full),
        "lag99": (lg.get("lag_ms") or {}).get("p99"),
        "sat": lg.get("saturated_seconds"),
        "failed": sum(1 for r in rows if r["ok"] != "true" and r["error"] != "cancelled"),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--streams", type=int, nargs="+", help="stream counts (default: 10 → 2,000 for raw; "
                    "10 → 200 for openai, which collapses beyond)")  # fmt: skip
    ap.add_argument("--transports", nargs="+", default=["raw", "openai"], choices=list(TRANSPORTS))
    ap.add_argument("--duration", type=float, default=22.0, help="seconds per run")
    ap.add_argument("--warmup", type=float, default=4.0, help="seconds left out at the start of a run")
    ap.add_argument(
        "--max-tokens", type=int, default=96, help="output tokens per request: max/2 to max (ignore_eos)"
    )
    ap.add_argument("--prompt-tokens", type=int, default=64)
    ap.add_argument("--step-ms", type=float, default=20.0, help="engine step: one token per stream per step")
    ap.add_argument("--pin", action="store_true", help="engine on core 0, Locust on core 1 (Linux)")
    ap.add_argument(
        "--replicas", type=int, default=1, help="engine replicas (python -m simserver --replicas)"
    )
    args = ap.parse_args()

    print(machine())
    work = tempdir("client-capacity")
    results = []
    with simserver(work, step_s=args.step_ms / 1000, pin_core=0 if args.pin else None,
                   replicas=args.replicas) as engine:  # fmt: skip
        for transport in args.transports:
            for n in args.streams or DEFAULT_STREAMS[transport]:
                r = measure(engine, work / "runs", transport, n, args)
                results.append(r)
                print(
                    f"  {transport} {n} streams: {r['rate']:.0f} chunks/s, CPU {r['cpu'] * 100:.0f} %, "
                    f"TTFT err p99 {r['err99']:.2f} ms (recv {r['errs'].p('receive', 0.99):.2f}, "
                    f"send {r['errs'].p('send', 0.99):.2f})",
                    flush=True,
                )
    print(
        f"\nengine step {args.step_ms:g} ms (one token per stream per step), prompt {args.prompt_tokens} "
        f"/ output {args.max_tokens // 2}–{args.max_tokens} tokens, {args.duration:g} s per run, one Locust process, "
        f"{args.replicas} engine replica(s)" + (", pinned: engine core 0, Locust core 1" if args.pin else "")
    )
    head = (f"{'transport':<15}{'streams':>8}{'chunks/s':>10}{'CPU':>6}{'µs/chunk':>10}{'per core':>10}"
            f"{ERR_HEAD}{'lag p99':>9}{'sat s':>7}{'failed':>7}")  # fmt: skip
    print(head + "\n" + "-" * len(head))
    for r in results:
        print(
            f"{r['transport']:<15}{r['streams']:>8}{r['rate']:>10.0f}{r['cpu'] * 100:>5.0f}%{r['us_chunk']:>10.1f}"
            f"{r['per_core']:>10.0f}{r['errs'].columns()}{_f(r['lag99']):>9}{_f(r['sat']):>7}"
            f"{r['failed']:>7}"
        )
    print(ERR_NOTE + "; lag: the process's event-loop lag, ms")
    for bound in (2.0, 10.0, 50.0):
        best: dict[str, dict] = {}
        for r in results:
            if (
                r["err99"] <= bound
                and r["n_err"] >= 20
                and r["rate"] > best.get(r["transport"], {}).get("rate", 0)
            ):
                best[r["transport"]] = r
        line = ", ".join(f"{t} {r['rate']:.0f} chunks/s ({r['streams']} streams)" for t, r in best.items())
        ratio = (f"; raw/openai {best['raw']['rate'] / best['openai']['rate']:.1f}×"
                 if "raw" in best and "openai" in best else "")  # fmt: skip
        print(f"most chunks/s with full TTFT err p99 ≤ {bound:g} ms: {line or 'none'}{ratio}")
    cost = {t: min((r["us_chunk"] for r in results if r["transport"] == t and r["rate"] > 1000), default=math.nan)
            for t in args.transports}  # fmt: skip
    print(
        "CPU per chunk at ≥ 1,000 chunks/s (best level): "
        + ", ".join(f"{t} {c:.0f} µs" for t, c in cost.items())
    )
    print(f"run folders and trace: {work}")


def _f(v: float | int | None) -> str:
    return "-" if v is None else f"{v:.0f}" if isinstance(v, int) or v >= 10 else f"{v:.1f}"


if __name__ == "__main__":
    main()
