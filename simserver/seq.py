"""A request inside the engine (Seq), its states, and the Sink that receives its tokens.

Apart from the engine (simserver/engine.py) so that the engine module holds the scheduler and step
completion only; every module that needs the sequence type imports it from here or, as before,
from simserver.engine.
"""

from __future__ import annotations

from typing import Protocol

from simserver.kvcache import block_hashes
from simserver.specdecode import SpecCounts

WAITING, RUNNING, FINISHED, ABORTED = 0, 1, 2, 3


class Sink(Protocol):
    """Receives a sequence's tokens as steps complete (the HTTP stream, or a recorder offline):
    one at a time, or a speculative verify step's tokens together (on_step)."""

    def on_token(self, seq: Seq, index: int, finish: str | None, now: float) -> None: ...

    def on_step(self, seq: Seq, indices: list[int], finish: str | None, now: float) -> None: ...


class Seq:
    """One request inside the engine. `num_tokens` = prompt + generated tokens known so far."""

    __slots__ = (
        "arrival",
        "block_hashes",
        "blocks",
        "draft",
        "finish_reason",
        "lora",
        "max_tokens",
        "num_cached",
        "num_committed",
        "num_computed",
        "num_output",
        "num_tokens",
        "preemptions",
        "prio",
        "prompt_len",
        "request_id",
        "sched_mark",
        "sink",
        "spec",
        "status",
        "t_first_sched",
        "t_first_token",
        "t_last_token",
        "tail",
        "target_len",
        "text_off",
    )

    def __init__(
        self,
        request_id: str,
        prompt: list[str],
        max_tokens: int,
        target_len: int,
        finish_reason: str,
        sink: Sink,
        text_offset: int,
        block_size: int,
        hashing: bool,
        lora: str | None = None,
    ) -> None:
        self.request_id = request_id
        self.prompt_len = self.num_tokens = len(prompt)
        self.max_tokens, self.target_len, self.finish_reason = max_tokens, target_len, finish_reason
        self.sink = sink
        self.lora = lora  # the LoRA adapter it is served with (None: the base model)
        self.text_off = text_offset  # where this request starts reading the engine's TextTable
        self.blocks: list[int] = []
        self.num_computed = self.num_committed = self.num_output = self.preemptions = self.draft = 0
        self.spec: SpecCounts | None = None  # speculative decoding's counts of this request
        self.num_cached = -1
        self.status = WAITING
        self.prio = 0
        self.sched_mark = -1
        self.arrival = self.t_first_token = self.t_last_token = 0.0
        self.t_first_sched = -1.0
        # Only full-block hashes and the tokens of the trailing partial block are kept: the prompt
        # itself is not needed again, which keeps 2,000 long prompts cheap in memory.
        self.block_hashes: list[int] = block_hashes(prompt, block_size) if hashing else []
        full = len(self.block_hashes) * block_size
        self.tail: list[str] | None = prompt[full:] if hashing else None
