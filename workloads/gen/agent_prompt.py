"""The system prompts of the `agentic` set: one coding agent ("Forge"), three repositories.

The prompt is what makes agentic traffic special for a server: thousands of tokens of identical
text at the start of every request. Its first part (identity, rules, tool protocol, tool schemas) is
the same in every session; the second part (project, conventions, repository map) is per repository,
so sessions of one repository share a longer prefix than sessions of different ones — like a real
agent product used on several codebases. The repositories are stdlib modules under made-up names.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache

from workloads.gen.material import source_file
from workloads.tokens import count_tokens


@dataclass(frozen=True, slots=True)
class Repo:
    group: str  # prefix group id
    name: str
    package: str
    about: str
    modules: tuple[str, ...]  # stdlib paths used as this package's files
    weight: float  # share of sessions: one repository is the busy one

    def path(self, module: str) -> str:
        base = module.removesuffix("/__init__.py").removesuffix(".py").replace("/", "_")
        return f"src/{self.package}/{base}.py"

    def test_path(self, module: str) -> str:
        return f"tests/test_{self.path(module).rsplit('/', 1)[1]}"


REPOS = (
    Repo(
        "forge-textkit", "textkit", "textkit",
        "a text-processing toolkit used by the company's documentation pipeline: wrapping, shell-style "
        "splitting, glob matching, templating, diffs and CSV import",
        ("textwrap.py", "shlex.py", "fnmatch.py", "string.py", "difflib.py", "csv.py", "glob.py"), 0.5,
    ),
    Repo(
        "forge-ledger", "ledgerline", "ledgerline",
        "a small library for financial reports: exact fractions, statistics over time series, calendars "
        "of settlement days, JSON import/export and priority queues of pending transfers",
        ("fractions.py", "statistics.py", "calendar.py", "json/decoder.py", "json/encoder.py", "heapq.py", "bisect.py"), 0.3,
    ),
    Repo(
        "forge-relay", "relayd", "relayd",
        "the HTTP relay daemon in front of the mail service: URL parsing, cookies, IP allow-lists, "
        "MIME types and header encodings",
        ("urllib/parse.py", "http/cookies.py", "ipaddress.py", "email/utils.py", "mimetypes.py", "base64.py"), 0.2,
    ),
)  # fmt: skip

TOOLS = [
    ("read_file", "Read a text file of the repository. Returns the requested lines with line numbers. Prefer reading "
     "a window around the code you need over whole large files.",
     {"path": ("string", "File path relative to the repository root."),
      "start_line": ("integer", "First line to return (1-based). Default: 1."),
      "end_line": ("integer", "Last line to return (inclusive). Default: start_line + 199.")}, ["path"]),
    ("list_dir", "List files and directories under a path, with line counts for text files.",
     {"path": ("string", "Directory relative to the repository root. Default: '.'."),
      "depth": ("integer", "How many levels to descend. Default: 2.")}, []),
    ("search_code", "Search the repository for a literal string or a regular expression. Returns matching lines as "
     "path:line: text, at most max_results of them.",
     {"pattern": ("string", "Literal text or, with regex=true, a Python regular expression."),
      "path": ("string", "Restrict the search to this directory or file."),
      "regex": ("boolean", "Interpret pattern as a regular expression. Default: false."),
      "max_results": ("integer", "Maximum number of matches to return. Default: 50.")}, ["pattern"]),
    ("apply_patch", "Apply a unified diff to the working tree. The diff must apply cleanly; on failure nothing is "
     "changed and the rejected hunks are returned.",
     {"patch": ("string", "A unified diff with ---/+++ headers and @@ hunks, paths relative to the root.")}, ["patch"]),
    ("write_file", "Create a new file or replace a file completely. Use apply_patch for edits to existing files.",
     {"path": ("string", "File path relative to the repository root."),
      "content": ("string", "The complete new content of the file.")}, ["path", "content"]),
    ("run_tests", "Run the test suite or a part of it with pytest and return the output (truncated to the last "
     "400 lines).",
     {"target": ("string", "A test file, directory or node id, e.g. tests/test_x.py::test_y. Default: all tests."),
      "keyword": ("string", "Only run tests matching this -k expression."),
      "fail_fast": ("boolean", "Stop at the first failure (-x). Default: false.")}, []),
    ("run_command", "Run a shell command in the repository root inside the sandbox and return its exit code, stdout "
     "and stderr. Network access is disabled. Commands are killed after timeout_s seconds.",
     {"command": ("string", "The command line, interpreted by bash."),
      "timeout_s": ("integer", "Time limit in seconds. Default: 120.")}, ["command"]),
    ("git_diff", "Show the uncommitted changes of the working tree as a unified diff.",
     {"paths": ("array", "Limit the diff to these paths.")}, []),
    ("ask_user", "Ask the user a question and wait for the answer. Only for decisions you cannot make from the code, "
     "the tests or the task description.",
     {"question": ("string", "One clear question.")}, ["question"]),
]  # fmt: skip

RULES = """\
# How you work
- Understand before you change. Read the code you are about to modify and the tests that cover it; search for
  every caller of a function before you change its signature or behaviour.
- Make the smallest change that fully solves the task. Do not reformat unrelated code, rename things for taste,
  or add dependencies.
