"""Plain arithmetic for the local model when no tool fits (``claude -p "What is 17 * 23?"``
offline, where Claude Code offers no calculator): the value, or None.

Bounded before and while it works, like the calculator agent: at most ``MAX_LENGTH``
characters, a syntax tree of numbers, ``+ - * / // % **`` and parentheses only (never
``eval``), exponents of at most ``MAX_EXPONENT``, and finite results.
"""

from __future__ import annotations

import ast
import math
import operator
from collections.abc import Callable

MAX_LENGTH = 200
MAX_EXPONENT = 64
_BINARY: dict[type[ast.operator], Callable[[float, float], float]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
}


def evaluate(expression: str) -> int | float | None:
    """The value of ``expression``, or None when it is not plain, bounded arithmetic."""
    if len(expression) > MAX_LENGTH:
        return None
    try:
        value = _value(ast.parse(expression.replace("^", "**"), mode="eval").body)
    except (SyntaxError, ValueError, ZeroDivisionError, OverflowError, RecursionError):
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _value(node: ast.expr) -> int | float:
    if isinstance(node, ast.Constant) and isinstance(node.value, int | float):
        if isinstance(node.value, bool):  # ``True + 1`` is no arithmetic anyone asked for
            raise ValueError("not a number")
        return node.value
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.UAdd | ast.USub):
        operand = _value(node.operand)
        return -operand if isinstance(node.op, ast.USub) else operand
    if isinstance(node, ast.BinOp):
        left, right = _value(node.left), _value(node.right)
        if isinstance(node.op, ast.Pow):
            if abs(right) > MAX_EXPONENT or abs(left) > 10**6:
                raise ValueError("exponent out of bounds")
            return float(left) ** right if right < 0 else left**right
        apply = _BINARY.get(type(node.op))
        if apply is not None:
            return apply(left, right)
    raise ValueError("not plain arithmetic")


def render(value: int | float) -> str:
    """``391``, ``0.5``, ``3.3333333333``: whole numbers without a fraction."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return f"{value:.10g}" if isinstance(value, float) else str(value)
