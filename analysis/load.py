"""Run folder → typed table: `requests.csv` (+ `run.json` metadata), with one-line errors for bad input.

The CSV is read with pyarrow's multithreaded reader and only the columns the analysis uses, so a
1,000,000-row run loads in seconds. `itl_s` stays an Arrow string column: it holds ~100 gaps per
row and is parsed (vectorized, see `metrics.itl_histogram`) only for the rows a statistic needs.
Rows are marked with the stage they belong to and whether they fall in a warm-up/cool-down
period, because every later statistic depends on that selection.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from analysis.errors import AnalysisError

# Columns the analysis needs; an older writer may lack t_scheduled_unix (no open-loop figures) or dataset.
REQUIRED = (
    "step",
    "target_users",
    "t_start_unix",
    "ttft_s",
    "e2e_s",
    "tpot_s",
    "itl_s",
    "prompt_tokens",
    "output_tokens",
    "ok",
    "error",
)
# Only what a statistic uses is converted: every extra column costs parse time on a 1M-row run.
FLOAT_COLS = (
    "t_scheduled_unix",
    "t_start_unix",
    "ttft_s",
    "e2e_s",
    "tpot_s",
    "prompt_tokens",
    "output_tokens",
    # reasoning and tool calls (absent from older runs: analysis/reasoning.py then reports none)
    "ttfo_s",
    "reasoning_tokens",
    "tool_ttft_s",
    "tool_call_tokens",
    "n_chunks",  # with tokens_source: how many tokens a chunk carried (analysis/delivery.py)
    # the server's own timing from its stream, where no spans came (analysis/enginetiming.py)
    "engine_prefill_s",
    "engine_decode_s",
    "engine_load_s",
    "engine_queue_s",
    # the server's speculative decoding per request (analysis/specdecode.py)
    "spec_draft_tokens",
    "spec_accepted_tokens",
    "spec_steps",
    "gateway_attempts",  # a gateway's retries and fallbacks before the answer (analysis/gateway.py)
    "images",  # the images a request carried (analysis/images.py; older runs: none)
)
TEXT_COLS = (
    "dataset",
    "error",
    "worker",
    "tenant",
    "session",
    "tokens_source",
    "model",
    "served_model",
)  # tenant: the mix class; session: what intervals resample; model: the model a request named, served_model
# the one that answered (older runs: none)
INT_COLS = ("step", "target_users")
#: whether a request opened its connection (true / false / empty: unknown; analysis/connections.py)
BOOL_COLS = ("new_connection",)
ID_COLS = ("user",)  # with `worker`: who sent a request (the start-up ends at the last user's first send)
NL = b"\n"


@dataclass
class Run:
    """One loaded run: the rows (without ITL), the ITL strings, run.json and what loading noticed."""

    path: Path
    df: pd.DataFrame
    itl: pa.ChunkedArray
    meta: dict
    warnings: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return str(self.meta.get("name") or self.path.name)


def load_meta(run_dir: Path) -> tuple[dict, list[str]]:
    """run.json if present and readable; requests.csv alone is enough, so problems are warnings."""
    p = run_dir / "run.json"
    if not p.exists():
        return {}, []
    try:
        meta = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        return {}, [f"{p}: unreadable ({str(e).splitlines()[0]}); using requests.csv alone"]
    if not isinstance(meta, dict):
        return {}, [f"{p}: not a JSON object; using requests.csv alone"]
    return meta, []


def _header(csv_path: Path) -> list[str]:
    try:
        with open(csv_path, newline="", encoding="utf-8") as fh:
            row = next(csv.reader(fh), None)
    except UnicodeDecodeError:
        raise AnalysisError(f"{csv_path}: not a text CSV file (undecodable bytes in the header)") from None
    except (OSError, csv.Error) as e:
        raise AnalysisError(f"{csv_path}: cannot read ({e})") from None
    if not row:
        raise AnalysisError(f"{csv_path}: empty file (no header row)")
    return [c.strip() for c in row]


def read_requests(csv_path: Path, extra: tuple[str, ...] = ()) -> tuple[pa.Table, list[str]]:
    """The needed columns (and the text columns `extra`) as an Arrow table; a truncated last line
    (crash mid-write) is skipped with a warning."""
    header = _header(csv_path)
    missing = [c for c in REQUIRED if c not in header]
    if missing:
        raise AnalysisError(
            f"{csv_path}: missing column(s) {', '.join(missing)} (is this a Goodput requests.csv? header: "
            f"{','.join(header[:6])}{',…' if len(header) > 6 else ''})"
        )
    wanted = [
        c
        for c in (*FLOAT_COLS, *TEXT_COLS, *extra, *INT_COLS, *ID_COLS, *BOOL_COLS, "itl_s", "ok")
        if c in header
    ]
    types: dict[str, pa.DataType] = {c: pa.float64() for c in (*FLOAT_COLS, *ID_COLS)}
    types.update({c: pa.string() for c in (*TEXT_COLS, *extra)})
    types.update({c: pa.bool_() for c in BOOL_COLS})
    types.update(
        {"itl_s": pa.large_binary(), "ok": pa.bool_(), "step": pa.float64(), "target_users": pa.float64()}
    )
    bad: list[pacsv.InvalidRow] = []

    def on_invalid(row: pacsv.InvalidRow) -> str:
        bad.append(row)
        return "skip"

    warnings: list[str] = []
    try:
        source, dropped_line = _complete_lines(csv_path)
        if dropped_line:
            warnings.append(
                f"{csv_path}: skipped a truncated last line (line {dropped_line}: the run stopped mid-write)"
            )
        table = pacsv.read_csv(
            source,
            parse_options=pacsv.ParseOptions(invalid_row_handler=on_invalid, newlines_in_values=False),
            convert_options=pacsv.ConvertOptions(
                column_types={c: t for c, t in types.items() if c in header},
                include_columns=wanted,
                strings_can_be_null=False,
                true_values=["true", "True", "1"],
                false_values=["false", "False", "0", ""],
            ),
        )
    except (pa.ArrowInvalid, OSError) as e:
        raise AnalysisError(f"{csv_path}: corrupt CSV ({_one_line(e)})") from None
    if bad:
        # The parallel parser does not know line numbers: find the first bad one (error path only).
        data = csv_path.read_bytes()
        first = bad[0]
        pos = data.find(first.text.encode())
        where = f"line {data.count(NL, 0, pos) + 1}" if pos >= 0 else "a row"
        more = f" ({len(bad)} bad rows in all)" if len(bad) > 1 else ""
        raise AnalysisError(
            f"{csv_path}: corrupt CSV at {where}: expected {first.expected_columns} fields, "
            f"got {first.actual_columns}{more}"
        )
    return table, warnings


def _complete_lines(csv_path: Path) -> tuple[pa.BufferReader | Path, int | None]:
    """The file up to its last newline, memory-mapped (no copy), and the number of a dropped partial line.

    The record sink writes whole lines, so a last line without its newline was cut by a crash or
    is still being written: it is dropped rather than failing the whole run.
    """
    size = csv_path.stat().st_size
    if size == 0:
        return csv_path, None
    with open(csv_path, "rb") as fh:
        fh.seek(size - 1)
        if fh.read(1) == NL:
            return csv_path, None
    cut = _rfind_newline(csv_path, size)
    if cut == 0:  # only a header line without newline: nothing to drop, the header check decides
        return csv_path, None
    buf = pa.memory_map(str(csv_path)).read_buffer()
    line = int(np.count_nonzero(np.frombuffer(buf, dtype=np.uint8, count=cut) == NL[0])) + 1
    return pa.BufferReader(buf.slice(0, cut)), line


def _rfind_newline(csv_path: Path, size: int) -> int:
    """Offset just after the last newline, reading backwards in blocks."""
    with open(csv_path, "rb") as fh:
        end = size
        while end > 0:
            start = max(0, end - (1 << 16))
            fh.seek(start)
            pos = fh.read(end - start).rfind(NL)
            if pos >= 0:
                return start + pos + 1
            end = start
    return 0


def _one_line(e: Exception) -> str:
    text = " ".join(str(e).split())
    return text[:240] + ("…" if len(text) > 240 else "")


def load_run(path: str | Path) -> Run:
    """Folder → Run, or AnalysisError naming what is missing or broken."""
    run_dir = Path(path)
    if not run_dir.exists():
        raise AnalysisError(f"{run_dir}: no such run folder")
    if not run_dir.is_dir():
        raise AnalysisError(f"{run_dir}: not a folder (give the run folder that holds requests.csv)")
    csv_path = run_dir / "requests.csv"
    if not csv_path.is_file():
        raise AnalysisError(f"{run_dir}: no requests.csv here (is this a run folder?)")
    meta, warnings = load_meta(run_dir)
    context = _context_tokens(meta)
    table, more = read_requests(csv_path, ("finish_reason",) if context else ())
    warnings += more
    if table.num_rows == 0:
        raise AnalysisError(f"{csv_path}: the run has no requests (header only)")
    cut = _cut_at_context(table, context) if context else 0
    itl = table.column("itl_s")
    df = table.drop([c for c in ("itl_s", "finish_reason") if c in table.column_names]).to_pandas(
        strings_to_categorical=True
    )
    for c in INT_COLS:
        if df[c].isna().any():
            line = int(np.flatnonzero(df[c].isna().to_numpy())[0]) + 2
            raise AnalysisError(f"{csv_path}: empty '{c}' at line {line} (every row carries its load level)")
        df[c] = df[c].astype(np.int64)
    if df["t_start_unix"].isna().any():
        line = int(np.flatnonzero(df["t_start_unix"].isna().to_numpy())[0]) + 2
        raise AnalysisError(f"{csv_path}: empty 't_start_unix' at line {line}")
    df["ok"] = df["ok"].fillna(False).astype(bool)
    for c in FLOAT_COLS:
        if c not in df:
            df[c] = np.nan
    warnings += _meta_warnings(meta) + _fit_warnings(meta, df, context, cut)
    mark_periods(df, meta)
    return Run(run_dir, df, itl, meta, warnings)


def _meta_warnings(meta: dict) -> list[str]:
    """What run.json says went wrong on the load side (lost rows)."""
    out = []
    lost = meta.get("lost_rows")
    if isinstance(lost, int | float) and lost > 0:
        sent, got = meta.get("requests_sent"), meta.get("rows_received")
        out.append(
            f"{int(lost)} request rows were lost in transit (sent {sent}, received {got}): figures undercount"
        )
    return out


def _context_tokens(meta: dict) -> int:
    """The server's context length the pre-run check read (run.json `context_fit`; 0: none)."""
    fit = meta.get("context_fit")
    tokens = fit.get("context_tokens") if isinstance(fit, dict) else None
    return tokens if type(tokens) is int and tokens > 0 else 0


