"""ITL: parse the `;`-separated gap strings of many rows fast, into an exact integer-µs histogram.

A 1M-row run holds ~10^8 gaps. Splitting strings and casting them (pyarrow) costs ~15 s on two
cores, more than the whole report's budget. The record sink writes every gap as `%.6f` (µs
resolution), and almost every gap is below 10 s, i.e. `D.DDDDDD`: 8 bytes, plus a `;`. Such a
row's length + 1 is a multiple of 9, and joining the rows with a trailing `;` gives one byte
buffer of fixed-width 9-byte fields. Each field's 8 bytes are read as one uint64 and converted
with SWAR arithmetic (a handful of vectorized passes over 8-byte words), after checking that
every byte is a digit, `.` or `;` where it should be (a set high bit in `(x + 0x76…) | x` flags
a byte > 9; a byte ≥ 0x8A can carry into its neighbour, but is itself flagged already). Rows
in any other format (a gap ≥ 10 s, other precision, exponents) take the general path (split +
cast), so the result is exact either way. Gaps are kept as integer microseconds in a histogram:
exact percentiles with numpy's linear interpolation, without sorting 10^8 values.
"""

from __future__ import annotations

import math
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from analysis.load import AnalysisError

CAP_US = 1 << 22  # histogram bins up to ~4.2 s; larger gaps are kept as raw values
_EMPTY = pa.scalar(b"", pa.large_binary())
_SEP = pa.scalar(b";", pa.large_binary())
_U = np.uint64
_ZEROS = _U(0x3030303030303030)  # '0' in every byte
_BYTE1 = _U(0xFF00)
_DOT = _U(0x1E00)  # '.' ^ '0' in byte 1
_ADD = _U(0x7676767676767676)  # a byte > 9 plus 0x76 sets its high bit
_HIGH = _U(0x8080808080808080)


class ItlFormatError(AnalysisError):
    """An `itl_s` value that is not a `;`-separated list of non-negative numbers."""


@dataclass
class IntHistogram:
    """Exact distribution of non-negative integer microseconds: counts below CAP_US, raw values above."""

    counts: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    tail: list[np.ndarray] = field(default_factory=list)

    def add_values(self, us: np.ndarray) -> None:
        if us.size == 0:
            return
        big = us >= CAP_US
        if big.any():
            self.tail.append(us[big].astype(np.int64))
            us = us[~big]
        self.add_counts(np.bincount(us.astype(np.intp, copy=False)))

    def add_counts(self, c: np.ndarray) -> None:
        if len(c) > CAP_US:  # keep the invariant: every tail value ≥ every binned value
            big = np.flatnonzero(c[CAP_US:]) + CAP_US
            self.tail.append(np.repeat(big, c[big]).astype(np.int64))
            c = c[:CAP_US]
        if len(c) > len(self.counts):
            self.counts = np.pad(self.counts, (0, len(c) - len(self.counts)))
        self.counts[: len(c)] += c

    def finish(self) -> Distribution:
        tail = np.sort(np.concatenate(self.tail)) if self.tail else np.zeros(0, dtype=np.int64)
        return Distribution(self.counts, tail)


