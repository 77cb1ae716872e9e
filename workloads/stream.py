"""`WorkloadStream`: the infinite, seeded, per-worker request stream over a loaded workload.

Slicing: think of one global stream, epoch after epoch of the whole set, each epoch ordered by
`--order` with a seed derived from (seed, epoch). Worker i of n takes positions i, i+n, i+2n, ...
of it. So within an epoch the workers' slices are disjoint and together cover the set, a worker
never needs to talk to the others, and workers running side by side send roughly the global order
(what `grouped` and `interleaved` are about). A set smaller than the worker count still gives every
worker requests (from later epochs). From the second epoch on, each conversation's first message
is tagged `[epoch.index] ` (conversation.retagged) so a cycled set does not turn into verbatim
repeats that a prefix cache would serve; `repeat=exact` in the spec turns that off.

Orders:
  shuffled     a seeded permutation, a new one each epoch (default)
  sequential   file/generation order, every epoch
  grouped      all conversations of one prefix group back to back (friendliest to a prefix cache)
  interleaved  round-robin over the groups (a cache must hold every group's prefix at once)
"""

from __future__ import annotations

import random
from collections import deque

from workloads.conversation import Conversation, Workload, request_messages, retagged
from workloads.errors import WorkloadError

ORDERS = ("shuffled", "sequential", "grouped", "interleaved")


class WorkloadStream:
    """Everything is pre-built at open time; the next_* calls are O(1) except once per epoch."""

    def __init__(
        self,
        workload: Workload,
        *,
        seed: int,
        worker_index: int = 0,
        worker_count: int = 1,
        order: str = "shuffled",
    ) -> None:
        if order not in ORDERS:
            raise WorkloadError(f"--order: '{order}' is not one of {', '.join(ORDERS)}")
        if worker_count < 1 or not 0 <= worker_index < worker_count:
            raise WorkloadError(f"worker {worker_index} of {worker_count}: expected 0 ≤ index < count")
        if not workload.conversations:
            raise WorkloadError(f"{workload.name}: no requests (empty dataset)")
        self.workload = workload
        self.name = workload.name
        self.spec = workload.spec
        self.multi_turn = workload.multi_turn
        self.size = len(workload.conversations)
        self.requests = workload.requests
        self.order = order
        self.seed = int(seed)
        self.worker_index, self.worker_count = worker_index, worker_count
        self._convs = workload.conversations
        self._fresh = workload.repeat == "fresh"
        groups: dict[str, list[int]] = {}
        for i, c in enumerate(self._convs):
            groups.setdefault(c.group, []).append(i)
        self._groups = [groups[g] for g in sorted(groups)]
        self._pos = worker_index
        self._epoch = 0
        self._perm = self._epoch_order(0)
        self._pending: deque[tuple[list[dict], int | None, Conversation, int]] = deque()

    # -- ordering -------------------------------------------------------------------
    def _epoch_order(self, epoch: int) -> list[int]:
        n = self.size
        if self.order == "sequential":
            return list(range(n))
        rng = random.Random(f"goodput-order:{self.seed}:{self.order}:{epoch}")
        if self.order == "shuffled":
            perm = list(range(n))
            rng.shuffle(perm)
            return perm
        groups = [list(g) for g in self._groups]
        for g in groups:
            rng.shuffle(g)
        rng.shuffle(groups)
        if self.order == "grouped":
            return [i for g in groups for i in g]
        out: list[int] = []  # interleaved: one from each group in turn until all are used
        for k in range(max(len(g) for g in groups)):
            out.extend(g[k] for g in groups if k < len(g))
        return out

    def order_of_epoch(self, epoch: int) -> list[int]:
        """The global order of one epoch (conversation indices), for tests and `show`."""
        return list(self._epoch_order(epoch))

    # -- the two calls the Locust users make ---------------------------------------------
    def next_conversation(self) -> Conversation:
        """The next whole session of this worker's slice (multi-turn users)."""
        epoch, k = divmod(self._pos, self.size)
        if epoch != self._epoch:
            self._epoch, self._perm = epoch, self._epoch_order(epoch)
        self._pos += self.worker_count
        i = self._perm[k]
        return retagged(self._convs[i], epoch, i) if epoch and self._fresh else self._convs[i]

    def next_request(self) -> tuple[list[dict], int | None, Conversation, int]:
        """The next single request: (messages, max_tokens, conversation, turn index).

        A multi-turn conversation is flattened into one request per turn, in turn order, each with
        the earlier turns and their recorded replies as history. The list is the caller's to keep.
        """
        if not self._pending:
            conv = self.next_conversation()
            for t, turn in enumerate(conv.turns):
                self._pending.append((request_messages(conv, t), turn.max_tokens, conv, t))
        return self._pending.popleft()

    def describe(self) -> dict:
        """What run.json should record about the workload."""
        w = self.workload
        return {
            "spec": w.spec,
            "name": w.name,
            "source": w.source,
            "fingerprint": w.fingerprint,
            "conversations": self.size,
            "requests": self.requests,
            "multi_turn": self.multi_turn,
            "order": self.order,
            "seed": self.seed,
            "worker_index": self.worker_index,
            "worker_count": self.worker_count,
        }
