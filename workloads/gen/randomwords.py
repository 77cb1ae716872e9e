"""`random` and `shared-prefix`: synthetic prompts of controlled length, made of random English words.

random:        n=100, input=lognormal(1024,512,64,2048), output=lognormal(192,96,16,768), seed=0
               (bounded so every request fits a 4096-token window, even with a small-vocabulary tokenizer)
               like=NAME|PATH copies the (input, output) length pairs of another set's requests, so
               `random:like=agentic` differs from `agentic` only in sharing no prefix at all.
shared-prefix: groups=8, prefix=2000, suffix=200, output=128, n=groups*16, seed=0
               every group has its own system prompt of `prefix` tokens (a DIST is drawn per group);
               request j belongs to group j mod groups and adds a fresh user suffix.
"""

from __future__ import annotations

import random

from workloads.conversation import Conversation, Turn
from workloads.errors import WorkloadError
from workloads.spec import Options
from workloads.tokens import synth_text

RANDOM_INPUT = "lognormal(1024,512,64,2048)"
RANDOM_OUTPUT = "lognormal(192,96,16,768)"


def _length_pairs(spec: str) -> list[tuple[int, int | None]]:
    from workloads.registry import load_workload
    from workloads.stats import request_lengths

    return [(max(1, n_in), n_out) for n_in, n_out in request_lengths(load_workload(spec))]


def generate_random(opts: Options) -> list[Conversation]:
    n = opts.integer("n", 100)
    seed = opts.integer("seed", 0, lo=0)
    like = opts.text("like")
    if like is not None and (opts.has("input") or opts.has("output")):
        raise WorkloadError(
            "random: like= copies input and output lengths; give either like= or input=/output="
        )
    input_dist = opts.length("input", RANDOM_INPUT)
    output_dist = opts.length("output", RANDOM_OUTPUT)
    pairs = _length_pairs(like) if like is not None else None
    out: list[Conversation] = []
    for i in range(n):
        rng = random.Random(f"random:{seed}:{i}")
        if pairs:
            n_in, n_out = rng.choice(pairs)
            n_out = n_out if n_out is not None else output_dist.sample(rng)
        else:
            n_in, n_out = input_dist.sample(rng), output_dist.sample(rng)
        text = synth_text(n_in, f"random:{seed}:{i}")
        turn = Turn(({"role": "user", "content": text},), n_out, None, 0.0)
        out.append(Conversation(f"random-{i:05d}", (), (turn,), "random", {}))
    return out


def generate_shared_prefix(opts: Options) -> list[Conversation]:
    groups = opts.integer("groups", 8)
    prefix_dist = opts.length("prefix", "2000")
    suffix_dist = opts.length("suffix", "200")
    output_dist = opts.length("output", "128")
    n = opts.integer("n", groups * 16)
    seed = opts.integer("seed", 0, lo=0)
    prefixes = []
    for g in range(groups):
        rng = random.Random(f"shared-prefix:{seed}:prefix:{g}")
        prefixes.append(
            (
                {
                    "role": "system",
                    "content": synth_text(prefix_dist.sample(rng), f"shared-prefix:{seed}:prefix:{g}"),
                },
            )
        )
    out: list[Conversation] = []
    for j in range(n):
        g = j % groups
        rng = random.Random(f"shared-prefix:{seed}:request:{j}")
        n_out = output_dist.sample(rng)
        text = synth_text(suffix_dist.sample(rng), f"shared-prefix:{seed}:request:{j}")
        turn = Turn(({"role": "user", "content": text},), n_out, None, 0.0)
        out.append(Conversation(f"sp-g{g}-{j:05d}", prefixes[g], (turn,), f"g{g}", {}))
    return out
