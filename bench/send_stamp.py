"""Which send stamp makes TTFT true: before the request, before its last write, after it, or the kernel's.

    .venv/bin/python bench/send_stamp.py                               # 256 and 1,024 streams, pinned
    .venv/bin/python bench/send_stamp.py --streams 256 --replicas 2 --no-pin

One Goodput run per stream count (one Locust process, closed-loop streaming chat against the
huge-batch simulated engine with its trace) with bench/send_stamp_probe.py loaded beside the
locustfile: the rows carry Goodput's stamp (read right before the write of the request's last
byte) and the probe records, for the same requests, the stamp taken before the request, the
write's return and the kernel's transmit stamp. So the four are compared on the same requests
under the same load, not across runs of a noisy host. Over the steady window, per request (ms):
- `err` = client TTFT − the engine's TTFT (its trace: first emit − arrival), with each stamp:
  sent (Goodput's), post (the write's return), before (before the request), kernel tx; a negative
  err is a client TTFT below the engine's, which no true stamp gives;
- `sent − before`: how long the request waited for the loop before its write; `post − sent`: how
  long the write took to return (long when the server it woke took the core); `tx − sent`: the
  kernel's transmit stamp after Goodput's; `tx µs`: what reading the transmit stamp costs per
  request (one more syscall, on the error queue);
- the parts of Goodput's error: `recv` = client first-token time − engine emit (how late the
  client read the token), `send` = engine arrival − the client's send stamp (the request in flight
  on loopback, µs: the engine stamps arrival with the kernel's receive stamp; with
  `SIMSERVER_KERNEL_STAMPS=0` in the environment it stamps when its loop parses the request, after
  the step's burst of writes, and `send` holds that wait too).
"""

from __future__ import annotations

import argparse
import csv
import math
from pathlib import Path

from loadgen_common import (
    cpu_pressure,
    machine,
    pct,
    read_rows,
    read_trace,
    run_locust,
    simserver,
    tempdir,
    ttft_errors,
)


def read_probe(folder: Path) -> dict[str, tuple[float, float, float, float]]:
    out: dict[str, tuple[float, float, float, float]] = {}
    for path in folder.glob("probe-*.csv"):
        with open(path, newline="") as fh:
            for r in csv.DictReader(fh):
                out[r["request_id"]] = (
                    float(r["sent_minus_before_s"]) * 1000,
                    float(r["post_minus_sent_s"]) * 1000,
                    float(r["sent_minus_tx_s"]) * 1000,
                    float(r["tx_read_s"]) * 1e6,
                )
    return out


