"""The local model resolves a follow-up against the conversation's previous answer: "What is
6 * 7?" then "now add 8 to that" is 50; a request that refers to nothing is left as it is."""

from __future__ import annotations

from typing import Any

import pytest

from functions.gateway.providers.local import MARK, LocalProvider
from functions.gateway.providers.local_followup import previous_answer, resolve
from tests.gateway.support import CALCULATOR_TOOL


def conversation(follow_up: str) -> list[dict[str, Any]]:
    return [
        {"role": "user", "content": "Task: What is 6 * 7?"},
        {"role": "assistant", "content": [{"type": "text", "text": f"{MARK} 6 * 7 = 42."}]},
        {"role": "user", "content": f"Task: {follow_up}"},
    ]


@pytest.mark.parametrize(
    ("follow_up", "meant"),
    [
        ("now add 8 to that", "What is 42 + 8?"),
        ("and the result plus 1.5", "What is 42 + 1.5?"),
        ("subtract 2 from it", "What is 42 - 2?"),
        ("multiply that by 3", "What is 42 * 3?"),
        ("Divide the previous answer by 4", "What is 42 / 4?"),
        ("double it", "What is 42 * 2?"),
        ("what is 5 + 5?", "what is 5 + 5?"),  # refers to nothing: as it is
    ],
)
def test_a_follow_up_becomes_the_arithmetic_it_means(follow_up: str, meant: str) -> None:
    earlier = previous_answer(conversation(follow_up))
    assert earlier.endswith("6 * 7 = 42.")
    assert resolve(follow_up, earlier) == meant


def test_with_no_earlier_answer_nothing_is_resolved() -> None:
    assert resolve("now add 8 to that", "") == "now add 8 to that"
    assert previous_answer([{"role": "user", "content": "add 8 to that"}]) == ""


def test_the_follow_up_calls_the_calculator_with_the_earlier_answer() -> None:
    body = {"max_tokens": 256, "messages": conversation("now add 8 to that")}
    with_tool = LocalProvider().answer({**body, "tools": [CALCULATOR_TOOL]}, "local")
    [call] = [block for block in with_tool["content"] if block["type"] == "tool_use"]
    assert call["name"] == CALCULATOR_TOOL["name"] and call["input"] == {"expression": "42 + 8"}
    alone = LocalProvider().answer(body, "local")  # no tool (Claude Code): its own arithmetic
    assert alone["content"][0]["text"] == f"{MARK} 42 + 8 = 50"
