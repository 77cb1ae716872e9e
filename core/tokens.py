"""The token rule: how Goodput counts tokens without a model tokenizer, in one place.

    a token is a run of word characters (`\\w+`) or a single other non-space character.

`count_tokens("Hello, world!") == 4`. Sizing a workload must not need a model tokenizer and the
simulated engine needs a count it can reproduce exactly, so both use this rule: workloads/ to size
synthetic prompts and describe datasets, simserver/ to tokenize what it serves. (A model's tokenizer
counts only what a server did not, and only when asked: `--tokenizer`, loadgen/tokencount.py.) Real BPE tokenizers
give a similar count for English prose (±25 %) and somewhat more for code; the rule is an estimate,
never a substitute for the server's `usage`.
"""

from __future__ import annotations

import re

TOKEN_RE = re.compile(r"\w+|[^\w\s]")


def tokenize(text: str) -> list[str]:
    return TOKEN_RE.findall(text) if text else []


def count_tokens(text: str) -> int:
    return len(TOKEN_RE.findall(text)) if text else 0
