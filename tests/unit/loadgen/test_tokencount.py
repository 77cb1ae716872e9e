"""`--tokenizer` (loadgen/tokencount.py): where the tokenizer is found, what a mistake says, and what is
counted; and the report's line where output tokens are chunk counts (analysis/delivery.py)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from analysis.delivery import uncounted_warnings
from core.errors import OptionError
from core.result import StreamResult
from core.tokens import count_tokens
from loadgen.tokencount import OutputCounter, load, locate
from tests.support import simtokenizer


@pytest.fixture
def tok_file(tmp_path: Path) -> Path:
    return simtokenizer.write(tmp_path / "tokenizer.json")


def test_a_file_or_a_model_folder_is_found(tok_file: Path) -> None:
    assert locate(str(tok_file)) == tok_file
    assert locate(str(tok_file.parent)) == tok_file


def test_a_model_id_is_found_in_the_local_cache_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import huggingface_hub.constants

    cache = tmp_path / "hub"
    snap = cache / "models--acme--tiny" / "snapshots" / "abc123"
    snap.mkdir(parents=True)
    (cache / "models--acme--tiny" / "refs").mkdir()
    (cache / "models--acme--tiny" / "refs" / "main").write_text("abc123")
    simtokenizer.write(snap / "tokenizer.json")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
    assert locate("acme/tiny") == snap / "tokenizer.json"
    with pytest.raises(
        OptionError, match=r"^--tokenizer: 'acme/other' .* local Hugging Face cache .*hf download"
    ):
        locate("acme/other")


@pytest.mark.parametrize(
    ("make", "says"),
    [
        (lambda d: d, "holds no tokenizer.json"),
        (
            lambda d: d / "missing.json",
            "is not a tokenizer.json, a folder holding one, or a Hugging Face model id",
        ),
        (
            lambda d: (d / "t.json").write_text("{not json") and d / "t.json",
            "is not a tokenizer the tokenizers",
        ),
    ],
)
def test_a_mistake_is_one_line_naming_the_option(tmp_path: Path, make, says: str) -> None:
    value = str(make(tmp_path))
    with pytest.raises(OptionError, match=r"^--tokenizer: ") as e:
        load.__wrapped__(value)
    assert says in str(e.value) and "\n" not in str(e.value)


def test_answer_and_reasoning_are_re_encoded_and_a_tool_event_counts_one(tok_file: Path) -> None:
    counter = load(str(tok_file))
    assert isinstance(counter, OutputCounter) and counter.source == str(tok_file)
    res = StreamResult()
    answer = [" the way", " of the", " people, and", " time."]  # 4 chunks, 9 tokens
    thought = [" so it", " was."]  # 2 chunks, 4 tokens
    res.parts.extend(answer)
    res.reasoning_parts.extend(thought)
    res.tool_events = 2
    assert counter.count(res) == (9 + 4 + 2, 4)
    assert count_tokens("".join(answer)) == 9 and count_tokens("".join(thought)) == 4
    assert counter.count(StreamResult()) == (0, 0)


def test_every_api_keeps_the_reasoning_text_for_the_count() -> None:
    """What each parser hands over: reasoning deltas, inline `<think>` blocks (the tags a token each),
    the answer after them; a stream whose chunks merge both counts its text all the same."""
    from loadgen.transport.apis import APIS

    def run(api: str, events: list[bytes]) -> StreamResult:
        res = StreamResult(splits_reasoning=APIS[api].splits_reasoning)
        for i, data in enumerate(events):
            APIS[api].fold(res, "", data, float(i))
        return res

    chat = run("chat", [b'{"choices":[{"delta":{"reasoning_content":"so it"}}]}',
                        b'{"choices":[{"delta":{"reasoning":" was."}}]}',
                        b'{"choices":[{"delta":{"content":"The way"}}]}'])  # fmt: skip
    assert (chat.reasoning_parts, chat.parts) == (["so it", " was."], ["The way"])
    inline = run("chat", [b'{"choices":[{"delta":{"content":"<think>so"}}]}',
                          b'{"choices":[{"delta":{"content":" it</think>The"}}]}',
                          b'{"choices":[{"delta":{"content":" way"}}]}'])  # fmt: skip
    assert (inline.reasoning_parts, inline.parts) == (["<think>", "so", " it</think>"], ["The", " way"])
    messages = run(
        "messages", [b'{"type":"content_block_delta","delta":{"type":"thinking_delta","thinking":"so it"}}']
    )
    assert messages.reasoning_parts == ["so it"]


def test_the_report_says_when_output_tokens_are_chunk_counts() -> None:
    rows = pd.DataFrame(
        {"ok": [True, True, True, False], "tokens_source": ["chunks", "chunks", "usage", "chunks"]}
    )
    (line,) = uncounted_warnings(rows)
    assert (
        line.startswith("2 of 3 completed requests had no token count from the server")
        and "--tokenizer" in line
    )
    assert uncounted_warnings(rows.assign(tokens_source="tokenizer")) == []
    assert uncounted_warnings(rows.iloc[:0]) == []
