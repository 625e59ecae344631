"""What the calculator refuses, and the bounds that keep every evaluation small and quick.

Each bound exists so that a hostile or careless expression answers 400 in milliseconds instead
of using the CPU or memory of a shared function instance.
"""

from __future__ import annotations

from dataclasses import dataclass

from shared.errors import BadRequest

Number = int | float


class CalculationError(BadRequest):
    """The expression cannot be evaluated; the message says why and, where it can, what to write."""


@dataclass(frozen=True)
class EvaluationLimits:
    """Bounds on one evaluation."""

    max_length: int = 1000
    """Characters in the expression, checked before anything else."""
    max_nodes: int = 1000
    """Nodes in the parsed syntax tree (operators and operands)."""
    max_depth: int = 100
    """Nesting of the tree. Left-leaning chains such as ``1+2+...+300`` do not count, because
    the evaluator walks them in a loop; parentheses, powers, unary signs and calls do."""
    max_int_bits: int = 10_000
    """Size of any integer, about 3,000 decimal digits; checked before a power or factorial
    is computed, so ``9**9**9`` is refused without being attempted."""
    max_round_digits: int = 400
    """``round(x, n)`` with a huge ``n`` would compute ``10**n``."""
    time_limit_s: float = 0.5
    """Wall-clock budget for the walk over the tree, checked at every node."""


DEFAULT_LIMITS = EvaluationLimits()


def describe_number(value: Number) -> str:
    """A number as text short enough for an error message."""
    if isinstance(value, int) and value.bit_length() > 64:
        # Estimated from the bit length: converting a huge int to text is itself slow.
        return f"a number of about {int(value.bit_length() * 0.30103) + 1} digits"
    return repr(value)
