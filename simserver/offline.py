"""Run the engine core in virtual time against closed-loop users or open-loop arrivals — no sockets, no sleeping.

The live server and this simulator share EngineCore, so a 2-minute step ramp can be replayed in
well under a second: that is how the profiles are calibrated (bench/simserver_calibrate.py) and how
unit tests check queueing, prefix caching and preemption deterministically.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field

from core.quantiles import nearest_rank
from simserver.answer import output_length
from simserver.engine import EngineCore, Seq
from simserver.profiles import Profile
from simserver.tokenizer import chat_tokens


@dataclass(slots=True)
class Record:
    """One finished request, timed as a client next to the server would see it."""

    user: int
    users_active: int
    t_send: float
    prompt_tokens: int
    max_tokens: int
    t_first: float = -1.0
    t_last: float = -1.0
    cached_tokens: int = 0
    output_tokens: int = 0
    preemptions: int = 0
    finish_reason: str = ""

    @property
    def ttft(self) -> float:
        return self.t_first - self.t_send

    @property
    def tpot(self) -> float | None:
        return (self.t_last - self.t_first) / (self.output_tokens - 1) if self.output_tokens > 1 else None


@dataclass
class Sample:
    t: float
    running: int
    waiting: int
    kv_usage: float


@dataclass
class Result:
    records: list[Record] = field(default_factory=list)
    samples: list[Sample] = field(default_factory=list)


class _Recorder:
    """Sink of one request: stamps first/last token and hands the user back when done."""

    __slots__ = ("done", "rec")

    def __init__(self, rec: Record, done: Callable[[Record, float], None]) -> None:
        self.rec, self.done = rec, done

    def on_token(self, seq: Seq, index: int, finish: str | None, now: float) -> None:
        rec = self.rec
        if rec.t_first < 0:
            rec.t_first = now
            rec.cached_tokens = max(seq.num_cached, 0)
        rec.t_last = now
        rec.output_tokens = seq.num_output
        if finish is not None:
            rec.finish_reason = finish
            rec.preemptions = seq.preemptions
            self.done(rec, now)

    def on_step(self, seq: Seq, indices: list[int], finish: str | None, now: float) -> None:
        """A speculative step's tokens: they arrive together, so one stamp holds for all of them."""
        self.on_token(seq, indices[-1], finish, now)


Request = tuple[list[str], int]  # (prompt tokens, max_tokens)


def random_chat(
    rng: random.Random, prompt_range: tuple[int, int], max_tokens_range: tuple[int, int]
) -> Request:
    """A chat request with an unshared random prompt of about the given token count."""
    n = rng.randint(*prompt_range) - 8  # the template adds 8 tokens to one user message
    text = " ".join(f"w{rng.randrange(1_000_000)}" for _ in range(max(n, 1)))
    return chat_tokens([{"role": "user", "content": text}]), rng.randint(*max_tokens_range)


def shared_prefix_chat(
    rng: random.Random, system: str, question_range: tuple[int, int], max_tokens_range: tuple[int, int]
) -> Request:
    """A chat request whose long system prompt is shared by every request (agentic workloads)."""
    text = " ".join(f"q{rng.randrange(1_000_000)}" for _ in range(rng.randint(*question_range)))
    messages = [{"role": "system", "content": system}, {"role": "user", "content": text}]
    return chat_tokens(messages), rng.randint(*max_tokens_range)