- Reproduce a bug before fixing it: run the failing test, or write one that fails for the reported reason.
- After every change run the relevant tests. Never claim something works without having run it.
- Keep the public API backward compatible unless the task says otherwise. If a change is incompatible, say so
  in your final message.
- Add or update tests for every behaviour you change. Tests go in tests/, one file per module, using plain
  pytest functions and assert statements.
- Follow the repository's conventions (below). Match the surrounding style: naming, docstrings, error messages.
- If a tool call fails, read the error, adjust and try again; do not repeat the same call unchanged.
- If the task is ambiguous and the code does not settle it, ask the user one precise question with ask_user.
- Never run commands that modify files outside the repository, access the network or need credentials.
- Be economical: read windows of files instead of whole files, search instead of listing directories, and
  stop exploring once you know enough.

# Tool protocol
You call a tool by writing exactly one block of this form in your reply, after a short sentence saying why:
<tool_call>{"name": "TOOL_NAME", "arguments": {...}}</tool_call>
Arguments must be valid JSON matching the tool's schema. Call one tool per reply and wait for its result,
which arrives in the next message as <tool_result name="TOOL_NAME">...</tool_result>. Results can be
truncated; ask for a narrower window if you need more.

When the task is done, reply without a tool call. That final message must say what you changed (files and
functions), why, how you verified it (the test command and its result) and anything the user should check.
Use short Markdown: a one-line summary, then bullet points. Do not paste whole files into the final message.

# Tools
"""


def _spec(name: str, description: str, params: dict, required: list[str]) -> dict:
    """One tool as an OpenAI function tool: {type: function, function: {name, description, parameters}}."""
    props = {}
    for pname, (ptype, pdesc) in params.items():
        props[pname] = {"type": ptype, "description": pdesc}
        if ptype == "array":
            props[pname]["items"] = {"type": "string"}
    spec = {"name": name, "description": description,
            "parameters": {"type": "object", "properties": props, "required": required}}  # fmt: skip
    return {"type": "function", "function": spec}


def _schema(name: str, description: str, params: dict, required: list[str]) -> str:
    return json.dumps(_spec(name, description, params, required), indent=2)


def tool_specs() -> list[dict]:
    """The agent's tools as the `tools` field of a chat request (`agentic:tools=native`)."""
    return [_spec(*t) for t in TOOLS]


def _compact_tool(name: str, description: str, params: dict, required: list[str]) -> str:
    args = ", ".join(f"{p}: {t}" + ("" if p in required else " = ...") for p, (t, _) in params.items())
    return f"- {name}({args}): {description.split('. ')[0].rstrip('.')}."


def _repo_section(repo: Repo, map_budget: int | None = None) -> str:
    lines = [
        "# Project",
        f"You are working in the `{repo.name}` repository: {repo.about}.",
        "",
        "Conventions of this repository:",
        f"- Source lives in src/{repo.package}/, tests in tests/ (pytest). Run tests with `python -m pytest -q`.",
        "- Python 3.11. Type hints on new public functions. Docstrings in Google style for public API.",
        "- Errors: raise ValueError or TypeError with a message naming the offending argument.",
        "- Lint with `ruff check src tests`; format with `ruff format`. Line length 100.",
        "- Every user-visible change gets a line in CHANGELOG.md under 'Unreleased'.",
        "",
        "# Environment",
        f"- Working directory: /workspace/{repo.name} (a git checkout, branch `agent/task`).",
        "- OS: Debian 12, Python 3.11 in .venv (activated). No network access.",
        "",
        "# Repository map (public classes and functions per file)",
    ]
    spent = 0
    for module in repo.modules:
        sf = source_file(module)
        lines.append(f"{repo.path(module)}  ({len(sf.lines)} lines)")
        outline = [f"    {entry}" for entry in sf.outline]
        cost = count_tokens("\n".join(outline))
        if map_budget is None or spent + cost <= map_budget:
            lines.extend(outline)
            spent += cost
    lines.append("tests/  (one test_<module>.py per module)")
    lines.append("CHANGELOG.md  README.md  pyproject.toml")
    return "\n".join(lines)


@lru_cache(maxsize=32)
def system_prompt(repo: Repo, target_tokens: int = 1_000_000) -> str:
    """The repository's system prompt, at most ~target_tokens long (Goodput's estimate).

    The full prompt (JSON tool schemas, the whole repository map) is ~3.5k tokens; for smaller
    context windows the tools are listed one line each and the map keeps as many files as fit.
    """
    head = (
        "You are Forge, an autonomous software engineering agent. You work inside a developer's repository "
        "through the tools listed below: you read and search code, edit files with patches, and run tests and "
        "commands in a sandbox. You are careful, precise and economical, and you finish what you start.\n\n"
    )
    full = f"{head}{RULES}\n" + "\n\n".join(_schema(*t) for t in TOOLS) + f"\n\n{_repo_section(repo)}\n"
    if count_tokens(full) <= target_tokens:
        return full
    compact = f"{head}{RULES}\n" + "\n".join(_compact_tool(*t) for t in TOOLS) + "\n\n"
    room = target_tokens - count_tokens(compact) - count_tokens(_repo_section(repo, 0))
    return f"{compact}{_repo_section(repo, max(0, room))}\n"
