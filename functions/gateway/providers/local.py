"""The local rule-based model: deterministic, offline, no key.

It lets the whole system run anywhere. Given tools, it picks the ones whose name and
description fit the request and fills their arguments from it (an arithmetic expression to a
calculator-like tool, a lookup to a search-like tool, attached rows to a data tool, and the
text after "use NAME" to any tool the request names, such as a user's own agent, and to a tool
no rule knows whose name and description share the request's words, ``local_match``); given tool
results, it writes an answer that states them. It cannot reason or write prose beyond that, and
it says so: every answer is marked as coming from the local rule-based model.

What it examines is bounded before any rule runs, so that one caller cannot take CPU or memory
from every route that ends here: the rules read only the last user turn (without Claude Code's
``<system-reminder>`` context), and of it only the last ``rules.TEXT_WINDOW`` (4 KB)
characters; attached data is parsed only from a turn of at most ``rules.DATA_WINDOW`` (256 KB).
It reads what current clients send and skips what it cannot use: ``system`` turns mid-conversation,
unknown block types and fields, server tools. ``tool_choice`` is obeyed (``any``/``tool`` always
give a tool_use, ``none`` never does).
"""

from __future__ import annotations

import csv
import hashlib
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from functions.gateway.messages import check_conversation
from functions.gateway.providers import local_answers as answers
from functions.gateway.providers import local_arithmetic as arithmetic
from functions.gateway.providers import local_followup as followup
from functions.gateway.providers import local_match
from functions.gateway.providers import local_rules as rules
from functions.gateway.providers.base import ProviderCall, estimated_count
from functions.gateway.providers.local_schema import minimal_instance
from functions.gateway.streaming import events_of
from shared.errors import BadRequest

MARK = "[local rule-based model]"
REMINDER_OPEN, REMINDER_CLOSE = "<system-reminder>", "</system-reminder>"
NO_TOOL_ANSWER = (
    f"{MARK} I am the offline rule-based model of Agent Orchestrator. I can route a request to "
    "tools (calculator, search, data processing) and report their results, but I cannot "
    "answer open questions myself. Set ANTHROPIC_API_KEY or AWS credentials for a real model."
)