def step_ramp(
    step_s: float, start_users: int = 1, step_users: int = 1, max_users: int = 0
) -> Callable[[float], int]:
    """Users active at time t for a step ramp (the default load shape)."""

    def users(t: float) -> int:
        n = start_users + step_users * int(t // step_s)
        return min(n, max_users) if max_users else n

    return users


def simulate(
    profile: Profile,
    users_at: Callable[[float], int],
    duration_s: float,
    make_request: Callable[[random.Random], Request],
    seed: int = 0,
    ignore_eos: bool = False,
    sample_every_s: float = 0.5,
) -> Result:
    """Closed-loop users (no think time) against one engine, in virtual time."""
    core = EngineCore(profile, seed)
    rng, len_rng = random.Random(seed), random.Random(seed + 1)
    result = Result()
    busy: set[int] = set()
    t = 0.0
    next_sample = 0.0
    ids = 0

    def done(rec: Record, now: float) -> None:
        busy.discard(rec.user)
        result.records.append(rec)

    def send(user: int, now: float, active: int) -> None:
        nonlocal ids
        ids += 1
        prompt, max_tokens = make_request(rng)
        target, reason = output_length(len_rng, profile.output, max_tokens, 0, ignore_eos)
        rec = Record(user, active, now, len(prompt), max_tokens)
        seq = Seq(
            f"sim-{ids}",
            prompt,
            max_tokens,
            target,
            reason,
            _Recorder(rec, done),
            len_rng.getrandbits(16),
            profile.engine.block_size,
            profile.engine.enable_prefix_caching,
        )
        busy.add(user)
        core.add(seq, now)

    while t < duration_s:
        active = users_at(t)
        for u in range(active):
            if u not in busy:
                send(u, t, active)
        if t >= next_sample:
            result.samples.append(Sample(t, core.num_running, core.num_waiting, core.kv.usage()))
            next_sample = t + sample_every_s
        t = _step(core, t) if core.has_work() else min(duration_s, _next_change(users_at, t, active))
    return result


def simulate_open(
    profile: Profile,
    rate_rps: float,
    duration_s: float,
    make_request: Callable[[random.Random], Request],
    seed: int = 0,
    ignore_eos: bool = False,
    arrival: str = "poisson",
) -> Result:
    """Open-loop arrivals at `rate_rps` (Poisson, or `constant` gaps) for `duration_s` against one
    engine, in virtual time;
    the engine then finishes what it holds, so every request sent has its record (`users_active` 0).

    Arrivals during a step join at its end, as the live loop (simserver/runner.py) reads requests
    between steps. The known capacity of a profile under an SLO comes from here (simserver/capacity.py).
    """
    core = EngineCore(profile, seed)
    rng, len_rng, gap_rng = random.Random(seed), random.Random(seed + 1), random.Random(seed + 2)
    result = Result()
    t, ids = 0.0, 0

    def gap() -> float:
        return 1.0 / rate_rps if arrival == "constant" else gap_rng.expovariate(rate_rps)

    next_arrival = gap()

    def done(rec: Record, now: float) -> None:
        result.records.append(rec)

    while next_arrival < duration_s or core.has_work():
        while next_arrival <= t and next_arrival < duration_s:
            ids += 1
            prompt, max_tokens = make_request(rng)
            target, reason = output_length(len_rng, profile.output, max_tokens, 0, ignore_eos)
            rec = Record(0, 0, next_arrival, len(prompt), max_tokens)
            seq = Seq(
                f"sim-{ids}", prompt, max_tokens, target, reason, _Recorder(rec, done),
                len_rng.getrandbits(16), profile.engine.block_size, profile.engine.enable_prefix_caching,
            )  # fmt: skip
            core.add(seq, next_arrival)
            next_arrival += gap()
        t = _step(core, t) if core.has_work() else next_arrival
    result.records.sort(key=lambda r: r.t_send)
    return result


def _step(core: EngineCore, t: float) -> float:
    """One engine step started at `t` (schedule, advance the clock by its modelled time, complete
    it); returns when it ended."""
    plan = core.schedule()
    if not plan.seqs:
        raise RuntimeError("scheduler made no progress with work queued")  # a bug, never load
    t += plan.duration
    core.complete(plan, t)
    return t


def _next_change(users_at: Callable[[float], int], t: float, active: int, resolution: float = 0.01) -> float:
    """Next time the user count grows (idle engine, every user busy elsewhere: advance the clock)."""
    probe = t + resolution
    for _ in range(1_000_000):
        if users_at(probe) != active:
            return probe
        probe += resolution
    return probe


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile (core/quantiles.py) of raw values, `p` in percent; NaN when empty."""
    return nearest_rank(sorted(values), p / 100)


def by_level(records: list[Record]) -> dict[int, dict[str, float]]:
    """TTFT/TPOT percentiles per load level (users active when the request was sent)."""
    levels: dict[int, list[Record]] = {}
    for r in records:
        levels.setdefault(r.users_active, []).append(r)
    out: dict[int, dict[str, float]] = {}
    for n, rs in sorted(levels.items()):
        ttft = [r.ttft for r in rs]
        tpot = [x for r in rs if (x := r.tpot) is not None]
        out[n] = {
            "requests": len(rs),
            "ttft_p50": percentile(ttft, 50),
            "ttft_p95": percentile(ttft, 95),
            "tpot_p50": percentile(tpot, 50),
            "tpot_p95": percentile(tpot, 95),
            "cached_mean": sum(r.cached_tokens for r in rs) / len(rs),
            "preempted": sum(1 for r in rs if r.preemptions),
        }
    return out
