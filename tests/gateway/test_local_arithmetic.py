"""The local model's own arithmetic, for a request no tool fits: bounded, never ``eval``."""

from __future__ import annotations

import pytest

from functions.gateway.providers.local import MARK, NO_TOOL_ANSWER, LocalProvider
from functions.gateway.providers.local_arithmetic import evaluate, render
from tests.gateway.support import CALCULATOR_TOOL, user

UNFITTING_TOOL = {
    "name": "Workflow",
    "description": "Run a workflow script; budgets use math.floor.",  # 'math', yet no calculator
    "input_schema": {"type": "object", "properties": {"script": {"type": "string"}}},
}


def answer_text(text: str, **body: object) -> str:
    answer = LocalProvider().answer({"max_tokens": 256, "messages": user(text), **body}, "local")
    return str(answer["content"][0]["text"])


@pytest.mark.parametrize(
    ("question", "expected"),
    [
        ("What is 17 * 23?", "17 * 23 = 391"),
        ("what is 17 times 23", "17 * 23 = 391"),
        ("compute (3 + 4) * 2", "(3 + 4) * 2 = 14"),
        ("7 / 2", "7 / 2 = 3.5"),
        ("what is 2^10?", "2^10 = 1024"),
    ],
)
def test_plain_arithmetic_is_answered_when_no_tool_fits(question: str, expected: str) -> None:
    assert answer_text(question, tools=[UNFITTING_TOOL]) == f"{MARK} {expected}"
    assert answer_text(question) == f"{MARK} {expected}"


def test_a_calculator_tool_is_still_preferred() -> None:
    answer = LocalProvider().answer(
        {"max_tokens": 256, "messages": user("What is 17 * 23?"), "tools": [CALCULATOR_TOOL]},
        "local",
    )

    assert [b["type"] for b in answer["content"]] == ["text", "tool_use"]


@pytest.mark.parametrize(
    "expression",
    ["2 ** 1000000", "1 / 0", "5 % 0", "(10 ** 7) ** 64", "9" * 201 + " + 1", "__import__('os')"],
)
def test_what_is_unbounded_or_not_arithmetic_is_no_answer(expression: str) -> None:
    assert evaluate(expression) is None


def test_without_a_value_the_answer_says_what_the_local_model_is() -> None:
    assert answer_text("what is 1/0") == NO_TOOL_ANSWER


def test_values_are_rendered_as_people_write_them() -> None:
    assert [render(v) for v in (391, 391.0, 0.5, 10 / 3)] == ["391", "391", "0.5", "3.333333333"]