class LocalProvider:
    name = "local"

    def configured(self) -> bool:
        return True

    # The rules run inline on the event loop: what they examine is bounded to a few KB, so
    # an answer costs well under a millisecond and a thread hop would cost more.
    async def complete(self, call: ProviderCall) -> bytes:
        return json.dumps(self.answer(call.body, call.model, timeout_s=call.timeout_s)).encode()

    async def stream(self, call: ProviderCall) -> AsyncIterator[bytes]:
        return events_of(self.answer(call.body, call.model, timeout_s=call.timeout_s))

    async def count_tokens(self, call: ProviderCall) -> dict[str, Any]:
        return estimated_count(call.body)

    async def close(self) -> None:
        pass

    def answer(
        self,
        body: dict[str, Any],
        model: str,
        *,
        timeout_s: float | None = None,
        clock: rules.Clock = time.monotonic,
    ) -> dict[str, Any]:
        """The answer to ``body``. Anything the rules cannot read, and a request still being
        read when ``timeout_s`` has passed, is a ``BadRequest``: the same input would fail the
        same way again, and a 400 is neither retried nor counted against the circuit breaker
        that every route ending in the local model shares."""
        try:
            return self._answer(body, model, _deadline(timeout_s, clock))
        except (
            TypeError,
            ValueError,
            AttributeError,
            KeyError,
            IndexError,
            RecursionError,
            csv.Error,
        ) as exc:
            # The request passed validation but holds something the rules cannot read
            # (e.g. a schema's enum that is no list): the caller's to fix, not a crash.
            raise BadRequest(f"the local model cannot read this request: {exc}") from exc

    def _answer(self, body: dict[str, Any], model: str, check: rules.Check) -> dict[str, Any]:
        check_conversation(body["messages"])
        messages = _conversation(body["messages"])
        choice = ToolChoice.of(body)
        text = rules.last_user_text(messages)
        results = rules.tool_results(messages)
        content: list[dict[str, Any]] = []
        if results:
            content.append(
                {"type": "text", "text": f"{MARK} " + answers.summarise_results(results)}
            )
        if not results or choice.forced:
            earlier = followup.previous_answer(messages)
            planned = self._plan(_callable_tools(body), choice, text, check, earlier)
            content += [b for b in planned if b["type"] == "tool_use"] if results else planned
        content = _structured(body, content)
        stop_reason = "tool_use" if any(b["type"] == "tool_use" for b in content) else "end_turn"
        content, stop_reason = _fit_max_tokens(content, stop_reason, body["max_tokens"])
        return {
            "id": "msg_local_" + _digest(body)[:24],
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": content,
            "stop_reason": stop_reason,
            "stop_sequence": None,
            "usage": {
                "input_tokens": _tokens(json.dumps(body["messages"])),
                "output_tokens": sum(_tokens(json.dumps(b)) for b in content),
            },
        }

    def _plan(
        self,
        tools: list[dict[str, Any]],
        choice: ToolChoice,
        text: str,
        check: rules.Check,
        earlier: str = "",
    ) -> list[dict[str, Any]]:
        """The tool calls (or the text) that answer ``text``; ``earlier``: the conversation's
        previous answer, which a follow-up ("now add 8 to that") refers to."""
        offered = choice.offered(tools)
        text = _without_reminders(text)
        question, _ = rules.split_task(text)  # "Task: " is scaffolding, not words to search
        question = followup.resolve(question, earlier)
        window = _tail(question, rules.TEXT_WINDOW)
        data = _data_window(text, offered)
        named = rules.named_tool(offered, window, check)  # "use wordcount on: ..."
        runners = [t for t in offered if local_match.task_runner(t)]
        others = [t for t in offered if t not in runners]  # a runner passes for no other kind
        matched = local_match.matched_call(others, window, check) if named is None else None
        if named is not None:
            calls = [self._filled(named[0], named[1], check)]
        elif matched is not None:  # a tool no rule knows whose words the request shares
            calls = [matched]
        else:
            calls = rules.plan_tool_calls(window, others, data, check) if others else []
        if not calls and runners:  # no tool fits, but the orchestrator can run the task
            delegated = local_match.delegated_call(runners[0], window)
            calls = [delegated] if delegated is not None else []
        if not calls and choice.forced:
            calls = [self._filled(offered[0], window, check)]
        if choice.one_call:
            calls = calls[:1]
        if not calls:
            return [{"type": "text", "text": _no_tool_text(window, bool(offered), check)}]
        blocks: list[dict[str, Any]] = [
            {"type": "text", "text": f"{MARK} I will use " + ", ".join(c.name for c in calls) + "."}
        ]
        for call in calls:
            tool_id = "toolu_local_" + _digest({"n": call.name, "i": call.arguments})[:20]
            blocks.append(
                {"type": "tool_use", "id": tool_id, "name": call.name, "input": call.arguments}
            )
        return blocks

    @staticmethod
    def _filled(tool: dict[str, Any], text: str, check: rules.Check) -> rules.ToolCall:
        """``tool``'s call from ``text``: by the rules when they can fill it, else the simplest
        arguments its schema accepts, with ``text`` for its strings."""
        found = rules.forced_call(tool, text, check)
        return found or rules.ToolCall(str(tool["name"]), _guess_arguments(tool, text))


