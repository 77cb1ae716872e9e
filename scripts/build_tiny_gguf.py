"""Write the tiny random-weight Llama that llama.cpp's server loads (`make llamacpp-model`).

llama-server reads one GGUF file; there is no hub here, so the file is written directly with the
gguf-py package vendored in the same pinned llama.cpp tree the server is built from (no extra
download), from seeded numpy arrays:

- tokenizer: byte-level BPE ("gpt2" model, "gpt-2" pre-tokenizer), the first MERGES merges of the
  GPT-2 vocabulary that llama.cpp ships as models/ggml-vocab-gpt-2.gguf. GPT-2 numbers its tokens
  in merge order (256 byte tokens, then merge i makes token 256 + i), so any prefix of the merges
  with the matching prefix of the tokens is itself a complete BPE: real English tokenization with a
  small vocabulary. Three control tokens follow for ChatML (`<|endoftext|>`, `<|im_start|>`,
  `<|im_end|>`); `<|im_end|>` ends a turn (EOS/EOT), so chat answers stop where vLLM's would.
- chat template: the same ChatML as scripts/build_tiny_model.py (vLLM's tiny model), without BOS.
- weights: float32, normal(0, 0.02), norms 1, seed fixed: two runs give byte-identical files.

It is not a language model (its text is gibberish); it exists so the real server's scheduler,
streaming, tokenizer and /metrics can be measured. The size is chosen so that prefill, not HTTP,
makes the time to first token (README.md § Benchmarking real servers).

    .venv/bin/python scripts/build_tiny_gguf.py --gguf-py .llamacpp/src/llama.cpp/gguf-py \\
        --vocab .llamacpp/src/llama.cpp/models/ggml-vocab-gpt-2.gguf --out .llamacpp/model/tiny-llama.gguf
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from chatml import IM_END, IM_START, chat_template

ENDOFTEXT = "<|endoftext|>"
CHAT_TEMPLATE = chat_template(with_bos=False)


def fail(msg: str) -> None:
    sys.exit(f"build_tiny_gguf: {msg}")


def bpe_prefix(gguf: Any, vocab_path: Path, n_merges: int) -> tuple[list[str], list[str]]:
    """The first 256 + n_merges tokens and the first n_merges merges of a GPT-2 vocab GGUF."""
    r = gguf.GGUFReader(vocab_path)
    if r.fields["tokenizer.ggml.model"].contents() != "gpt2":
        fail(f"{vocab_path}: not a byte-level BPE vocabulary")
    tokens: list[str] = r.fields["tokenizer.ggml.tokens"].contents()
    merges: list[str] = r.fields["tokenizer.ggml.merges"].contents()
    if n_merges > len(merges):
        fail(f"--merges {n_merges}: the vocabulary has only {len(merges)}")
    index = {t: i for i, t in enumerate(tokens)}
    for i, m in enumerate(merges[:n_merges]):  # the prefix property the docstring relies on
        left, right = m.split(" ")
        if index.get(left + right) != 256 + i:
            fail(f"{vocab_path}: merge {i} ({m!r}) is not token {256 + i}; cannot cut the vocabulary")
    return tokens[: 256 + n_merges], merges[:n_merges]


def add_weights(w: Any, args: argparse.Namespace, n_vocab: int) -> int:
    """Seeded random Llama tensors (numpy shape = (out, in); GGUF stores them reversed)."""
    rng = np.random.default_rng(args.seed)
    head_dim = args.dim // args.heads
    kv_dim = head_dim * args.kv_heads
    n_params = 0

    def mat(name: str, rows: int, cols: int) -> None:
        nonlocal n_params
        w.add_tensor(name, (rng.standard_normal((rows, cols), dtype=np.float32) * 0.02).astype(np.float32))
        n_params += rows * cols

    def ones(name: str) -> None:
        nonlocal n_params
        w.add_tensor(name, np.ones(args.dim, dtype=np.float32))
        n_params += args.dim

    mat("token_embd.weight", n_vocab, args.dim)
    for i in range(args.layers):
        ones(f"blk.{i}.attn_norm.weight")
        mat(f"blk.{i}.attn_q.weight", args.dim, args.dim)
        mat(f"blk.{i}.attn_k.weight", kv_dim, args.dim)
        mat(f"blk.{i}.attn_v.weight", kv_dim, args.dim)
        mat(f"blk.{i}.attn_output.weight", args.dim, args.dim)
        ones(f"blk.{i}.ffn_norm.weight")
        mat(f"blk.{i}.ffn_gate.weight", args.ffn, args.dim)
        mat(f"blk.{i}.ffn_up.weight", args.ffn, args.dim)
        mat(f"blk.{i}.ffn_down.weight", args.dim, args.ffn)
    ones("output_norm.weight")
    mat("output.weight", n_vocab, args.dim)
    return n_params


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--gguf-py", required=True, type=Path, help="the vendored gguf-py folder")
    ap.add_argument("--vocab", required=True, type=Path, help="models/ggml-vocab-gpt-2.gguf of the same tree")
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--merges", type=int, default=3840, help="BPE merges kept (vocab = 256 + merges + 3)")
    ap.add_argument("--dim", type=int, default=512)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--heads", type=int, default=8)
    ap.add_argument("--kv-heads", type=int, default=4)
    ap.add_argument("--ffn", type=int, default=1536)
    ap.add_argument("--ctx", type=int, default=8192, help="trained context length the file declares")
    args = ap.parse_args()
    if args.dim % args.heads or args.heads % args.kv_heads:
        fail(
            f"--dim {args.dim}, --heads {args.heads}, --kv-heads {args.kv_heads}: heads must divide dim, kv-heads heads"
        )
    return args


def main() -> None:
    args = parse_args()
    sys.path.insert(0, str(args.gguf_py))
    import gguf  # the vendored copy: same version as the server that reads the file

    t0 = time.perf_counter()
    tokens, merges = bpe_prefix(gguf, args.vocab, args.merges)
    specials = [ENDOFTEXT, IM_START, IM_END]
    vocab = tokens + specials
    ids = {t: len(tokens) + i for i, t in enumerate(specials)}
    types = [gguf.TokenType.NORMAL] * len(tokens) + [gguf.TokenType.CONTROL] * len(specials)

    args.out.parent.mkdir(parents=True, exist_ok=True)
    w = gguf.GGUFWriter(args.out, "llama")
    w.add_name("goodput-tiny-llama")
    w.add_file_type(gguf.LlamaFileType.ALL_F32)
    w.add_context_length(args.ctx)
    w.add_embedding_length(args.dim)
    w.add_block_count(args.layers)
    w.add_feed_forward_length(args.ffn)
    w.add_head_count(args.heads)
    w.add_head_count_kv(args.kv_heads)
    w.add_rope_dimension_count(args.dim // args.heads)
    w.add_rope_freq_base(10000.0)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_vocab_size(len(vocab))
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("gpt-2")
    w.add_token_list(vocab)
    w.add_token_types(types)
    w.add_token_merges(merges)
    w.add_bos_token_id(ids[ENDOFTEXT])
    w.add_pad_token_id(ids[ENDOFTEXT])
    w.add_eos_token_id(ids[IM_END])
    w.add_eot_token_id(ids[IM_END])
    w.add_add_bos_token(False)
    w.add_add_eos_token(False)
    w.add_chat_template(CHAT_TEMPLATE)
    n_params = add_weights(w, args, len(vocab))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()

    info = {
        "what": "random-weight Llama for load-testing llama.cpp's server on CPU (not a language model)",
        "params": n_params,
        "vocab": len(vocab),
        **{
            k: getattr(args, k)
            for k in ("seed", "merges", "dim", "layers", "heads", "kv_heads", "ffn", "ctx")
        },
        "bytes": args.out.stat().st_size,
    }
    args.out.with_suffix(".json").write_text(json.dumps(info, indent=2) + "\n")
    print(
        f"model: {n_params / 1e6:.1f}M params, vocab {len(vocab)} (GPT-2 BPE, {args.merges} merges + ChatML),"
        f" float32, {info['bytes'] / 1e6:.0f} MB, written in {time.perf_counter() - t0:.1f}s to {args.out}"
    )


if __name__ == "__main__":
    main()
