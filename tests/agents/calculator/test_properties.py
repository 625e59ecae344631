"""Property: any well-formed expression the strategy builds evaluates to what a walk over the
strategy's own tree gives (computed here with Python operators on numbers, never eval)."""

from __future__ import annotations

import math
import operator
from collections.abc import Callable
from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from functions.agents.calculator.evaluator import calculate
from functions.agents.calculator.limits import CalculationError

Number = int | float


@dataclass(frozen=True)
class Leaf:
    value: Number

    def text(self) -> str:
        return f"({self.value!r})" if self.value < 0 else repr(self.value)


@dataclass(frozen=True)
class Node:
    symbol: str
    left: Leaf | Node
    right: Leaf | Node

    def text(self) -> str:
        # Fully parenthesized, so the tree the text parses to is exactly this one.
        return f"({self.left.text()} {self.symbol} {self.right.text()})"


def _true_division(a: Number, b: Number) -> Number:
    # The calculator's documented rule: ints that divide exactly give an int.
    if isinstance(a, int) and isinstance(b, int) and a % b == 0:
        return a // b
    return a / b


OPERATIONS: dict[str, Callable[[Number, Number], Number]] = {
    "+": operator.add,
    "-": operator.sub,
    "*": operator.mul,
    "/": _true_division,
}


def reference(tree: Leaf | Node) -> Number:
    if isinstance(tree, Leaf):
        return tree.value
    value = OPERATIONS[tree.symbol](reference(tree.left), reference(tree.right))
    if not math.isfinite(value):  # the calculator refuses an overflow at the step it happens
        raise OverflowError(value)
    return value


numbers = st.one_of(
    st.integers(min_value=-1000, max_value=1000),
    st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False),
)
trees = st.recursive(
    numbers.map(Leaf),
    lambda children: st.builds(Node, st.sampled_from(sorted(OPERATIONS)), children, children),
    max_leaves=16,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(trees)
def test_agrees_with_a_walk_over_the_same_tree(tree: Leaf | Node) -> None:
    try:
        expected = reference(tree)
    except ZeroDivisionError:
        with pytest.raises(CalculationError, match="division by zero"):
            calculate(tree.text())
        return
    except OverflowError:  # e.g. 1 / 5e-324: refused, never sent as inf
        with pytest.raises(CalculationError, match="too large"):
            calculate(tree.text())
        return
    value = calculate(tree.text()).value
    if isinstance(expected, int):
        assert value == expected and isinstance(value, int)
    else:
        assert math.isclose(value, expected, rel_tol=1e-14, abs_tol=1e-300)


@settings(max_examples=150, deadline=None)
@given(st.integers(min_value=-(10**6), max_value=10**6), st.integers(0, 50))
def test_integer_powers_are_exact(base: int, exponent: int) -> None:
    assert calculate(f"({base}) ^ {exponent}").value == base**exponent


@settings(max_examples=150, deadline=None)
@given(
    st.floats(min_value=1.0, max_value=9.99),
    st.integers(min_value=-400, max_value=400),
    st.sampled_from(["{}", "+{}", "-{}", "abs({})", "max({}, 1)", "min({})", "{} * 10"]),
)
def test_every_value_is_finite_or_refused(mantissa: float, exponent: int, form: str) -> None:
    expression = form.format(f"{mantissa:.6f}e{exponent}")
    try:
        value = calculate(expression).value
    except CalculationError as refused:
        assert "too large" in refused.message or "not a finite number" in refused.message
        return
    assert math.isfinite(value)