@dataclass(frozen=True)
class Distribution:
    """Order statistics over a histogram + sorted tail; `percentile` matches `np.percentile` (linear)."""

    counts: np.ndarray
    tail: np.ndarray

    @property
    def n(self) -> int:
        return int(self.counts.sum()) + len(self.tail)

    def _cum(self) -> np.ndarray:
        return np.cumsum(self.counts)

    def order_stat_us(self, k: np.ndarray, cum: np.ndarray) -> np.ndarray:
        """The k-th smallest values (0-based), in µs."""
        below = int(cum[-1]) if len(cum) else 0
        out = np.empty(len(k), dtype=np.float64)
        inside = k < below
        out[inside] = np.searchsorted(cum, k[inside], side="right")
        out[~inside] = self.tail[k[~inside] - below] if (~inside).any() else []
        return out

    def percentiles_s(self, qs: tuple[float, ...]) -> list[float | None]:
        n = self.n
        if n == 0:
            return [None] * len(qs)
        cum = self._cum()
        pos = np.array([q / 100.0 * (n - 1) for q in qs])
        lo = np.floor(pos).astype(np.int64)
        hi = np.minimum(lo + 1, n - 1)
        v_lo, v_hi = self.order_stat_us(lo, cum), self.order_stat_us(hi, cum)
        vals = v_lo + (v_hi - v_lo) * (pos - lo)
        return [float(v) / 1e6 for v in vals]

    def mean_s(self) -> float | None:
        n = self.n
        if n == 0:
            return None
        total = float(np.dot(self.counts.astype(np.float64), np.arange(len(self.counts), dtype=np.float64)))
        return (total + float(self.tail.sum())) / n / 1e6

    def max_s(self) -> float | None:
        if len(self.tail):
            return float(self.tail[-1]) / 1e6
        nz = np.flatnonzero(self.counts)
        return float(nz[-1]) / 1e6 if len(nz) else None

    def quantile_curve_s(self, points: int = 400) -> tuple[np.ndarray, np.ndarray]:
        """(value, cumulative fraction) pairs for a CDF plot, without expanding 10^8 values."""
        n = self.n
        if n == 0:
            return np.zeros(0), np.zeros(0)
        frac = np.linspace(0, 1, points)
        k = np.minimum((frac * (n - 1)).round().astype(np.int64), n - 1)
        return self.order_stat_us(k, self._cum()) / 1e6, frac


def itl_distribution(itl: pa.ChunkedArray, rows: np.ndarray, threads: int | None = None) -> Distribution:
    """All gaps of the selected rows (`rows`: bool mask over the table) as a Distribution.

    Chunks are parsed on a small thread pool: numpy and Arrow release the GIL in their loops,
    so two cores parse nearly twice as fast; each chunk's histogram is merged as it arrives.
    """
    jobs = []
    start = 0
    for chunk in itl.chunks:
        n = len(chunk)
        sel = rows[start : start + n]
        start += n
        if sel.any():
            jobs.append((chunk, sel))
    total = IntHistogram()
    workers = threads or min(4, os.cpu_count() or 1)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for part in pool.map(_chunk_histogram, jobs):
            total.add_counts(part.counts)
            total.tail += part.tail
    return total.finish()


class PendingDistribution:
    """An ITL Distribution parsed on a background thread; the first use waits for it.

    Parsing 10^8 gaps is the longest phase of a big run. It runs in numpy/Arrow loops that
    release the GIL, so the other figures and the plots that do not need ITL are computed
    meanwhile on the main thread: on two cores that hides most of the plotting time.
    """

    def __init__(self, itl: pa.ChunkedArray, rows: np.ndarray, where: str) -> None:
        self._where = where
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="itl")
        self._future = self._pool.submit(itl_distribution, itl, rows)
        self._pool.shutdown(wait=False)

    def result(self) -> Distribution:
        try:
            return self._future.result()
        except ItlFormatError as e:
            raise ItlFormatError(f"{self._where}: {e}") from None

    @property
    def n(self) -> int:
        return self.result().n

    def percentiles_s(self, qs: tuple[float, ...]) -> list[float | None]:
        return self.result().percentiles_s(qs)

    def mean_s(self) -> float | None:
        return self.result().mean_s()

    def max_s(self) -> float | None:
        return self.result().max_s()

    def quantile_curve_s(self, points: int = 400) -> tuple[np.ndarray, np.ndarray]:
        return self.result().quantile_curve_s(points)


def _chunk_histogram(job: tuple[pa.Array, np.ndarray]) -> IntHistogram:
    hist = IntHistogram()
    _add_chunk(hist, *job)
    return hist


