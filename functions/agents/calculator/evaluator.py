"""Evaluate an expression by walking its checked syntax tree; nothing is ever ``eval``-ed.

    text --notation.to_python--> Python syntax --syntax.parse--> checked tree --Evaluator--> number

Only the node types admitted by ``syntax.check_tree`` are interpreted, each through a bounded
operation in ``arithmetic`` or a function in ``library``.
"""

from __future__ import annotations

import ast
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

from functions.agents.calculator import notation, syntax
from functions.agents.calculator.arithmetic import (
    Value,
    apply_binary,
    as_number,
    check_result,
    negate,
)
from functions.agents.calculator.library import CONSTANTS, FUNCTIONS
from functions.agents.calculator.limits import (
    DEFAULT_LIMITS,
    CalculationError,
    EvaluationLimits,
    Number,
)

Clock = Callable[[], float]


@dataclass(frozen=True)
class Calculation:
    value: Number
    """The result: an exact int, or a float rounded to 15 significant digits."""
    interpreted_as: str
    """The expression in the Python syntax that was evaluated (``2^10`` -> ``2 ** 10``)."""
    nodes: int
    elapsed_ms: float


def calculate(
    expression: str, limits: EvaluationLimits = DEFAULT_LIMITS, clock: Clock = time.perf_counter
) -> Calculation:
    """Evaluate ``expression``; ``CalculationError`` (a 400) says why when it cannot be."""
    started = clock()
    if len(expression) > limits.max_length:
        raise CalculationError(
            f"the expression is {len(expression)} characters; the limit is {limits.max_length}"
        )
    source = notation.to_python(expression.strip())
    parsed = syntax.parse(source, limits)
    value = Evaluator(limits, clock, started).evaluate(parsed.tree)
    # Checked once more as a whole: the answer is JSON, which has no Infinity or NaN, and a
    # function such as abs or max passes its argument through without an arithmetic check.
    value = check_result(tidy(value), limits)
    elapsed_ms = (clock() - started) * 1000
    return Calculation(value, source, parsed.nodes, round(elapsed_ms, 3))


def tidy(value: Number) -> Number:
    """Floats to 15 significant digits, which hides binary noise: 0.1 + 0.2 gives 0.3."""
    if isinstance(value, float):
        rounded = float(f"{value:.15g}") + 0.0  # + 0.0 turns -0.0 into 0.0
        # Rounding the largest floats up to 15 digits would overflow (1.7976931348623157e308).
        return rounded if math.isfinite(rounded) else value
    return value


class Evaluator:
    """Interprets a tree that ``syntax.check_tree`` admitted, within a wall-clock budget."""

    def __init__(self, limits: EvaluationLimits, clock: Clock, started: float) -> None:
        self._limits = limits
        self._clock = clock
        self._deadline = started + limits.time_limit_s

    def evaluate(self, tree: ast.Expression) -> Number:
        return as_number(self._eval(tree.body), self._limits)

    def _eval(self, node: ast.expr) -> Value:
        if self._clock() > self._deadline:
            raise CalculationError(
                f"the expression took longer than {self._limits.time_limit_s:g} s to evaluate"
            )
        if isinstance(node, ast.Constant) and isinstance(node.value, int | float):
            return node.value
        if isinstance(node, ast.Name) and node.id in CONSTANTS:
            return CONSTANTS[node.id]
        if isinstance(node, ast.BinOp):
            return self._binary_chain(node)
        if isinstance(node, ast.UnaryOp):
            operand = self._eval(node.operand)
            return negate(operand, self._limits) if isinstance(node.op, ast.USub) else operand
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            return self._call(node.func.id, node.args)
        # Unreachable after check_tree; kept so a gap in the whitelist fails closed.
        raise CalculationError(f"{type(node).__name__} is not supported")

    def _binary_chain(self, node: ast.BinOp) -> Value:
        # Walk the left spine in a loop: a long sum like 1+2+...+300 then needs no deep recursion.
        chain: list[ast.BinOp] = []
        current: ast.expr = node
        while isinstance(current, ast.BinOp):
            chain.append(current)
            current = current.left
        value = self._eval(current)
        for step in reversed(chain):
            value = apply_binary(step.op, value, self._eval(step.right), self._limits)
        return value

    def _call(self, name: str, arg_nodes: list[ast.expr]) -> Value:
        function = FUNCTIONS.get(name)
        if function is None:  # unreachable after check_tree
            raise CalculationError(f"unknown function {name!r}")
        args = [as_number(self._eval(arg), self._limits) for arg in arg_nodes]
        return function.compute(args, self._limits)
