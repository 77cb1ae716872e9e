"""The engine core: sequences, the step scheduler and step completion — pure, clock-agnostic code.

One engine step, as in vLLM v1 with chunked prefill:
  1. schedule(): choose the sequences and token counts of the next forward pass, within
     `max_num_seqs` and `max_num_batched_tokens`, decode-first: every running sequence that is
     decoding gets its 1 token before any prefill chunk, then running prefills continue, then
     waiting requests are admitted in FCFS order while the token budget, the sequence limit and
     the KV cache allow (a prefix-cache hit lowers the tokens to compute). When a running sequence
     cannot get a KV block, the lowest-priority (latest-arrived) unscheduled sequence is
     preempted: its blocks are freed and it goes back to the head of the queue to be recomputed.
  2. the caller waits `plan.duration` (the profile's StepTime of the plan) — real or virtual time.
  3. complete(plan, now): computed tokens advance, full blocks enter the prefix cache, and every
     sequence whose known tokens are all computed samples one token, which goes to its sink — or,
     with speculative decoding, 1 + accepted draft tokens at once (simserver/specdecode.py).

With LoRA adapters (simserver/lora.py) admission keeps vLLM's `max_loras` rule: a request whose adapter
gets no slot is skipped, keeping its place; a step that loads an adapter lasts its load time longer.

The core never reads a clock, so the same code runs the live server and the virtual-time
simulator used by tests and calibration (simserver/offline.py).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from simserver.kvcache import ROOT_HASH, KVCache
from simserver.lora import LoraConfig, LoraSlots
from simserver.metrics import EngineStats
from simserver.profiles import Profile
from simserver.seq import ABORTED, FINISHED, RUNNING, WAITING, Seq, Sink
from simserver.specdecode import SpecCounts, SpecDecoder
from simserver.tokenizer import VOCAB, TextTable

__all__ = ["ABORTED", "FINISHED", "RUNNING", "WAITING", "EngineCore", "Plan", "Seq", "Sink"]


@dataclass(slots=True)
class Plan:
    """One forward pass: which sequences run and how many tokens each computes."""

    seqs: list[Seq] = field(default_factory=list)
    ns: list[int] = field(default_factory=list)
    prefill_tokens: int = 0
    decode_seqs: int = 0
    kv_tokens: int = 0
    draft_tokens: int = 0  # speculative decoding: tokens verified beside each decode's own
    preempted: int = 0
    lora_load_s: float = 0.0  # adapters loaded into GPU slots for this step
    duration: float = 0.0


class EngineCore:
    """Scheduler + KV cache + statistics for one simulated engine."""

    def __init__(
        self,
        profile: Profile,
        seed: int = 0,
        stats: EngineStats | None = None,
        lora: LoraConfig | None = None,
    ) -> None:
        e = profile.engine
        self.profile = profile
        self.params = e
        self.step_time = profile.step_time
        self.kv = KVCache(e.num_gpu_blocks, e.block_size, e.enable_prefix_caching)
        self.hashing = e.enable_prefix_caching
        self.stats = stats or EngineStats()
        self.waiting: deque[Seq] = deque()
        self.running: list[Seq] = []
        self._arrivals = 0
        self._step_id = 0
        self._last_complete = -1.0
        self.text = TextTable(seed)
        sp = profile.speculative
        self.spec = SpecDecoder(sp, seed, self.stats) if sp.num_speculative_tokens else None
        # Adapter slots (None: no adapters served; a sequence's adapter is then ignored).
        self.lora = LoraSlots(lora) if lora is not None else None
        # Called with each sequence that finishes (not aborted ones), like vLLM's per-request tracing.
        self.on_finish: Callable[[Seq], None] | None = None

    # -- requests --------------------------------------------------------------------------
    def add(self, seq: Seq, now: float) -> None:
        self._arrivals += 1
        seq.prio = self._arrivals
        seq.arrival = now
        seq.status = WAITING
        if self.spec is not None:
            seq.spec = SpecCounts(self.spec.k)
        self.waiting.append(seq)
        self.stats.req_max_tokens.observe(seq.max_tokens)
        if seq.lora is not None and self.lora is not None:
            self.lora.enqueue(seq.lora)

    def abort(self, seq: Seq, now: float) -> None:
        """The client went away: free its blocks at once (its KV would otherwise leak)."""
        if seq.status == WAITING:
            try:
                self.waiting.remove(seq)
            except ValueError:
                return
            if seq.lora is not None and self.lora is not None:
                self.lora.dequeue(seq.lora)
        elif seq.status == RUNNING:
            self.running.remove(seq)
            self.kv.release(seq)
            if seq.lora is not None:
                self._lora_stop(seq)
        else:
            return
        seq.status = ABORTED
        self.stats.finished["abort"] += 1

    def has_work(self) -> bool:
        return bool(self.running or self.waiting)

    # -- scheduling ------------------------------------------------------------------------
    def _preempt_for(self, seq: Seq, mark: int) -> bool:
        """Free blocks for `seq` by preempting the latest-arrived unscheduled sequence.

        Returns False when `seq` itself is that sequence (it was preempted and must not run).
        """
        victim = seq
        for other in self.running:
            if other.sched_mark != mark and other.prio > victim.prio:
                victim = other
        self.running.remove(victim)
        self.kv.release(victim)
        victim.num_computed = 0
        victim.status = WAITING
        victim.preemptions += 1
        self.waiting.appendleft(victim)
        if victim.lora is not None:
            self._lora_stop(victim, requeue=True)
        self.stats.preemptions += 1
        return victim is not seq

    def schedule(self) -> Plan:
        """One step's plan, vLLM's order: running decodes, then running prefills, then admissions."""
        self._step_id += 1
        mark = self._step_id
        plan = Plan()
        budget = self.params.max_num_batched_tokens
        budget, kv_tokens, prefilling = self._schedule_decodes(plan, mark, budget)
        plan.decode_seqs = len(plan.seqs)
        budget, prefill_tokens, kv_more = self._schedule_prefills(plan, mark, budget, prefilling)
        kv_tokens += kv_more
        if not plan.preempted:  # a step that had to preempt admits no new request
            prefill_more, kv_more = self._admit(plan, mark, budget)
            prefill_tokens += prefill_more
            kv_tokens += kv_more
        plan.prefill_tokens = prefill_tokens
        plan.kv_tokens = kv_tokens
        computed = prefill_tokens + plan.draft_tokens  # draft tokens are computed like prompt tokens
        if plan.seqs:
            plan.duration = self.step_time(computed, plan.decode_seqs, kv_tokens) + plan.lora_load_s
        return plan

    def _schedule_decodes(self, plan: Plan, mark: int, budget: int) -> tuple[int, int, list[Seq]]:
        """1. decodes, in arrival order (a decode that needs a block may preempt); returns the budget
        left, the KV tokens read, and the running sequences still prefilling."""
        kv, bs, spec = self.kv, self.params.block_size, self.spec
        seqs, ns = plan.seqs, plan.ns
        kv_tokens = d = 0
        prefilling: list[Seq] = []
        for seq in tuple(self.running):
            if seq.status != RUNNING:
                continue  # preempted earlier in this pass
            if seq.num_output == 0 or seq.num_computed != seq.num_tokens - 1:
                prefilling.append(seq)
                continue
            if budget <= 0:
                break
            if spec is not None:  # a verify step: the input token and d draft tokens
                d = spec.drafts(seq, budget, self.params.max_model_len)
            if seq.num_tokens + d > len(seq.blocks) * bs:
                while not kv.allocate(seq, 1 + d):
                    plan.preempted += 1
                    if not self._preempt_for(seq, mark):
                        break
                if seq.status != RUNNING:
                    continue
            seq.sched_mark = mark
            seqs.append(seq)
            if d:
                seq.draft = d
                plan.draft_tokens += d
            ns.append(1 + d)
            budget -= 1 + d
            kv_tokens += seq.num_tokens + d
        return budget, kv_tokens, prefilling

    def _schedule_prefills(
        self, plan: Plan, mark: int, budget: int, prefilling: list[Seq]
    ) -> tuple[int, int, int]:
        """2. running prefills (chunked prefill continues); returns budget left, prefill and KV tokens."""
        kv, threshold = self.kv, self.params.long_prefill_token_threshold
        seqs, ns = plan.seqs, plan.ns
        prefill_tokens = kv_tokens = 0
        for seq in prefilling:
            if budget <= 0:
                break
            if seq.status != RUNNING:
                continue
            n = seq.num_tokens - seq.num_computed
            if threshold:
                n = min(n, threshold)
            n = min(n, budget)
            while not kv.allocate(seq, n):
                plan.preempted += 1
                if not self._preempt_for(seq, mark):
                    break
            if seq.status != RUNNING:
                continue
            seq.sched_mark = mark
            seqs.append(seq)
            ns.append(n)
            budget -= n
            prefill_tokens += n
            kv_tokens += seq.num_computed + n
        return budget, prefill_tokens, kv_tokens

    def _admit(self, plan: Plan, mark: int, budget: int) -> tuple[int, int]:
        """3. admit waiting requests FCFS while slots, budget and KV blocks last (prefix-cache hits are
        not recomputed); returns the prefill and KV tokens added."""
        p, kv = self.params, self.kv
        bs, threshold = p.block_size, p.long_prefill_token_threshold
        seqs, ns = plan.seqs, plan.ns
        waiting, running, stats, lora = self.waiting, self.running, self.stats, self.lora
        prefill_tokens = kv_tokens = 0
        skipped: list[Seq] = []  # deferred by the adapter budget: back to the queue's head, in order
        while waiting and budget > 0 and len(running) < p.max_num_seqs:
            seq = waiting[0]
            if lora is not None and seq.lora is not None and not lora.admits(seq.lora):
                skipped.append(waiting.popleft())
                continue
            hits = kv.find_prefix(seq, seq.num_tokens)
            computed = len(hits) * bs
            n = seq.num_tokens - computed
            if threshold:
                n = min(n, threshold)
            if n > budget:
                if not p.enable_chunked_prefill:
                    break
                n = budget
            if not kv.allocate(seq, n, hits):
                break  # KV cache full: the queue waits
            waiting.popleft()
            seq.status = RUNNING
            seq.num_computed = computed
            running.append(seq)
            if lora is not None and seq.lora is not None:
                plan.lora_load_s += lora.start(seq.lora)
            if seq.num_cached < 0:
                seq.num_cached = computed
            stats.prefix_queries += seq.num_tokens
            stats.prefix_hits += computed
            seq.sched_mark = mark
            seqs.append(seq)
            ns.append(n)
            budget -= n
            prefill_tokens += n
            kv_tokens += computed + n
        if skipped:
            waiting.extendleft(reversed(skipped))
        return prefill_tokens, kv_tokens

    # -- completing a step -----------------------------------------------------------------
    def complete(self, plan: Plan, now: float) -> None:
        """Apply a finished step at time `now`: advance KV, sample tokens, hand them to sinks.

        This loop runs once per sequence per step (2,000+ times a step under the capacity bench),
        so it keeps to local variables, reads the token from the text table inline, and counts
        the inter-token gaps of sequences that also decoded in the previous step as one value.
        """
        s = self.stats
        s.steps += 1
        s.busy_s += plan.duration
        s.iteration_tokens.observe(plan.prefill_tokens + plan.decode_seqs + plan.draft_tokens)
        kv, bs, hashing = self.kv, self.params.block_size, self.hashing
        table, mask = self.text.table, self.text.mask
        itl, words = s.itl.observe, VOCAB
        prev = self._last_complete
        finished = sampled = back_to_back = 0
        for seq, n in zip(plan.seqs, plan.ns, strict=True):
            if seq.status != RUNNING:
                continue  # aborted while the step ran
            if seq.t_first_sched < 0:
                # the step's start, as its end less its planned duration; a loop that ran the step's
                # end early (timer slack) would put it before a request that arrived just before the
                # plan: never earlier than the arrival, so every view of the queue (the spans, the
                # per-request metrics, the histograms) is the same number ≥ 0
                seq.t_first_sched = max(now - plan.duration, seq.arrival)
            if seq.draft:
                finished += self._verify(seq, now)
                continue
            seq.num_computed += n
            if hashing and seq.num_computed >= (seq.num_committed + 1) * bs:
                kv.commit(seq)
            if seq.num_computed < seq.num_tokens:
                continue  # a prefill chunk: no token yet
            idx = table[(seq.text_off + seq.num_output) & mask]
            sampled += 1
            seq.num_output += 1
            seq.num_tokens += 1
            if hashing:
                tail = seq.tail
                tail.append(words[idx])  # type: ignore[union-attr]
                if len(tail) == bs:  # type: ignore[arg-type]
                    parent = seq.block_hashes[-1] if seq.block_hashes else ROOT_HASH
                    seq.block_hashes.append(hash((parent, tuple(tail))))  # type: ignore[arg-type]
                    seq.tail = []
            if seq.num_output == 1:
                seq.t_first_token = now
                self._first_token(seq, now)
            elif seq.t_last_token == prev:
                back_to_back += 1
            else:
                itl(now - seq.t_last_token)
            seq.t_last_token = now
            if seq.num_output >= seq.target_len:
                self._finish(seq, now)
                finished += 1
                seq.sink.on_token(seq, idx, seq.finish_reason, now)
            else:
                seq.sink.on_token(seq, idx, None, now)
        if back_to_back:
            s.itl.observe_n(now - prev, back_to_back)
        s.generation_tokens += sampled
        self._last_complete = now
        if finished:
            self.running = [q for q in self.running if q.status == RUNNING]

    def _verify(self, seq: Seq, now: float) -> int:
        """A speculative verify step of `seq`: its tokens go to the sink together; 1 if it finished."""
        out = self.spec.verify(seq, self.text, self.params.block_size if self.hashing else 0)  # type: ignore[union-attr]
        if self.hashing:
            self.kv.commit(seq)
        s = self.stats
        s.generation_tokens += len(out)
        s.itl.observe(now - seq.t_last_token)  # one gap per step and request, as vLLM observes it
        seq.t_last_token = now
        done = seq.num_output >= seq.target_len
        if done:
            self._finish(seq, now)
        seq.sink.on_step(seq, out, seq.finish_reason if done else None, now)
        return int(done)

    def _first_token(self, seq: Seq, now: float) -> None:
        s = self.stats
        cached = max(seq.num_cached, 0)
        s.prompt_tokens += seq.prompt_len
        s.prompt_tokens_cached += cached
        s.ttft.observe(now - seq.arrival)
        s.req_prompt.observe(seq.prompt_len)
        s.req_prefill_computed.observe(seq.prompt_len - cached)

    def _finish(self, seq: Seq, now: float) -> None:
        s = self.stats
        seq.status = FINISHED
        self.kv.release(seq)
        if seq.lora is not None:
            self._lora_stop(seq)
        s.finished[seq.finish_reason] += 1
        s.e2e.observe(now - seq.arrival)
        s.queue.observe(seq.t_first_sched - seq.arrival)
        s.inference.observe(now - seq.t_first_sched)
        s.prefill.observe(seq.t_first_token - seq.t_first_sched)
        s.decode.observe(now - seq.t_first_token)
        s.req_generation.observe(seq.num_output)
        s.req_preemptions.observe(seq.preemptions)
        if seq.num_output > 1:
            s.tpot.observe((now - seq.t_first_token) / (seq.num_output - 1))
        if self.on_finish is not None:
            self.on_finish(seq)

    def _lora_stop(self, seq: Seq, requeue: bool = False) -> None:
        """`seq`, of an adapter, stops running (finished, aborted; preempted: `requeue`): its adapter's
        slot may free up. Callers test `seq.lora` first, so runs without adapters pay no call."""
        if self.lora is not None and seq.lora is not None:
            self.lora.stop(seq.lora)
            if requeue:
                self.lora.enqueue(seq.lora)

    # -- state -----------------------------------------------------------------------------
    @property
    def num_running(self) -> int:
        return len(self.running)

    @property
    def num_waiting(self) -> int:
        return len(self.waiting)

    @property
    def num_deferred(self) -> int:
        """Waiting requests held back by the adapter budget rather than by capacity."""
        return self.lora.deferred() if self.lora is not None else 0