def _add_chunk(hist: IntHistogram, arr: pa.Array, sel: np.ndarray) -> None:
    if arr.type != pa.large_binary():  # bytes, not text: the CSV reader skips UTF-8 validation of 10^8 gaps
        arr = arr.cast(pa.large_binary())
    if arr.null_count:
        arr = pc.fill_null(arr, _EMPTY)
    length = pc.binary_length(arr).to_numpy(zero_copy_only=False)
    sel = sel & (length > 0)
    fast = sel & ((length + 1) % 9 == 0)
    slow = sel & ~fast
    if fast.any():
        sub = arr if fast.all() else pc.filter(arr, pa.array(fast))
        us, bad_rows = _parse_fixed(sub)
        if bad_rows is not None:  # some "fast" rows were not in the fixed format after all
            idx = np.flatnonzero(fast)[bad_rows]
            slow[idx] = True
        if us is not None:
            hist.add_counts(us)
    if slow.any():
        hist.add_values(_parse_general(pc.filter(arr, pa.array(slow))))


def _parse_fixed(arr: pa.Array) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Bincounts of `D.DDDDDD` fields; also the positions (within `arr`) of rows that are not in that format."""
    us, bad_rows, _ = _fixed_fields(arr)
    return (None if us is None else np.bincount(us.view(np.int64))), bad_rows


def _fixed_fields(arr: pa.Array) -> tuple[np.ndarray | None, np.ndarray | None, np.ndarray]:
    """Every `D.DDDDDD` field of `arr` in µs (uint64, row order), the rows not in that format, and
    each row's field count (bad rows' fields are left out of the values).

    Each field's first 8 bytes are read as one little-endian uint64 (byte 0 = the units digit)
    and turned into microseconds with SWAR arithmetic: ~10 passes over 8-byte words instead of
    dozens over single bytes, which is what makes 10^8 gaps take seconds rather than tens.
    """
    joined = pc.binary_join_element_wise(arr, _EMPTY, _SEP)
    bufs = joined.buffers()
    offsets = np.frombuffer(bufs[1], dtype=np.int64)[joined.offset : joined.offset + len(joined) + 1]
    data = np.frombuffer(bufs[2], dtype=np.uint8)[offsets[0] : offsets[-1]]
    n = len(data) // 9
    v = np.ndarray((n,), dtype="<u8", buffer=data, strides=(9,)).copy()
    semi = np.ndarray((n,), dtype=np.uint8, buffer=data, offset=8, strides=(9,))
    v ^= _ZEROS  # digits → 0..9; the '.' at byte 1 → 0x1E
    dot = v & _BYTE1
    v &= ~_BYTE1
    over = v + _ADD
    over |= v
    over &= _HIGH  # non-zero where a byte is > 9 (see module doc)
    bad_rows = None
    fields = np.diff(offsets) // 9
    if over.any() or (dot != _DOT).any() or (semi != 59).any():
        valid = (over == 0) & (dot == _DOT) & (semi == 59)
        row_of = np.repeat(np.arange(len(offsets) - 1), fields)
        bad_rows = np.unique(row_of[~valid])
        keep = ~np.isin(row_of, bad_rows)
        if not keep.any():
            return None, bad_rows, fields
        v = v[keep]
    units = v & _U(0xFF)
    units *= _U(9_000_000)
    v *= _U(2561)  # pairs of digits
    v >>= _U(8)
    v &= _U(0x00FF00FF00FF00FF)
    v *= _U(6553601)  # groups of four
    v >>= _U(16)
    v &= _U(0x0000FFFF0000FFFF)
    v *= _U(42949672960001)  # the 8-digit number D0FFFFFF = D·10^7 + F
    v >>= _U(32)
    v -= units  # → D·10^6 + F microseconds
    return v, bad_rows, fields


def _parse_general(arr: pa.Array) -> np.ndarray:
    """Any numeric format: split, cast, round to µs (the contract's resolution)."""
    try:
        text = arr.cast(pa.large_string())
    except pa.ArrowInvalid:
        raise ItlFormatError("itl_s: not UTF-8 text") from None
    parts = pc.list_flatten(pc.split_pattern(text, ";"))
    parts = pc.filter(parts, pc.greater(pc.binary_length(parts), 0))
    try:
        secs = pc.cast(parts, pa.float64()).to_numpy(zero_copy_only=False)
    except pa.ArrowInvalid:
        bad = next(s for s in parts.to_pylist() if not _is_number(s))
        raise ItlFormatError(f"itl_s: '{bad[:40]}' is not a number of seconds") from None
    if (secs < 0).any() or not np.isfinite(secs).all():
        bad = secs[(secs < 0) | ~np.isfinite(secs)][0]
        raise ItlFormatError(f"itl_s: gap {bad} is not a non-negative finite number of seconds")
    return np.rint(secs * 1e6).astype(np.int64)


def _is_number(s: str) -> bool:
    try:
        return math.isfinite(float(s))
    except ValueError:
        return False


def row_gaps_s(itl: pa.ChunkedArray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The gaps of the selected rows (`rows`: bool mask over the table), in row order: each selected
    row's gap count and every gap in seconds (µs resolution, as written). The fast fixed-width parse
    is used where it applies, so a chunk arrival time costs what an ITL histogram entry costs."""
    counts, values = [], []
    start = 0
    for chunk in itl.chunks:
        sel = rows[start : start + len(chunk)]
        start += len(chunk)
        if sel.any():
            c, v = _chunk_gaps(pc.filter(chunk, pa.array(sel)))
            counts.append(c)
            values.append(v)
    if not counts:
        return np.zeros(0, dtype=np.int64), np.zeros(0)
    return np.concatenate(counts), np.concatenate(values) / 1e6


def _chunk_gaps(arr: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """(gap count per row, gaps in µs in row order) of one chunk's rows."""
    if arr.type != pa.large_binary():
        arr = arr.cast(pa.large_binary())
    if arr.null_count:
        arr = pc.fill_null(arr, _EMPTY)
    length = pc.binary_length(arr).to_numpy(zero_copy_only=False)
    counts = np.zeros(len(arr), dtype=np.int64)
    fast = (length > 0) & ((length + 1) % 9 == 0)
    slow = (length > 0) & ~fast
    parts: list[tuple[np.ndarray, np.ndarray]] = []  # (row positions, their values in row order)
    if fast.any():
        idx = np.flatnonzero(fast)
        us, bad, fields = _fixed_fields(pc.filter(arr, pa.array(fast)))
        good = np.ones(len(idx), dtype=bool)
        if bad is not None:
            good[bad] = False
            slow[idx[bad]] = True
        counts[idx[good]] = fields[good]
        if us is not None:
            parts.append((idx[good], us.astype(np.int64)))
    if slow.any():
        idx = np.flatnonzero(slow)
        text = pc.filter(arr, pa.array(slow))
        vals = _parse_general(text)  # the non-empty fields, in row order
        lists = pc.split_pattern(text.cast(pa.large_string()), ";")
        per_row = pc.list_value_length(lists).to_numpy(zero_copy_only=False)
        filled = pc.binary_length(pc.list_flatten(lists)).to_numpy(zero_copy_only=False) > 0
        row_of = np.repeat(np.arange(len(per_row)), per_row)
        counts[idx] = np.bincount(row_of[filled], minlength=len(per_row))
        parts.append((idx, vals))
    out = np.zeros(int(counts.sum()), dtype=np.int64)
    first = np.cumsum(counts) - counts  # each row's first position in `out`
    for idx, vals in parts:
        k = counts[idx]
        offset_in_row = np.arange(len(vals)) - np.repeat(np.cumsum(k) - k, k)
        out[np.repeat(first[idx], k) + offset_in_row] = vals
    return counts, out
