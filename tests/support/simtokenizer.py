"""A `tokenizer.json` that counts as the simulated engine does (core/tokens.py's rule over its
vocabulary), for `--tokenizer` tests: the engine's own count is then what the tokenizer must find."""

from __future__ import annotations

from pathlib import Path

from core.tokens import TOKEN_RE
from simserver.tokenizer import VOCAB


def write(path: Path) -> Path:
    from tokenizers import Regex, Tokenizer, models, pre_tokenizers

    vocab = {w: i for i, w in enumerate(dict.fromkeys([*VOCAB, "[UNK]"]))}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Split(Regex(TOKEN_RE.pattern), "isolated")]
    )
    tok.save(str(path))
    return path