def _cut_at_context(table: pa.Table, context: int) -> int:
    """Answers that stopped where prompt and output filled the context: vLLM 0.32 and llama-server cut
    an answer there rather than refuse the request (`length`, prompt + output ≥ the context). Counted
    on the Arrow table, before `finish_reason` is dropped: no other figure needs that column."""
    if "finish_reason" not in table.column_names:
        return 0
    total = pc.add(pc.fill_null(table["prompt_tokens"], 0.0), pc.fill_null(table["output_tokens"], 0.0))
    ok = pc.fill_null(table["ok"], False)
    mask = pc.and_(pc.and_(ok, pc.equal(table["finish_reason"], "length")), pc.greater_equal(total, context))
    return int(pc.sum(pc.fill_null(mask, False)).as_py() or 0)


def _fit_warnings(meta: dict, df: pd.DataFrame, context: int, cut: int) -> list[str]:
    """What the pre-run check found too long for the server's context (run.json `context_fit`,
    loadgen/run/fit.py), with what this run's rows show of it: requests refused (HTTP 400), and
    answers `cut` at the `context` (`_context_tokens`: 0 when the check read none)."""
    if not context:
        return []
    refused = int((df["error"] == "http_400").sum())
    out = []
    for d in meta["context_fit"].get("datasets") or []:
        if isinstance(d, dict) and isinstance(d.get("over"), int) and d["over"] > 0:
            out.append(
                f"{d['over']} of {d.get('requests')} requests of {d.get('dataset')} were too long for the "
                f"server's context of {context} tokens with their max_tokens (estimated before the run): a "
                f"server refuses such a request ({refused} rows failed with http_400) or cuts its answer "
                f"short ({cut} answers stopped where prompt and output filled the context), and the figures "
                "describe the others"
            )
    if not out and cut:
        out.append(
            f"{cut} answers stopped where prompt and output filled the server's context of {context} tokens "
            "(finish_reason length): shorter than the max_tokens they asked for"
        )
    return out


