"""The local model's choice among tools it has no rule for (an MCP server's, a user's agent):
the one whose name and description share the request's words.

Offered ``weather__get_forecast`` ("Get the weather forecast for a city"), the request "What
is the weather forecast for Paris?" calls it with ``{"city": "Paris"}``: "weather" and
"forecast" are words of its name, and its required string argument is filled with what the
request is about (the words after its last "for", "in", "of"...). A tool must share at least
one word of its name and two in all, so a request that only happens to use one common word
calls nothing; the local model then says that no offered tool fits.

Offered a task runner (the orchestrator's ``run_task``, as Claude Code shows it:
``mcp__orchestrator__run_task``), a request that is a task (some words that carry meaning)
and that no other offered tool fits is handed to it whole: ``{"task": <the request>}``
(``task_runner``, ``delegated_call``). Its description names the orchestrator's agents (a
calculator, search, data), so the other rules never see it, lest it pass for one of them.

It reads the same bounded window as the other rules (``local_rules.TEXT_WINDOW``), and each
tool costs a set intersection, so thousands of offered tools cost no regex each.
"""

from __future__ import annotations

import re
from typing import Any

from functions.gateway.providers import local_rules as rules
from functions.gateway.providers.local_schema import minimal_instance

MIN_NAME_HITS = 1
MIN_HITS = 2
_WORDS = re.compile(r"[a-z0-9]+")
# fmt: off
_STOP = frozenset((
    "a", "an", "and", "are", "as", "at", "be", "by", "can", "could", "do", "does", "for", "from",
    "get", "give", "how", "i", "in", "is", "it", "list", "me", "my", "of", "on", "or", "please",
    "set", "show", "tell", "that", "the", "this", "to", "use", "was", "what", "when", "where",
    "which", "who", "why", "will", "with", "you", "your",
))
# fmt: on
_SUBJECT = re.compile(
    r"\b(?:for|in|at|of|about|on|near|from)\s+(?:the\s+)?([^?.!,;:]{1,120}?)\s*[?.!]*\s*$", re.I
)
_QUERY_NAMES = rules.SYNONYMS["query"]
TASK_RUNNER = "run_task"
"""The orchestrator's MCP tool (``functions.orchestrator.mcp_tool.TOOL``), as offered alone or
namespaced by a client (``<server>__run_task``)."""
MIN_TASK_WORDS = 2


def words_of(text: str) -> set[str]:
    """The words that carry meaning: lower-case, without the request's scaffolding."""
    return {w for w in _WORDS.findall(text.lower()) if len(w) > 2 and w not in _STOP}


def matched_call(
    tools: list[dict[str, Any]], text: str, check: rules.Check = rules.no_deadline
) -> rules.ToolCall | None:
    """The call of the offered tool, among those no rule knows, that fits ``text`` best; None
    when none shares enough of its words or its required arguments cannot be filled."""
    asked = words_of(text)
    if not asked:
        return None
    best: tuple[int, int, dict[str, Any]] | None = None
    for tool in tools:
        if rules.tool_kind(tool) != "other":
            continue  # the calculator, search, data tools: their rules choose them
        check()
        named = words_of(str(tool.get("name", "")).replace("_", " "))
        in_name = len(asked & named)
        in_all = len(asked & (named | words_of(str(tool.get("description", "")))))
        if (
            in_name >= MIN_NAME_HITS
            and in_all >= MIN_HITS
            and (best is None or (in_name, in_all) > best[:2])
        ):
            best = (in_name, in_all, tool)
    return None if best is None else _call(best[2], text)


def subject_of(text: str) -> str:
    """What ``text`` asks about: the words after its last preposition ("for Paris"), else the
    request without its question words."""
    found = _SUBJECT.search(text.strip())
    if found and found.group(1).strip():
        return found.group(1).strip()
    return rules.lookup_query(text) or text.strip()


def _call(tool: dict[str, Any], text: str) -> rules.ToolCall | None:
    schema = tool.get("input_schema") or {}
    properties = schema.get("properties") or {}
    subject = subject_of(text)
    guessed = minimal_instance(schema, subject)
    arguments: dict[str, Any] = guessed if isinstance(guessed, dict) else {}
    for name in schema.get("required") or []:
        spec = properties.get(name) if isinstance(properties, dict) else None
        if isinstance(spec, dict) and spec.get("type", "string") == "string" and "enum" not in spec:
            query = rules.lookup_query(text) or subject
            arguments[name] = query if name.lower() in _QUERY_NAMES else subject
    if any(name not in arguments for name in schema.get("required") or []):
        return None
    return rules.ToolCall(str(tool["name"]), arguments)


def task_runner(tool: dict[str, Any]) -> bool:
    """Whether ``tool`` runs a whole task: named ``run_task`` (alone or namespaced) and asking
    for a ``task`` string."""
    name = str(tool.get("name", ""))
    if name != TASK_RUNNER and not name.endswith(f"__{TASK_RUNNER}"):
        return False
    schema = tool.get("input_schema")
    properties = schema.get("properties") if isinstance(schema, dict) else None
    task = properties.get("task") if isinstance(properties, dict) else None
    return isinstance(task, dict) and task.get("type", "string") == "string"


def delegated_call(tool: dict[str, Any], text: str) -> rules.ToolCall | None:
    """``tool`` (a task runner) called with ``text`` as its task, when ``text`` is one: at
    least ``MIN_TASK_WORDS`` words that carry meaning, or an arithmetic expression."""
    task = text.strip()
    if len(words_of(task)) < MIN_TASK_WORDS and rules.extract_expression(task) is None:
        return None
    return rules.ToolCall(str(tool["name"]), {"task": task})
