"""The local rule-based model: deterministic, offline, no key.

It lets the whole system run anywhere. Given tools, it picks the ones whose name and
description fit the request and fills their arguments from it (an arithmetic expression to a
calculator-like tool, a lookup to a search-like tool, attached rows to a data tool); given tool
results, it writes an answer that states them. It cannot reason or write prose beyond that, and
it says so: every answer is marked as coming from the local rule-based model.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from typing import Any

from functions.gateway.providers import local_rules as rules
from functions.gateway.streaming import message_to_events
from shared.errors import BadRequest

MARK = "[local rule-based model]"
NO_TOOL_ANSWER = (
    f"{MARK} I am the offline rule-based model of Agent Orchestrator. I can route a request to "
    "tools (calculator, search, data processing) and report their results, but I cannot "
    "answer open questions myself. Set ANTHROPIC_API_KEY or AWS credentials for a real model."
)


class LocalProvider:
    name = "local"

    def configured(self) -> bool:
        return True

    def complete(self, body: dict[str, Any], model: str, timeout_s: float) -> bytes:
        return json.dumps(self.answer(body, model)).encode()

    def stream(self, body: dict[str, Any], model: str, timeout_s: float) -> Iterator[bytes]:
        return message_to_events(self.answer(body, model))

    def close(self) -> None:
        pass

    def answer(self, body: dict[str, Any], model: str) -> dict[str, Any]:
        try:
            return self._answer(body, model)
        except (TypeError, ValueError, AttributeError, KeyError, RecursionError) as exc:
            # The request passed validation but holds something the rules cannot read
            # (e.g. a schema's enum that is no list): the caller's to fix, not a crash.
            raise BadRequest(f"the local model cannot read this request: {exc}") from exc

    def _answer(self, body: dict[str, Any], model: str) -> dict[str, Any]:
        messages = body["messages"]
        results = rules.tool_results(messages)
        if results:
            content = [{"type": "text", "text": f"{MARK} " + rules.summarise_results(results)}]
        else:
            content = self._plan(body, rules.last_user_text(messages))
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
                "input_tokens": _tokens(json.dumps(messages)),
                "output_tokens": sum(_tokens(json.dumps(b)) for b in content),
            },
        }

    def _plan(self, body: dict[str, Any], text: str) -> list[dict[str, Any]]:
        tools = _usable_tools(body)
        calls = rules.plan_tool_calls(text, tools) if tools else []
        if not calls:
            return [{"type": "text", "text": _no_tool_text(text, bool(tools))}]
        blocks: list[dict[str, Any]] = [
            {"type": "text", "text": f"{MARK} I will use " + ", ".join(c.name for c in calls) + "."}
        ]
        for call in calls:
            tool_id = "toolu_local_" + _digest({"n": call.name, "i": call.arguments})[:20]
            blocks.append(
                {"type": "tool_use", "id": tool_id, "name": call.name, "input": call.arguments}
            )
        return blocks


def _usable_tools(body: dict[str, Any]) -> list[dict[str, Any]]:
    tools = [t for t in body.get("tools") or [] if isinstance(t.get("input_schema"), dict)]
    choice = body.get("tool_choice") or {}
    if choice.get("type") == "none":
        return []
    if choice.get("type") == "tool":
        return [t for t in tools if t.get("name") == choice.get("name")]
    return tools


def _no_tool_text(text: str, had_tools: bool) -> str:
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
