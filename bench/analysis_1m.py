"""Analysis speed on a large run: generate a 1,000,000-row requests.csv, then time every analysis phase.

Issue 6 asks for 1M rows → full report in ≤ 20 s on 2 cores. This script is the evidence: it writes a
realistic run folder (step ramp, ~2 % errors, ITL strings as the record sink writes them: `%.6f`
gaps joined by `;`) and runs the same code path as `python -m analysis RUN_DIR`, printing seconds
per phase. Not a timed test: run it by hand.

    .venv/bin/python bench/analysis_1m.py                 # 1M rows in a temp folder, removed after
    .venv/bin/python bench/analysis_1m.py --rows 200000 --keep /tmp/run200k
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# the server's own timing (engine_*_s): none in a generated run
ENGINE_COLUMNS = ("engine_prefill_s", "engine_decode_s", "engine_load_s", "engine_queue_s")
# the server's speculative decoding per request: none in a generated run
SPEC_COLUMNS = ("spec_draft_tokens", "spec_accepted_tokens", "spec_steps")
COLUMNS = (
    "run_id", "worker", "user", "session", "turn", "request_id", "scenario", "dataset", "step", "target_users",
    "t_scheduled_unix", "t_start_unix", "ttft_s", "e2e_s", "tpot_s", "itl_s", "n_chunks", "prompt_tokens",
    "output_tokens", "cached_tokens", "tokens_source", "ok", "http_status", "error", "error_detail",
    "finish_reason", "ttfo_s", "reasoning_tokens", "tool_ttft_s", "tool_call_tokens", "backoff_s", "tenant", "api",
    *ENGINE_COLUMNS, "new_connection", *SPEC_COLUMNS, "model", "served_model", "gateway_attempts", "images",
)  # fmt: skip  # the contract's order (core/record.py), written out: a bench reads no package of ours


def generate(
    run_dir: Path, rows: int, seed: int = 0, mean_output_tokens: float = 128.0, steps: int = 60
) -> None:
    """A step-ramp run: `steps` steps of 1..steps users over one hour, latency rising with load."""
    rng = np.random.default_rng(seed)
    run_dir.mkdir(parents=True, exist_ok=True)
    t0, duration = 1_767_225_600.0, 3600.0
    step_len = duration / steps
    # ITL strings from a pool (formatting 1e8 floats in Python would take minutes): each entry has
    # its own gap count and gap sizes, so the parser sees the real format and a realistic length mix.
    pool_size = 8192
    n_gaps = np.clip(rng.lognormal(np.log(mean_output_tokens), 0.5, pool_size), 1, 1024).astype(np.int64) - 1
    pool_text, pool_sum = [], np.empty(pool_size)
    for k, n in enumerate(n_gaps):
        gaps = np.round(rng.gamma(4.0, 0.006, n), 6)
        pool_text.append(";".join(f"{g:.6f}" for g in gaps))
        pool_sum[k] = gaps.sum()
    pick = rng.integers(0, pool_size, rows)
    t_start = np.sort(rng.uniform(t0, t0 + duration, rows))
    step = np.minimum((t_start - t0) // step_len, steps - 1).astype(np.int64)
    users = step + 1
    ttft = rng.lognormal(np.log(0.05 + 0.01 * users), 0.4)
    out_tok = n_gaps[pick] + 1
    e2e = ttft + pool_sum[pick]
    tpot = np.where(out_tok > 1, (e2e - ttft) / np.maximum(out_tok - 1, 1), np.nan)
    u = rng.random(rows)
    err = np.full(rows, "", dtype=object)
    err[u < 0.02] = "timeout"
    err[u < 0.012] = "http_429"
    err[u < 0.005] = "disconnect"
    ok = err == ""
    bad = ~ok
    itl = pc.take(pa.array(pool_text, type=pa.large_string()), pa.array(pick))
    itl = pc.if_else(pa.array(ok), itl, pa.scalar("", pa.large_string()))

    def num(a: np.ndarray, mask: np.ndarray | None = None) -> pa.Array:
        return pa.array(a, mask=mask)

    table = pa.table(
        {
            "run_id": pa.array(np.full(rows, "bench")),
            "worker": pa.array(np.where(np.arange(rows) % 2 == 0, "w0", "w1")),
            "user": num(rng.integers(1, steps + 1, rows)),
            "session": pa.array(np.full(rows, "")),
            "turn": num(np.zeros(rows, dtype=np.int64)),
            "request_id": pa.array(np.char.add("bench-", np.arange(rows).astype(str))),
            "scenario": pa.array(np.full(rows, "chat")),
            "dataset": pa.array(np.full(rows, "chat")),
            "step": num(step),
            "target_users": num(users),
            "t_scheduled_unix": pa.nulls(rows, pa.float64()),
            "t_start_unix": num(np.round(t_start, 6)),
            "ttft_s": num(np.round(ttft, 6), bad),
            "e2e_s": num(np.round(e2e, 6), bad),
            "tpot_s": num(np.round(tpot, 6), bad | np.isnan(tpot)),
            "itl_s": itl,
            "n_chunks": num(np.where(ok, out_tok, 0)),
            "prompt_tokens": num(rng.integers(50, 2000, rows), bad),
            "output_tokens": num(out_tok, bad),
            "cached_tokens": num(np.zeros(rows, dtype=np.int64), bad),
            "tokens_source": pa.array(np.where(ok, "usage", "")),
            "ok": pa.array(ok),
            "http_status": num(np.where(err == "http_429", 429, 200), err == "timeout"),
            "error": pa.array(err.astype(str)),
            "error_detail": pa.array(np.where(ok, "", "simulated failure")),
            "finish_reason": pa.array(np.where(ok, "length", "")),
            **{c: pa.nulls(rows, pa.float64()) for c in ("ttfo_s", "reasoning_tokens", "tool_ttft_s")},
            **{"tool_call_tokens": pa.nulls(rows, pa.int64()), "backoff_s": pa.nulls(rows, pa.float64())},
            **{"tenant": pa.array([""] * rows), "api": pa.array(["chat"] * rows)},
            **{c: pa.nulls(rows, pa.float64()) for c in ENGINE_COLUMNS},
            "new_connection": pa.array(np.zeros(rows, dtype=bool)),  # every request on a kept-alive one
            **{c: pa.nulls(rows, pa.int64()) for c in SPEC_COLUMNS},
            **dict.fromkeys(("model", "served_model"), pa.array(["sim-llm"] * rows)),  # answered as asked
            "gateway_attempts": pa.nulls(rows, pa.int64()),  # no gateway in front
            "images": pa.array(np.zeros(rows, dtype=np.int64)),  # text prompts
        }
    )
    assert tuple(table.column_names) == COLUMNS
    pacsv.write_csv(table, run_dir / "requests.csv", pacsv.WriteOptions(quoting_style="needed"))
    write_meta(run_dir, t0, duration, steps)


def write_meta(run_dir: Path, t0: float, duration: float, steps: int) -> None:
    """run.json of the generated step ramp: one stage per step, the chat SLO."""
    step_len = duration / steps
    stages = [
        {
            "step": s,
            "label": f"{s + 1} users",
            "target_users": s + 1,
            "rate_rps": None,
            "t_start_unix": t0 + s * step_len,
            "t_end_unix": t0 + (s + 1) * step_len,
            "warmup_s": 0.0,
        }
        for s in range(steps)
    ]
    meta = {
        "run_id": "bench",
        "name": "bench-1m",
        "target": "http://127.0.0.1:8000",
        "model": "bench-model",
        "user_class": "ChatUser",
        "dataset": "chat",
        "shape": {"name": "step", "params": {"step_users": 1, "step_interval_s": step_len}},
        "stages": stages,
        "slo": {"profile": "chat", "ttft_s": 0.5, "tpot_s": 0.25, "e2e_s": None},
        "t_start_unix": t0,
        "t_end_unix": t0 + duration,
    }
    (run_dir / "run.json").write_text(json.dumps(meta, indent=2))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument(
        "--mean-output-tokens", type=float, default=128.0, help="median output length (ITL count + 1)"
    )
    ap.add_argument(
        "--keep", type=Path, help="write the run here and keep it (default: a temp folder, removed)"
    )
    ap.add_argument("--reuse", action="store_true", help="with --keep: reuse an existing requests.csv")
    args = ap.parse_args()
    tmp = None if args.keep else Path(tempfile.mkdtemp(prefix="goodput-bench-"))
    run_dir = args.keep or tmp / "run"
    try:
        if not (args.reuse and (run_dir / "requests.csv").exists()):
            t = time.perf_counter()
            generate(run_dir, args.rows, mean_output_tokens=args.mean_output_tokens)
            print(f"generate: {time.perf_counter() - t:.1f} s (not part of the budget)")
        size_mb = (run_dir / "requests.csv").stat().st_size / 1e6
        print(f"requests.csv: {args.rows:,} rows, {size_mb:,.0f} MB, {os.cpu_count()} CPUs")
        # The real CLI in a fresh interpreter: imports, load, metrics, plots, summary.*, report.html.
        cmd = [sys.executable, "-m", "analysis", str(run_dir), "--timings", "--quiet"]
        t = time.perf_counter()
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=False)
        total = time.perf_counter() - t
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        for line in proc.stderr.splitlines():
            print(line.replace("timing: ", "  "))
        if proc.returncode != 0:
            print(f"analysis failed (exit {proc.returncode})")
            return 1
        itl = json.loads((run_dir / "summary.json").read_text())["samples"]["itl_s"]
        print(f"total: {total:.1f} s for {args.rows:,} rows ({itl:,} ITL gaps) — budget 20 s")
        print(
            f"cpu: {cpu:.1f} s (user+sys); load average now {os.getloadavg()[0]:.1f} (other work on the machine slows this)"
        )
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