def measure(engine, work: Path, streams: int, args: argparse.Namespace) -> dict:
    probe_dir = work / f"probe-{streams}"
    probe_dir.mkdir()
    dataset = f"random:n=2000,input=fixed(64),output=uniform({args.max_tokens // 2},{args.max_tokens})"
    run = run_locust(engine.url, work / "runs", f"s{streams}", streams, args.duration,
                     ["--dataset", dataset, "--max-tokens", str(args.max_tokens), "--ignore-eos",
                      "--request-timeout", "60s"], env={"GOODPUT_STAMP_PROBE": str(probe_dir)},
                     pin_cores=None if args.no_pin else {1},
                     locustfiles="locustfile.py,bench/send_stamp_probe.py")  # fmt: skip
    t0 = run.meta["t_start_unix"] + args.warmup + streams / 1000
    t1 = run.meta["t_end_unix"] - 2 * args.max_tokens * args.step_ms / 1000 - 2.0
    probe = read_probe(probe_dir)
    rows = [r for r in read_rows(run.run_dir) if r["request_id"] in probe]
    errs = ttft_errors(rows, read_trace(engine.trace), t0, t1)
    out: dict[str, list[float]] = {k: [] for k in ("before", "post", "tx", "wait", "write", "late", "cost")}
    for rid, full in errs.by_request.items():
        gap, write, tx_gap, us = probe[rid]
        out["wait"].append(gap)
        out["before"].append(full + gap)
        out["write"].append(write)
        out["post"].append(full - write)
        if not math.isnan(tx_gap):
            out["late"].append(-tx_gap)
            out["tx"].append(full + tx_gap)
            out["cost"].append(us)
    (lg,) = run.meta.get("loadgen", {}).get("workers", {}).values() or [{}]
    print(f"  {streams} streams: Locust CPU {run.cpu.cpu_between(t0, t1) / (t1 - t0) * 100:.0f} %"
          f"{cpu_pressure()} at the end", flush=True)  # fmt: skip
    return {"streams": streams, "n": len(errs.full), "errs": errs, **out, "sat": lg.get("saturated_seconds"),
            "lag99": (lg.get("lag_ms") or {}).get("p99")}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--streams", type=int, nargs="+", default=[256, 1024])
    ap.add_argument("--duration", type=float, default=22.0, help="seconds per run")
    ap.add_argument("--warmup", type=float, default=4.0)
    ap.add_argument("--max-tokens", type=int, default=96, help="output tokens: max/2 to max (ignore_eos)")
    ap.add_argument("--step-ms", type=float, default=20.0, help="engine step: one token per stream per step")
    ap.add_argument(
        "--replicas", type=int, default=1, help="engine replicas (python -m simserver --replicas)"
    )
    ap.add_argument(
        "--no-pin", action="store_true", help="do not pin (default: engine core 0, Locust core 1)"
    )
    args = ap.parse_args()

    print(machine())
    work = tempdir("send-stamp")
    results = []
    with simserver(work, step_s=args.step_ms / 1000, pin_core=None if args.no_pin else 0,
                   replicas=args.replicas) as engine:  # fmt: skip
        for n in args.streams:
            results.append(measure(engine, work, n, args))
            print(f"  {n} streams: {results[-1]['n']} requests joined", flush=True)
    print(f"\nengine step {args.step_ms:g} ms, {args.replicas} replica(s), output {args.max_tokens // 2}–"
          f"{args.max_tokens} tokens, {args.duration:g} s per run, one Locust process"
          + ("" if args.no_pin else ", pinned: engine core 0, Locust core 1"))  # fmt: skip
    head = (f"{'streams':>8}{'n':>6} | {'err p50/p99: sent':>18}{'post':>13}{'before':>13}{'kernel tx':>13}"
            f"{'<0 % sent/post':>15} | {'sent−before p50/p99/max':>24}{'post−sent p50/p99/max':>23} | "
            f"{'tx−sent p50/p99':>16}{'tx µs':>7} | {'recv p99':>9}{'send p50/p99':>14}{'lag p99':>8}"
            f"{'sat s':>6}")  # fmt: skip
    print(head + "\n" + "-" * len(head))
    for r in results:
        e = r["errs"]
        below = "/".join(
            f"{sum(x < 0 for x in xs) / max(len(xs), 1) * 100:.1f}" for xs in (e.full, r["post"])
        )
        print(f"{r['streams']:>8}{r['n']:>6} | {_pp(e.full):>18}{_pp(r['post']):>13}{_pp(r['before']):>13}"
              f"{_pp(r['tx']):>13}{below:>15} | {_ppm(r['wait']):>24}{_ppm(r['write']):>23} | "
              f"{_pp(r['late'], 3):>16}{pct(r['cost'], 0.5):>7.1f} | {e.p('receive', 0.99):>9.2f}"
              f"{_pp(e.send):>14}{_f(r['lag99']):>8}{_f(r['sat']):>6}")  # fmt: skip
    print(
        "(ms; err: client TTFT − engine TTFT, joined by request id, with each send stamp: sent = Goodput's\n"
        "(right before the last write), post = the write's return, before = before the request, kernel\n"
        "tx = SO_TIMESTAMPING's software transmit stamp; <0 %: share of requests whose err is below zero,\n"
        "with Goodput's stamp / with the write's return; recv/send: the parts of err sent, see the\n"
        "docstring; lag: the Locust process's event-loop lag; sat: its saturated seconds)"
    )
    for r in results:
        e = r["errs"]
        part = "send (the request reached the engine late)" if e.p("send", 0.99) > e.p("receive", 0.99) else (
            "recv (the client read the first token late)")  # fmt: skip
        print(f"{r['streams']} streams: the remaining error p99 {e.p('full', 0.99):.2f} ms is mostly {part}: "
              f"send p99 {e.p('send', 0.99):.2f} ms, recv p99 {e.p('receive', 0.99):.2f} ms")  # fmt: skip
    print(f"run folders, probe files and trace: {work}")


def _pp(xs: list[float], digits: int = 2) -> str:
    return f"{pct(xs, 0.5):.{digits}f}/{pct(xs, 0.99):.{digits}f}"


def _ppm(xs: list[float]) -> str:
    return f"{_pp(xs)}/{max(xs, default=math.nan):.1f}"


def _f(v: float | int | None) -> str:
    return "-" if v is None else f"{v:.0f}" if isinstance(v, int) or v >= 10 else f"{v:.1f}"


if __name__ == "__main__":
    main()