@dataclass(frozen=True)
class ToolChoice:
    """The request's ``tool_choice``: ``auto`` (also when absent or unknown), ``any``,
    ``tool`` (with ``name``) or ``none``."""

    kind: str
    name: str | None = None
    one_call: bool = False
    """``disable_parallel_tool_use``: at most one tool_use in the answer."""

    @classmethod
    def of(cls, body: dict[str, Any]) -> ToolChoice:
        choice = body.get("tool_choice")
        if not isinstance(choice, dict):
            return cls("auto")
        kind = choice.get("type")
        name = choice.get("name")
        return cls(
            kind=kind if kind in ("any", "tool", "none") else "auto",
            name=name if isinstance(name, str) else None,
            one_call=bool(choice.get("disable_parallel_tool_use")),
        )

    @property
    def forced(self) -> bool:
        """The answer must hold a tool_use."""
        return self.kind in ("any", "tool")

    def offered(self, tools: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The tools the answer may call; ``BadRequest`` when a forced call cannot be made."""
        if self.kind == "none":
            return []
        if self.kind == "tool":
            tools = [t for t in tools if t["name"] == self.name]
        if self.forced and not tools:
            wanted = "any tool" if self.kind == "any" else f"tool {self.name!r}"
            raise BadRequest(
                f"tool_choice asks for {wanted}, but tools holds no such tool with an "
                "input_schema; server tools (web search, bash, ...) run only at Anthropic, "
                "and the local model cannot call them"
            )
        return tools


def _conversation(messages: list[Any]) -> list[dict[str, Any]]:
    """The user and assistant turns. A ``system`` turn in the middle (Anthropic's
    mid-conversation system messages) is context for a real model; the rules skip it."""
    turns = [m for m in messages if isinstance(m, dict) and m.get("role") in ("user", "assistant")]
    if not turns:
        raise BadRequest("messages: the local model needs at least one user message")
    return turns


def _callable_tools(body: dict[str, Any]) -> list[dict[str, Any]]:
    """Client tools the rules can plan with. Server tools (``web_search_20250305``,
    ``bash_20250124``, ...) and tools without a readable schema are left out, not refused."""
    return [
        tool
        for tool in body.get("tools") or []
        if isinstance(tool, dict)
        and tool.get("type") in (None, "custom")
        and isinstance(tool.get("name"), str)
        and isinstance(tool.get("input_schema"), dict)
        and isinstance(tool["input_schema"].get("properties", {}), dict)
    ]


def _deadline(timeout_s: float | None, clock: rules.Clock) -> rules.Check:
    if timeout_s is None:
        return rules.no_deadline
    ends = clock() + timeout_s

    def check() -> None:
        if clock() > ends:
            raise BadRequest(
                f"the local model could not read this request within {timeout_s:g} s; "
                "send a shorter request"
            )

    return check


def _without_reminders(text: str) -> str:
    """``text`` without the ``<system-reminder>...</system-reminder>`` context that Claude Code
    puts into user turns around what the user typed. Linear: one ``find`` per tag."""
    parts: list[str] = []
    start = 0
    while (opened := text.find(REMINDER_OPEN, start)) >= 0:
        closed = text.find(REMINDER_CLOSE, opened)
        if closed < 0:
            break
        parts.append(text[start:opened])
        start = closed + len(REMINDER_CLOSE)
    parts.append(text[start:])
    return "\n".join(part.strip() for part in parts if part.strip())


def _tail(text: str, size: int) -> str:
    """The last ``size`` characters of ``text``, from a word boundary when one is near."""
    if len(text) <= size:
        return text
    tail = text[-size:]
    cut = next((i for i, char in enumerate(tail[:64]) if char.isspace()), -1)
    return tail[cut + 1 :]


def _data_window(text: str, tools: list[dict[str, Any]]) -> str | None:
    """Where attached rows are looked for: the whole turn when it is at most ``DATA_WINDOW``
    characters. Longer data is refused rather than read in part (its header would be lost)."""
    if len(text) <= rules.DATA_WINDOW:
        return text
    if any(rules.tool_kind(t) == "data" for t in tools) and rules.extract_data(
        text[-rules.DATA_WINDOW :]
    ):
        raise BadRequest(
            f"the last message is {len(text)} characters; the local model reads attached "
            f"data only in messages of at most {rules.DATA_WINDOW} characters"
        )
    return None


def _guess_arguments(tool: dict[str, Any], text: str) -> dict[str, Any]:
    guessed = minimal_instance(tool["input_schema"], text)
    return guessed if isinstance(guessed, dict) else {}


def _structured(body: dict[str, Any], content: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``content`` as the JSON that ``output_config.format`` asks for, when it asks (Anthropic's
    structured output): the schema's simplest instance, its strings carrying the answer."""
    config = body.get("output_config")
    spec = config.get("format") if isinstance(config, dict) else None
    if not isinstance(spec, dict) or spec.get("type") != "json_schema":
        return content
    if any(block["type"] == "tool_use" for block in content):
        return content  # a tool call comes first; the JSON answer after its result
    text = " ".join(block.get("text", "") for block in content)
    answer = minimal_instance(spec.get("schema"), text)
    return [{"type": "text", "text": json.dumps(answer, ensure_ascii=False)}]


def _no_tool_text(text: str, had_tools: bool, check: rules.Check) -> str:
    expression = rules.extract_expression(text, check)
    value = arithmetic.evaluate(expression) if expression else None
    if expression and value is not None:  # no calculator to call, but plain arithmetic
        return f"{MARK} {' '.join(expression.split())} = {arithmetic.render(value)}"
    if had_tools:
        return (
            f"{MARK} None of the available tools fits this request, and I cannot answer it "
            f"without one: {text[:200]!r}"
        )
    return NO_TOOL_ANSWER


def _fit_max_tokens(
    content: list[dict[str, Any]], stop_reason: str, max_tokens: int
) -> tuple[list[dict[str, Any]], str]:
    if stop_reason == "tool_use" or len(content) != 1:
        return content, stop_reason
    text = content[0]["text"]
    limit = max_tokens * 4  # the same ~4 characters a token the usage figures assume
    if len(text) <= limit:
        return content, stop_reason
    return [{"type": "text", "text": text[:limit]}], "max_tokens"


def _tokens(text: str) -> int:
    return max(1, len(text) // 4)


def _digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()
