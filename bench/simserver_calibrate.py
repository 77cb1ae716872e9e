"""Calibrate and compare simserver profiles in virtual time (no server, about a second per run).

    .venv/bin/python bench/simserver_calibrate.py                      # default profile, the demo ramp
    .venv/bin/python bench/simserver_calibrate.py --compare            # profiles × datasets × SLOs

The first form replays the demo's load — closed-loop chat users, 1 user +1 every 10 s for 120 s,
300–800-token prompts, max_tokens 128–256 (or, with `--dataset datasets/random.jsonl`, the first
turns of a Goodput workload file, max_tokens capped at 256 as `make demo` does) — against the
engine core and prints TTFT/TPOT percentiles per load level: the `default` profile must degrade
between 6 and 10 users.
`--compare` runs each profile on random and shared-prefix workloads at a low and a high fixed
concurrency and prints goodput under the chat and datagen SLOs, to show there is no single best.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from simserver.offline import Record, Request, by_level, random_chat, shared_prefix_chat, simulate, step_ramp
from simserver.profiles import available, load_profile
from simserver.tokenizer import chat_tokens

SLOS = {"chat": (0.5, 0.25), "datagen": (float("inf"), 0.035)}  # (TTFT s, TPOT s), README.md § SLOs


def workload_file(path: str, max_tokens_cap: int) -> Callable[[random.Random], Request]:
    """Requests from a Goodput workload JSONL: each session's prefix + first turn, drawn at random."""
    requests: list[Request] = []
    for line in Path(path).read_text().splitlines():
        obj = json.loads(line)
        if obj.get("type") != "session" or not obj.get("turns"):
            continue
        turn = obj["turns"][0]
        cap = min(turn.get("max_tokens") or max_tokens_cap, max_tokens_cap)
        requests.append((chat_tokens([*obj.get("prefix", []), *turn["messages"]]), cap))
    if not requests:
        raise SystemExit(f"{path}: no sessions found")
    return lambda rng: rng.choice(requests)


def ramp(profile: str, seed: int, duration: float, step_s: float, dataset: str | None) -> None:
    p = load_profile(profile)
    users_at = step_ramp(step_s)
    make = workload_file(dataset, 256) if dataset else lambda r: random_chat(r, (300, 800), (128, 256))
    res = simulate(p, users_at, duration, make, seed=seed)
    what = dataset or "300-800-token random prompts, max_tokens 128-256"
    print(
        f"profile {profile}: step ramp 1 user +1 every {step_s:.0f}s for {duration:.0f}s, {what}, seed {seed}"
    )
    print("users  reqs  TTFT p50   p95 (ms)   TPOT p50   p95 (ms)  max waiting  max KV  preempted")
    for n, s in by_level(res.records).items():
        window = [x for x in res.samples if users_at(x.t) == n]
        print(
            f"{n:5d} {s['requests']:5.0f} {s['ttft_p50'] * 1e3:9.0f} {s['ttft_p95'] * 1e3:6.0f}"
            f" {s['tpot_p50'] * 1e3:14.1f} {s['tpot_p95'] * 1e3:6.1f}"
            f" {max((x.waiting for x in window), default=0):12d} {max((x.kv_usage for x in window), default=0):7.2f}"
            f" {s['preempted']:10.0f}"
        )


def goodput(records: list[Record], slo: tuple[float, float], duration: float) -> float:
    good = [r for r in records if r.ttft <= slo[0] and (r.tpot is None or r.tpot <= slo[1])]
    return len(good) / duration


def compare(profiles: list[str], seed: int, duration: float) -> None:
    system = " ".join(f"s{i}" for i in range(1500))  # a long agent system prompt shared by all
    workloads = {
        "random": lambda r: random_chat(r, (300, 800), (128, 256)),
        "shared-prefix": lambda r: shared_prefix_chat(r, system, (50, 150), (128, 256)),
    }
    print(f"fixed concurrency, {duration:.0f}s each, closed loop; goodput = req/s meeting the SLO")
    print("workload       users  profile        TTFT p95 (ms)  TPOT p95 (ms)  req/s  good chat  good datagen")
    for wname, make in workloads.items():
        for users in (2, 8, 24):
            for name in profiles:
                p = load_profile(name)
                res = simulate(p, step_ramp(1e9, users), duration, make, seed=seed)
                recs = [r for r in res.records if r.t_send >= duration * 0.2]  # drop the warm-up
                s = by_level(recs)[users]
                print(
                    f"{wname:14s} {users:5d}  {name:12s} {s['ttft_p95'] * 1e3:15.0f} {s['tpot_p95'] * 1e3:14.1f}"
                    f" {len(recs) / (duration * 0.8):6.2f} {goodput(recs, SLOS['chat'], duration * 0.8):10.2f}"
                    f" {goodput(recs, SLOS['datagen'], duration * 0.8):13.2f}"
                )
            print()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--profile", default="default", choices=available())
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--duration", type=float, default=120.0)
    ap.add_argument("--step", type=float, default=10.0, help="ramp step, s")
    ap.add_argument("--compare", action="store_true")
    ap.add_argument("--dataset", default=None, help="a Goodput workload .jsonl (e.g. datasets/random.jsonl)")
    ap.add_argument("--profiles", default="default,latency,throughput")
    args = ap.parse_args()
    if args.compare:
        compare(args.profiles.split(","), args.seed, args.duration)
    else:
        ramp(args.profile, args.seed, args.duration, args.step, args.dataset)
    return 0


if __name__ == "__main__":
    sys.exit(main())
