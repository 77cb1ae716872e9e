"""Write a tiny random-weight LLaVA-style vision projector ("mmproj") for llama.cpp's server.

`llama-server -m tiny-llama.gguf --mmproj tiny-mmproj.gguf` then accepts images (chat `image_url`
parts, Anthropic `image` blocks), so Goodput's image workloads run against a second real engine.
Like scripts/build_tiny_gguf.py it is written with the gguf-py vendored in the pinned llama.cpp tree,
from seeded numpy arrays; nothing is downloaded.

What llama.cpp's vision encoder (tools/mtmd/clip.cpp) reads from it:

- `clip.projector_type` = "mlp" (LLaVA-1.5): a CLIP ViT (conv patch embedding, class embedding,
  learned position embeddings, pre-LayerNorm, pre-norm blocks with biased q/k/v/out and a
  quick-GELU MLP), then mm.0 (linear) -> GELU -> mm.2 (linear) into the text model's embedding
  width. As in LLaVA the features come from the second-to-last block, so block_count 2 runs 1 block.
- The image is resized (aspect kept, padded with LLaVA's grey) to image_size x image_size, so every
  image costs the same number of tokens: (image_size / patch_size)^2, 16 x 16 = 256 by default,
  whatever its size; no begin/end marker tokens for this projector type.
- `clip.vision.projection_dim` and mm.2's output rows must equal the text model's n_embd
  (llama.embedding_length, 512 for scripts/build_tiny_gguf.py's default), or the server refuses to
  start ("mismatch between text model (n_embd = ...) and mmproj"). --text-model reads it from the file.
- weights: float32, normal(0, 0.02), norms 1 / biases 0, seed fixed: two runs give byte-identical files.

    .venv/bin/python scripts/build_tiny_mmproj.py --gguf-py .llamacpp/src/llama.cpp/gguf-py \\
        --text-model .llamacpp/model/tiny-llama.gguf --out .llamacpp/mmproj/tiny-mmproj.gguf
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
# CLIP's (OpenAI) normalization, as LLaVA-1.5's preprocessor_config.json has it
IMAGE_MEAN = [0.48145466, 0.4578275, 0.40821073]
IMAGE_STD = [0.26862954, 0.26130258, 0.27577711]


def fail(msg: str) -> None:
    sys.exit(f"build_tiny_mmproj: {msg}")


def text_n_embd(gguf: Any, path: Path) -> int:
    r = gguf.GGUFReader(path)
    arch = r.fields["general.architecture"].contents()
    key = f"{arch}.embedding_length"
    if key not in r.fields:
        fail(f"{path}: no {key}")
    return int(r.fields[key].contents())


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--gguf-py",
        type=Path,
        default=ROOT / ".llamacpp" / "src" / "llama.cpp" / "gguf-py",
        help="the vendored gguf-py folder (default: .llamacpp/src/llama.cpp/gguf-py)",
    )
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument(
        "--text-model", type=Path, help="the text GGUF whose embedding width the projector must output"
    )
    ap.add_argument("--text-dim", type=int, default=512, help="that width, when --text-model is not given")
    ap.add_argument("--seed", type=int, default=4321)
    ap.add_argument("--image-size", type=int, default=224)
    ap.add_argument("--patch-size", type=int, default=14)
    ap.add_argument("--dim", type=int, default=64, help="ViT width")
    ap.add_argument("--layers", type=int, default=2, help="ViT blocks (the last is not run, as in LLaVA)")
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--ffn", type=int, default=256)
    args = ap.parse_args()
    if args.dim % args.heads:
        fail(f"--heads {args.heads} must divide --dim {args.dim}")
    if args.image_size % args.patch_size:
        fail(f"--patch-size {args.patch_size} must divide --image-size {args.image_size}")
    if args.ffn == args.dim:
        fail("--ffn must differ from --dim (clip.cpp takes ffn_down[0] == n_embd for swapped legacy weights)")
    if args.layers < 2:
        fail("--layers must be >= 2 (the LLaVA graph stops before the last block)")
    return args


def write_keys(w, gguf, args: argparse.Namespace, n_text: int) -> None:
    """The keys clip.cpp reads before it loads the tensors: an MLP (LLaVA-1.5) projector over a ViT."""
    w.add_type(gguf.GGUFType.MMPROJ)
    w.add_name("goodput-tiny-mmproj")
    w.add_description("random-weight LLaVA-style image encoder for load-testing (not a vision model)")
    w.add_file_type(gguf.LlamaFileType.ALL_F32)
    w.add_clip_has_vision_encoder(True)
    w.add_clip_projector_type("mlp")  # PROJECTOR_TYPE_MLP in clip-impl.h
    w.add_vision_projection_dim(n_text)
    w.add_vision_image_size(args.image_size)
    w.add_vision_patch_size(args.patch_size)
    w.add_vision_embedding_length(args.dim)
    w.add_vision_feed_forward_length(args.ffn)
    w.add_vision_block_count(args.layers)
    w.add_vision_head_count(args.heads)
    w.add_vision_attention_layernorm_eps(1e-5)
    w.add_vision_image_mean(IMAGE_MEAN)
    w.add_vision_image_std(IMAGE_STD)
    w.add_vision_use_gelu(False)  # CLIP's quick_gelu


def main() -> None:
    args = parse_args()
    sys.path.insert(0, str(args.gguf_py))
    import gguf  # the vendored copy: same version as the server that reads the file

    t0 = time.perf_counter()
    n_text = text_n_embd(gguf, args.text_model) if args.text_model else args.text_dim
    d, p = args.dim, args.patch_size
    n_patches = (args.image_size // p) ** 2
    rng = np.random.default_rng(args.seed)
    n_params = 0

    args.out.parent.mkdir(parents=True, exist_ok=True)
    w = gguf.GGUFWriter(args.out, "clip")  # "clip": the dummy architecture of every mmproj file
    write_keys(w, gguf, args, n_text)

    def rand(name: str, *shape: int) -> None:  # numpy shape = (out, in); GGUF stores it reversed
        nonlocal n_params
        w.add_tensor(name, (rng.standard_normal(shape, dtype=np.float32) * 0.02).astype(np.float32))
        n_params += int(np.prod(shape))

    def const(name: str, n: int, v: float) -> None:
        nonlocal n_params
        w.add_tensor(name, np.full(n, v, dtype=np.float32))
        n_params += n

    rand("v.patch_embd.weight", d, 3, p, p)  # conv kernel: ggml ne = [p, p, 3, d]
    rand("v.class_embd", d)
    rand("v.position_embd.weight", n_patches + 1, d)
    const("v.pre_ln.weight", d, 1.0)
    const("v.pre_ln.bias", d, 0.0)
    for i in range(args.layers):
        for t in ("attn_q", "attn_k", "attn_v", "attn_out"):
            rand(f"v.blk.{i}.{t}.weight", d, d)
            const(f"v.blk.{i}.{t}.bias", d, 0.0)
        for t in ("ln1", "ln2"):
            const(f"v.blk.{i}.{t}.weight", d, 1.0)
            const(f"v.blk.{i}.{t}.bias", d, 0.0)
        rand(f"v.blk.{i}.ffn_up.weight", args.ffn, d)
        const(f"v.blk.{i}.ffn_up.bias", args.ffn, 0.0)
        rand(f"v.blk.{i}.ffn_down.weight", d, args.ffn)
        const(f"v.blk.{i}.ffn_down.bias", d, 0.0)
    rand("mm.0.weight", n_text, d)
    const("mm.0.bias", n_text, 0.0)
    rand("mm.2.weight", n_text, n_text)
    const("mm.2.bias", n_text, 0.0)

    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()

    info = {
        "what": "random-weight LLaVA-style mmproj for load-testing llama.cpp's server on CPU (not a vision model)",
        "projector_type": "mlp",
        "params": n_params,
        "image_tokens": n_patches,
        "text_dim": n_text,
        **{
            k: getattr(args, k) for k in ("seed", "image_size", "patch_size", "dim", "layers", "heads", "ffn")
        },
        "bytes": args.out.stat().st_size,
    }
    args.out.with_suffix(".json").write_text(json.dumps(info, indent=2) + "\n")
    print(
        f"mmproj: {n_params / 1e6:.2f}M params, ViT {args.layers}x{d} on {args.image_size}px/{p}"
        f" -> {n_patches} image tokens of width {n_text}, float32, {info['bytes'] / 1e6:.1f} MB,"
        f" written in {time.perf_counter() - t0:.1f}s to {args.out}"
    )


if __name__ == "__main__":
    main()
