"""Tables → conversations through a column mapping; csv, parquet and hub sets read by Hugging Face `datasets`.

Mapping options (in the spec's query, e.g. `qa.parquet?prompt=question&reply=answer`):
  prompt=COL      the user message (required unless a `prompt`, `messages` or `conversations` column exists)
  system=COL      a system message before it (the shareable prefix)
  reply=COL       a recorded answer: its length becomes the expected output length
  max_tokens=COL  the output cap per row, or max_tokens=N for every row
  id=COL          the conversation id (default: NAME-ROW)
  group=COL       the prefix group (default: one per distinct system prompt)
A `messages` (role/content list) or `conversations` (ShareGPT) column is converted as a chat log.

`datasets` (and through it pandas) is imported here, lazily, only when such a file is opened: the
load path never pays for it otherwise.
"""

from __future__ import annotations

import os
import socket
import tempfile
from collections.abc import Iterable, Iterator
from typing import Any
from urllib.parse import urlparse

from workloads.conversation import Conversation, Turn
from workloads.errors import WorkloadError
from workloads.sources.chatlog import build, group_of, normalize
from workloads.spec import Options
from workloads.tokens import count_tokens

MAPPING_HINT = "add a column mapping such as ?prompt=COLUMN (see README.md § Workloads)"


def _text(value: Any) -> str | None:
    if value is None:
        return None
    text = value if isinstance(value, str) else str(value)
    return text if text.strip() else None


def load_rows(
    rows: Iterable[tuple[str, Any]], columns: list[str], opts: Options, stem: str, source: str
) -> list[Conversation]:
    """Apply the column mapping to every row; `columns` lists what the table has, for the errors."""
    mapping = {key: opts.text(key) for key in ("prompt", "system", "reply", "id", "group")}
    cap = opts.text("max_tokens")
    first_only = opts.choice("turns", "all", ("all", "first")) == "first"
    opts.done()
    have = ", ".join(columns) or "none"
    chat_col = None
    if mapping["prompt"] is None:
        for candidate in ("messages", "conversations", "conversation"):
            if candidate in columns:
                chat_col = candidate
                break
        else:
            if "prompt" in columns:
                mapping["prompt"] = "prompt"
            else:
                raise WorkloadError(f"{source}: no column mapping: {MAPPING_HINT} (columns: {have})")
    fixed_cap: int | None = None
    if cap is not None and cap.isdigit():
        fixed_cap, cap = int(cap), None
        if fixed_cap < 1:
            raise WorkloadError(f"{source}: max_tokens={fixed_cap} must be at least 1")
    for key, col in [*mapping.items(), ("max_tokens", cap)]:
        if col is not None and col not in columns:
            raise WorkloadError(f"{source}: {key}={col}: no such column (columns: {have})")

    out: list[Conversation] = []
    for n, (where, row) in enumerate(rows, 1):
        cid = _text(row.get(mapping["id"])) if mapping["id"] else None
        cid = cid or f"{stem}-{n}"
        if chat_col is not None:
            conv = build(normalize(row.get(chat_col), where), cid, first_only)
            if conv is not None:
                out.append(conv)
            continue
        prompt = _text(row.get(mapping["prompt"]))
        if prompt is None:
            raise WorkloadError(f"{where}: column '{mapping['prompt']}' is empty; expected the prompt text")
        system = _text(row.get(mapping["system"])) if mapping["system"] else None
        reply = _text(row.get(mapping["reply"])) if mapping["reply"] else None
        max_tokens = fixed_cap
        if cap is not None:
            value = row.get(cap)
            try:
                max_tokens = int(value) if value is not None and str(value).strip() else None
            except (TypeError, ValueError):
                raise WorkloadError(
                    f"{where}: column '{cap}' = {value!r} is not a whole number of tokens"
                ) from None
            if max_tokens is not None and max_tokens < 1:
                raise WorkloadError(f"{where}: column '{cap}' = {value!r} must be at least 1")
        if max_tokens is None and reply is not None:
            max_tokens = max(1, count_tokens(reply))
        prefix = ({"role": "system", "content": system},) if system else ()
        group = _text(row.get(mapping["group"])) if mapping["group"] else None
        turn = Turn(({"role": "user", "content": prompt},), max_tokens, reply, 0.0)
        out.append(Conversation(cid, prefix, (turn,), group or group_of(prefix), {}))
    return out


def _quiet_datasets() -> Any:
    try:
        import datasets
    except ImportError:  # pragma: no cover - it is in requirements.txt
        raise WorkloadError(
            "reading csv/parquet/hub sets needs the `datasets` package (pip install datasets)"
        ) from None
    datasets.disable_progress_bars()
    datasets.logging.set_verbosity_error()
    return datasets


def _rows_of(table: Any, label: str) -> Iterator[tuple[str, dict]]:
    for i, row in enumerate(table, 1):
        yield f"{label}: row {i}", row


def file_table(path: str, kind: str) -> tuple[list[str], list[tuple[str, dict]]]:
    """Read a csv or parquet file with `datasets`; rows are materialised (the cache dir is temporary)."""
    datasets = _quiet_datasets()
    reader = {"csv": datasets.Dataset.from_csv, "parquet": datasets.Dataset.from_parquet}[kind]
    with tempfile.TemporaryDirectory(prefix="goodput-hf-") as cache:
        try:
            table = reader(str(path), keep_in_memory=True, cache_dir=cache)
        except Exception as e:  # the library raises many types; the user needs one line
            if "corresponds to no data" in str(e):  # a header and no rows
                return [], []
            detail = str(e).strip().splitlines()[-1] if str(e).strip() else type(e).__name__
            raise WorkloadError(f"{path}: cannot read as {kind}: {detail[:200]}") from None
        return list(table.column_names), list(_rows_of(table, str(path)))


def hub_reachable(timeout_s: float = 3.0) -> bool:
    """One short TCP connect: the library itself retries for ~25 s before it gives up."""
    url = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    try:
        with socket.create_connection((url.hostname or "huggingface.co", url.port or 443), timeout=timeout_s):
            return True
    except OSError:
        return False


def hub_table(name: str, opts: Options) -> tuple[list[str], list[tuple[str, dict]]]:
    """Options: split=train, config=NAME. Offline mode (HF_HUB_OFFLINE=1) reads the local cache only."""
    split = opts.text("split", "train") or "train"
    config = opts.text("config")
    offline = os.environ.get("HF_HUB_OFFLINE", "") not in ("", "0") or os.environ.get(
        "HF_DATASETS_OFFLINE", ""
    ) not in ("", "0")
    if not offline and not hub_reachable():
        raise WorkloadError(
            f"hf:{name}: the Hugging Face hub is not reachable from this machine; "
            "download the set where it is and pass the local file (json/jsonl/parquet/csv) instead"
        )
    datasets = _quiet_datasets()
    try:
        table = datasets.load_dataset(name, config, split=split)
    except Exception as e:
        detail = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise WorkloadError(f"hf:{name}: cannot load split '{split}': {detail[:200]}") from None
    return list(table.column_names), list(_rows_of(table, f"hf:{name}"))
