"""The operators, each bounded: results stay finite, real and within
``EvaluationLimits.max_int_bits``.

Integers stay exact (``2**100`` is an int); a true division of integers that divides exactly
gives an integer (``6/3`` is 2), otherwise a float (``7/2`` is 3.5).
"""

from __future__ import annotations

import ast
import math
import operator
from collections.abc import Callable
from dataclasses import dataclass

from functions.agents.calculator.limits import (
    CalculationError,
    EvaluationLimits,
    Number,
    describe_number,
)


@dataclass(frozen=True)
class Percent:
    """``amount`` percent. Kept apart from plain numbers so that ``15% of 80`` is computed as
    ``15 * 80 / 100`` (exactly 12) and so that ``100 + 10%`` can be refused as ambiguous."""

    amount: Number


Value = Number | Percent


def check_result(value: object, limits: EvaluationLimits) -> Number:
    """Refuse what JSON or the bounds cannot hold: complex, infinite, NaN or huge results."""
    if isinstance(value, complex):
        raise CalculationError("the result is not a real number (e.g. a root of a negative)")
    if isinstance(value, float) and math.isnan(value):
        raise CalculationError("the result is not a finite number (it is undefined: NaN)")
    if isinstance(value, float) and math.isinf(value):
        raise CalculationError(
            "the result is not a finite number (too large for a floating-point number, "
            "about 1.8e308 at most)"
        )
    if isinstance(value, int) and value.bit_length() > limits.max_int_bits:
        raise CalculationError(
            f"the result would have more than {limits.max_int_bits} bits "
            f"(about {int(limits.max_int_bits * 0.30103)} digits)"
        )
    if not isinstance(value, int | float):
        raise CalculationError(f"unexpected result type {type(value).__name__}")
    return value


def as_number(value: Value, limits: EvaluationLimits) -> Number:
    return divide(value.amount, 100, limits) if isinstance(value, Percent) else value


def divide(left: Number, right: Number, limits: EvaluationLimits) -> Number:
    if right == 0:
        raise CalculationError("division by zero")
    if isinstance(left, int) and isinstance(right, int) and left % right == 0:
        return left // right
    return guarded(lambda: left / right, limits)


def power(base: Number, exponent: Number, limits: EvaluationLimits) -> Number:
    if base == 0 and exponent < 0:
        raise CalculationError("division by zero: 0 cannot be raised to a negative power")
    if isinstance(base, int) and isinstance(exponent, int) and exponent > 0 and abs(base) > 1:
        # Estimate the size first: computing 9**9**9 just to refuse it would take minutes.
        try:
            bits = exponent * math.log2(abs(base))
        except OverflowError:  # the exponent itself is beyond a float: 2 ** 10**3000
            bits = math.inf
        if bits > limits.max_int_bits:
            size = f"about {bits:.3g}" if math.isfinite(bits) else "more than 1e308"
            raise CalculationError(
                f"{describe_number(base)} ** {describe_number(exponent)} would have {size} "
                f"bits; the limit is {limits.max_int_bits} bits"
            )
    return guarded(lambda: base**exponent, limits)


def guarded(compute: Callable[[], object], limits: EvaluationLimits) -> Number:
    """Run one computation, turning Python's arithmetic errors into a 400 with the reason."""
    try:
        value = compute()
    except ZeroDivisionError as exc:
        raise CalculationError("division by zero") from exc
    except OverflowError as exc:
        raise CalculationError(f"the result is too large: {exc}") from exc
    return check_result(value, limits)


_PLAIN: dict[type[ast.operator], Callable[[Number, Number], object]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
}
SYMBOLS: dict[type[ast.operator], str] = {
    ast.Add: "+",
    ast.Sub: "-",
    ast.Mult: "*",
    ast.Div: "/",
    ast.FloorDiv: "//",
    ast.Mod: "%",
    ast.Pow: "**",
}


def apply_binary(op: ast.operator, left: Value, right: Value, limits: EvaluationLimits) -> Value:
    """``left op right`` for the whitelisted operators, with percentages handled first."""
    if isinstance(right, Percent) and isinstance(op, ast.Add | ast.Sub):
        sign = SYMBOLS[type(op)]
        raise CalculationError(
            f"'x {sign} y%' is ambiguous: it could mean x {sign} y/100 or y% of x. "
            f"Write 'x {sign} y% of x' for the change by a percentage, "
            f"or 'x {sign} y/100' for the plain number"
        )
    if isinstance(op, ast.Mult) and (isinstance(left, Percent) or isinstance(right, Percent)):
        return _multiply_percent(left, right, limits)
    a, b = as_number(left, limits), as_number(right, limits)
    if isinstance(op, ast.Div):
        return divide(a, b, limits)
    if isinstance(op, ast.Pow):
        return power(a, b, limits)
    compute = _PLAIN.get(type(op))
    if compute is None:  # the syntax check admits only the operators above
        raise CalculationError(f"operator {type(op).__name__} is not supported")
    return guarded(lambda: compute(a, b), limits)


def _multiply_percent(left: Value, right: Value, limits: EvaluationLimits) -> Value:
    # Multiply the amounts first and divide by 100 once, so integers stay exact.
    (a, a_scale), (b, b_scale) = _scaled(left), _scaled(right)
    product = guarded(lambda: a * b, limits)
    if a_scale == b_scale == 100:
        # 10% of 10% is 1%: still a percentage, so "10% of 10% of 10000" stays exact too.
        return Percent(divide(product, 100, limits))
    return divide(product, a_scale * b_scale, limits)


def _scaled(value: Value) -> tuple[Number, int]:
    return (value.amount, 100) if isinstance(value, Percent) else (value, 1)


def negate(value: Value, limits: EvaluationLimits) -> Value:
    if isinstance(value, Percent):
        return Percent(-value.amount)
    return guarded(lambda: -value, limits)
