"""The functions and constants an expression may name; nothing else is reachable.

Each function takes its already-evaluated arguments and the limits, and raises
``CalculationError`` with the reason for a domain error (``sqrt(-1)``, ``log(0)``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from functions.agents.calculator.arithmetic import Percent, Value, guarded
from functions.agents.calculator.limits import (
    CalculationError,
    EvaluationLimits,
    Number,
    describe_number,
)
from functions.agents.calculator.notation import PERCENT_FUNCTION

CONSTANTS: dict[str, float] = {"pi": math.pi, "e": math.e}

Compute = Callable[[list[Number], EvaluationLimits], Value]


@dataclass(frozen=True)
class Function:
    name: str
    min_args: int
    max_args: int | None
    """None: any number of arguments (``min``, ``max``)."""
    compute: Compute

    def arity(self) -> str:
        if self.max_args is None:
            return f"at least {self.min_args} argument{'s' if self.min_args > 1 else ''}"
        if self.min_args == self.max_args:
            return f"{self.min_args} argument{'s' if self.min_args > 1 else ''}"
        return f"{self.min_args} to {self.max_args} arguments"


def _sqrt(args: list[Number], limits: EvaluationLimits) -> Number:
    (x,) = args
    if x < 0:
        raise CalculationError(
            f"sqrt is not defined for negative numbers (got {describe_number(x)})"
        )
    if isinstance(x, int):
        root = math.isqrt(x)
        if root * root == x:
            return root  # keep perfect squares exact: sqrt(16) is 4, sqrt(10**400) is 10**200
    return guarded(lambda: math.sqrt(x), limits)


def _log(args: list[Number], limits: EvaluationLimits) -> Number:
    if args[0] <= 0:
        raise CalculationError(
            f"log is defined only for positive numbers (got {describe_number(args[0])})"
        )
    if len(args) == 2 and (args[1] <= 0 or args[1] == 1):
        raise CalculationError(
            f"the base of a log must be positive and not 1 (got {describe_number(args[1])})"
        )
    return guarded(lambda: math.log(*args), limits)


def _positive_only(name: str, compute: Callable[[float], float]) -> Compute:
    def run(args: list[Number], limits: EvaluationLimits) -> Number:
        if args[0] <= 0:
            raise CalculationError(
                f"{name} is defined only for positive numbers (got {describe_number(args[0])})"
            )
        return guarded(lambda: compute(args[0]), limits)

    return run


def _unary(compute: Callable[[float], float | int]) -> Compute:
    def run(args: list[Number], limits: EvaluationLimits) -> Number:
        try:
            return guarded(lambda: compute(args[0]), limits)
        except ValueError as exc:  # math's "math domain error", e.g. tan of an infinity
            raise CalculationError(f"math domain error for {args[0]}") from exc

    return run


def _round(args: list[Number], limits: EvaluationLimits) -> Number:
    if len(args) == 1:
        return guarded(lambda: round(args[0]), limits)
    x, digits = args
    if not isinstance(digits, int) or abs(digits) > limits.max_round_digits:
        raise CalculationError(
            f"round's digits must be a whole number from -{limits.max_round_digits} "
            f"to {limits.max_round_digits} (got {describe_number(digits)})"
        )
    return guarded(lambda: round(x, digits), limits)


def _factorial(args: list[Number], limits: EvaluationLimits) -> Number:
    (n,) = args
    if not isinstance(n, int) or n < 0:
        raise CalculationError(
            f"factorial needs a whole number 0 or more (got {describe_number(n)})"
        )
    # log2(n!) = lgamma(n + 1) / ln 2: refuse before computing a number that could not be sent.
    if n > 100_000 or math.lgamma(n + 1) / math.log(2) > limits.max_int_bits:
        raise CalculationError(
            f"factorial({describe_number(n)}) would have more than {limits.max_int_bits} bits"
        )
    return math.factorial(n)


def _percent(args: list[Number], limits: EvaluationLimits) -> Value:
    return Percent(args[0])


def _min(args: list[Number], limits: EvaluationLimits) -> Number:
    return min(args)


def _max(args: list[Number], limits: EvaluationLimits) -> Number:
    return max(args)


def _abs(args: list[Number], limits: EvaluationLimits) -> Number:
    return abs(args[0])


FUNCTIONS: dict[str, Function] = {
    f.name: f
    for f in (
        Function("sqrt", 1, 1, _sqrt),
        Function("log", 1, 2, _log),
        Function("log10", 1, 1, _positive_only("log10", math.log10)),
        Function("log2", 1, 1, _positive_only("log2", math.log2)),
        Function("exp", 1, 1, _unary(math.exp)),
        Function("sin", 1, 1, _unary(math.sin)),
        Function("cos", 1, 1, _unary(math.cos)),
        Function("tan", 1, 1, _unary(math.tan)),
        Function("abs", 1, 1, _abs),
        Function("round", 1, 2, _round),
        Function("min", 1, None, _min),
        Function("max", 1, None, _max),
        Function("floor", 1, 1, _unary(math.floor)),  # an int for ints and floats alike
        Function("ceil", 1, 1, _unary(math.ceil)),
        Function("factorial", 1, 1, _factorial),
        Function(PERCENT_FUNCTION, 1, 1, _percent),  # what notation writes for "50%"
    )
}
