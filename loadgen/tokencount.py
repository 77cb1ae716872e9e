"""`--tokenizer`: output tokens counted with the model's own tokenizer where the server states none.

A server that sends no token count leaves the client its chunks, one token each (`tokens_source` =
`chunks`): a gateway that refuses `stream_options` (`--stream-usage off`), LMDeploy's 2024 server,
TGI 2.0.4, llama-cpp-python before usage. That holds while a server streams a token an event; where a
chunk carries several — speculative decoding, vLLM's `--stream-interval`, a proxy that buffers — the
output tokens are too few, and TPOT and output tokens/s are per chunk, not per token.

With `--tokenizer`, such a request's answer and reasoning text are counted by the model's tokenizer
when the request has ended (after its last stamp: nothing between a chunk's arrival and its stamp),
plus one token for each event of a tool call (its arguments are rebuilt JSON, not the text the model
wrote), and its row says `tokens_source` = `tokenizer`, its reasoning tokens the reasoning text's.
A server's own count always wins. The count is the text's: what the tokenizer makes of it, which is
what the model generated where it writes text as its tokenizer would (the assumption of vLLM's and
GuideLLM's benchmarks); a random-weight model's token soup re-encodes 9 % high (README.md § Output
tokens without a server count).

The tokenizer is a `tokenizer.json` (Hugging Face's format, as models ship it), a folder holding one
(a model's folder), or a model id found in the local Hugging Face cache: nothing is downloaded, and on a
cluster each worker reads its own (the same path, or the same model in each host's cache).
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

from core.errors import OptionError
from core.result import StreamResult

FILE = "tokenizer.json"


class OutputCounter:
    """The tokens of a request's generated output, by one tokenizer."""

    def __init__(self, tokenizer: Any, source: str) -> None:
        self.tokenizer = tokenizer
        self.source = source  # the file it was read from (run.json `tokenizer`)

    def count(self, res: StreamResult) -> tuple[int, int]:
        """(output tokens, reasoning tokens): the answer's and the reasoning's text re-encoded (no
        special tokens added: the server counts none it did not generate), plus one token per
        tool-call event."""
        thought = self._tokens("".join(res.reasoning_parts))
        return self._tokens("".join(res.parts)) + thought + res.tool_events, thought

    def _tokens(self, text: str) -> int:
        return len(self.tokenizer.encode(text, add_special_tokens=False)) if text else 0


def locate(value: str) -> Path:
    """`--tokenizer`'s value as a tokenizer.json file, or an OptionError saying what was looked for."""
    path = Path(value).expanduser()
    if path.is_file():
        return path
    if path.is_dir():
        if (path / FILE).is_file():
            return path / FILE
        raise OptionError(
            f"--tokenizer: the folder '{value}' holds no {FILE} (a model folder as Hugging Face ships it)"
        )
    if value.count("/") == 1 and not value.startswith((".", "/", "~")):
        from huggingface_hub import try_to_load_from_cache

        cached = try_to_load_from_cache(value, FILE)
        if isinstance(cached, str):
            return Path(cached)
        raise OptionError(
            f"--tokenizer: '{value}' is not a file or folder here, nor a model with a {FILE} in the local "
            f"Hugging Face cache (nothing is downloaded): e.g. `hf download {value} {FILE}` first, or give the file"
        )
    raise OptionError(
        f"--tokenizer: '{value}' is not a {FILE}, a folder holding one, or a Hugging Face model id"
    )


@functools.lru_cache(maxsize=4)
def load(value: str) -> OutputCounter:
    """The counter of `--tokenizer VALUE` (read once per process: workers configure at every spawn)."""
    from tokenizers import Tokenizer

    path = locate(value)
    try:
        tokenizer = Tokenizer.from_file(str(path))
    except Exception as e:  # the library's own error for a file it cannot read as a tokenizer
        raise OptionError(
            f"--tokenizer: '{path}' is not a tokenizer the tokenizers library reads ({e})"
        ) from None
    return OutputCounter(tokenizer, str(path))
