"""Workloads: what Goodput sends. Built-in sets and generators, file and hub loaders, seeded per-worker streams.

    from workloads import open_workload
    stream = open_workload("agentic", seed=0, worker_index=0, worker_count=1, order="shuffled")
    conv = stream.next_conversation()              # multi-turn users
    messages, max_tokens, conv, turn = stream.next_request()   # single-shot users

Spec strings, loaders, orders and the stats command are documented in README.md § Workloads. Importing
this package is cheap (no pandas, no Hugging Face `datasets`; those load only for csv/parquet/hub).
"""

from workloads.conversation import Conversation, Turn, Workload, request_messages
from workloads.errors import WorkloadError
from workloads.gen.agent_tools import result_body as tool_result_text
from workloads.registry import BUILTINS, DATA_DIR, load_workload, open_workload
from workloads.stream import ORDERS, WorkloadStream
from workloads.tokens import count_tokens, prompt_tokens, synth_prompt

__all__ = [
    "BUILTINS",
    "DATA_DIR",
    "ORDERS",
    "Conversation",
    "Turn",
    "Workload",
    "WorkloadError",
    "WorkloadStream",
    "count_tokens",
    "load_workload",
    "open_workload",
    "prompt_tokens",
    "request_messages",
    "synth_prompt",
    "tool_result_text",
]
