"""Paged KV cache with a prefix cache, after vLLM v1's KVCacheManager / BlockPool.

The cache is `num_blocks` fixed-size blocks. A full block of a sequence gets a chained hash
(hash of the parent block's hash and the block's tokens), so equal hashes mean equal prefixes.
Freed blocks keep their hash and go to the tail of an LRU free queue: they still count as free
(usage = 1 − free/total, as vLLM reports it) but a later request with the same prefix takes them
back instead of recomputing. Allocation pops the queue's head, evicting whatever it cached.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from typing import Protocol

ROOT_HASH = hash("simserver-kv-root")


class HasBlocks(Protocol):
    """What the cache needs of a sequence: its blocks, computed tokens and full-block hashes."""

    blocks: list[int]
    num_computed: int
    num_committed: int
    block_hashes: list[int]


def block_hashes(tokens: Sequence[str], block_size: int, parent: int = ROOT_HASH) -> list[int]:
    """Chained hashes of every full block of `tokens` (a trailing partial block has none)."""
    out: list[int] = []
    for start in range(0, len(tokens) - block_size + 1, block_size):
        parent = hash((parent, tuple(tokens[start : start + block_size])))
        out.append(parent)
    return out


class KVCache:
    """Block pool + prefix cache. All methods are O(blocks touched); no method sleeps."""

    def __init__(self, num_blocks: int, block_size: int, enable_prefix_caching: bool = True) -> None:
        self.num_blocks = num_blocks
        self.block_size = block_size
        self.enable_prefix_caching = enable_prefix_caching
        self.ref = [0] * num_blocks
        self.hash_of: list[int | None] = [None] * num_blocks
        self.cached: dict[int, int] = {}  # block hash → block id
        # Free blocks in eviction order (head first). A dict keeps O(1) removal from the middle,
        # which a prefix hit on a free cached block needs.
        self.free: OrderedDict[int, None] = OrderedDict.fromkeys(range(num_blocks))
        self.evictions = 0

    # -- queries ----------------------------------------------------------------------------
    @property
    def num_free(self) -> int:
        return len(self.free)

    def usage(self) -> float:
        return 1.0 - len(self.free) / self.num_blocks

    def find_prefix(self, seq: HasBlocks, num_tokens: int) -> list[int]:
        """Cached blocks matching the sequence's prefix, leaving at least its last token to compute.

        The last token must be computed to get logits for sampling (vLLM's `num_tokens - 1` cap).
        """
        if not self.enable_prefix_caching:
            return []
        limit = (num_tokens - 1) // self.block_size
        hits: list[int] = []
        cached = self.cached
        for h in seq.block_hashes[:limit]:
            b = cached.get(h)
            if b is None:
                break
            hits.append(b)
        return hits

    def blocks_needed(self, seq: HasBlocks, num_new_tokens: int, num_hit_blocks: int = 0) -> int:
        total = seq.num_computed + num_hit_blocks * self.block_size + num_new_tokens
        return -(-total // self.block_size) - len(seq.blocks) - num_hit_blocks

    # -- mutations ---------------------------------------------------------------------------
    def allocate(self, seq: HasBlocks, num_new_tokens: int, hits: Sequence[int] = ()) -> bool:
        """Give `seq` room for `num_new_tokens` more tokens (after taking the prefix `hits`).

        Returns False, changing nothing, when the free blocks do not suffice — the caller then
        queues (new request) or preempts (running request), as vLLM's scheduler does.
        """
        need = self.blocks_needed(seq, num_new_tokens, len(hits))
        free = self.free
        # A hit on a free cached block takes it out of the free pool too.
        reclaimed = sum(1 for b in hits if self.ref[b] == 0)
        if need > len(free) - reclaimed:
            return False
        ref = self.ref
        for b in hits:
            if ref[b] == 0:
                del free[b]
            ref[b] += 1
        if hits:  # only a fresh admission has hits: its blocks so far are exactly the hits
            seq.blocks.extend(hits)
            seq.num_committed = len(seq.blocks)
        if need > 0:
            hash_of, cached = self.hash_of, self.cached
            for _ in range(need):
                b, _ = free.popitem(last=False)
                h = hash_of[b]
                if h is not None:  # evict the LRU cached block
                    if cached.get(h) == b:
                        del cached[h]
                    hash_of[b] = None
                    self.evictions += 1
                ref[b] = 1
                seq.blocks.append(b)
        return True

    def commit(self, seq: HasBlocks) -> None:
        """Publish the sequence's newly full, computed blocks in the prefix cache."""
        if not self.enable_prefix_caching:
            return
        full = min(seq.num_computed // self.block_size, len(seq.block_hashes))
        if full <= seq.num_committed:
            return
        cached, hash_of, blocks, hashes = self.cached, self.hash_of, seq.blocks, seq.block_hashes
        for i in range(seq.num_committed, full):
            h = hashes[i]
            if h not in cached:  # a duplicate of an already cached block stays private
                b = blocks[i]
                cached[h] = b
                hash_of[b] = h
        seq.num_committed = full

    def release(self, seq: HasBlocks) -> None:
        """Drop the sequence's references; blocks nobody uses become free (cached ones stay findable).

        Blocks are queued tail-first so a request's last blocks are evicted before its first ones
        (a prefix is worth more than a suffix); uncached blocks go to the head, being worth nothing.
        """
        ref, free, hash_of = self.ref, self.free, self.hash_of
        for b in reversed(seq.blocks):
            ref[b] -= 1
            if ref[b] == 0:
                free[b] = None
                if hash_of[b] is None:
                    free.move_to_end(b, last=False)
        seq.blocks = []
        seq.num_committed = 0

    def reset_prefix_cache(self) -> None:
        """Forget every cached hash of free blocks (vLLM's /reset_prefix_cache)."""
        for b in self.free:
            h = self.hash_of[b]
            if h is not None:
                self.cached.pop(h, None)
                self.hash_of[b] = None
