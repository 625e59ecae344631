"""A run's budget: the default unless the request asks, never above the cap."""

from __future__ import annotations

import pytest

from functions.orchestrator.budgets import Budget, BudgetSettings
from shared.errors import BadRequest

SETTINGS = BudgetSettings(max_steps=8, max_steps_cap=32, timeout_s=60, max_tokens=50_000)


def test_a_request_that_asks_nothing_gets_the_defaults() -> None:
    assert SETTINGS.budget_for() == Budget(max_steps=8, timeout_s=60, max_tokens=50_000)


def test_a_request_may_ask_for_less_or_more_up_to_the_caps() -> None:
    assert SETTINGS.budget_for(2, 300, 1_000_000) == Budget(2, 300, 1_000_000)


@pytest.mark.parametrize(
    ("asked", "problem"),
    [
        ({"max_steps": 33}, "max_steps: 33 is above the limit of 32"),
        ({"timeout_s": 301.0}, "timeout_s: 301.0 is above the limit of 300.0"),
        ({"max_tokens": 1_000_001}, "max_tokens: 1000001 is above the limit of 1000000"),
    ],
)
def test_above_a_cap_is_a_bad_request(asked: dict[str, float], problem: str) -> None:
    with pytest.raises(BadRequest, match=problem):
        SETTINGS.budget_for(**asked)  # type: ignore[arg-type]


def test_a_default_above_its_cap_is_refused() -> None:
    with pytest.raises(ValueError, match=r"max_steps \(40\) is above max_steps_cap"):
        BudgetSettings(max_steps=40)