def stages_by_step(meta: dict) -> dict[int, dict]:
    """run.json stages keyed by step; malformed entries are ignored (metadata is best effort)."""
    out: dict[int, dict] = {}
    for st in meta.get("stages") or []:
        if isinstance(st, dict) and isinstance(st.get("step"), int | float):
            out[int(st["step"])] = st
    return out


def mark_periods(df: pd.DataFrame, meta: dict) -> None:
    """Add `in_step_stats` (outside its stage's warm-up/cool-down) and `in_run_stats` (outside the first warm-up).

    Per step, a stage's warm-up seconds (from run.json) are excluded: the server is settling to
    the new load. For the whole run only the *first* stage's warm-up is excluded (cold start):
    later transitions are real load the server handled, and dropping them would leave holes in
    the run's window and bias its throughput low.
    """
    stages = stages_by_step(meta)
    n = len(df)
    in_step = np.ones(n, dtype=bool)
    in_run = np.ones(n, dtype=bool)
    if stages:
        t = df["t_start_unix"].to_numpy()
        step = df["step"].to_numpy()
        first = min(stages.values(), key=lambda s: float(s.get("t_start_unix") or 0.0))
        for s, st in stages.items():
            t0 = st.get("t_start_unix")
            if not isinstance(t0, int | float):
                continue
            rows = step == s
            warm = float(st.get("warmup_s") or 0.0)
            cool = float(st.get("cooldown_s") or 0.0)
            excl = np.zeros(n, dtype=bool)
            if warm > 0:
                excl |= rows & (t < t0 + warm)
            t1 = st.get("t_end_unix")
            if cool > 0 and isinstance(t1, int | float):
                excl |= rows & (t >= t1 - cool)
            in_step &= ~excl
            if st is first and warm > 0:
                in_run &= ~(rows & (t < t0 + warm))
    df["in_step_stats"] = in_step
    df["in_run_stats"] = in_run
