"""Parse an expression and admit only a whitelist of syntax-tree nodes, before anything runs.

The tree is checked as a whole first, so an escape attempt such as ``().__class__`` is refused
without evaluating any part of it, and the refusal says what is not allowed.
"""

from __future__ import annotations

import ast
import math
from dataclasses import dataclass

from functions.agents.calculator.arithmetic import SYMBOLS
from functions.agents.calculator.library import CONSTANTS, FUNCTIONS
from functions.agents.calculator.limits import CalculationError, EvaluationLimits

_ALLOWED: tuple[type[ast.AST], ...] = (
    ast.Expression,
    ast.BinOp,
    ast.UnaryOp,
    ast.Call,
    ast.Constant,
    ast.Name,
    ast.Load,
    ast.UAdd,
    ast.USub,
    *SYMBOLS,
)

# What people (or attackers) try, and the refusal that explains it.
_REFUSALS: dict[type[ast.AST], str] = {
    ast.Attribute: "attribute access ('.') is not allowed",
    ast.Subscript: "indexing ('[ ]') is not allowed",
    ast.Lambda: "lambda is not allowed",
    ast.ListComp: "comprehensions are not allowed",
    ast.SetComp: "comprehensions are not allowed",
    ast.DictComp: "comprehensions are not allowed",
    ast.GeneratorExp: "comprehensions are not allowed",
    ast.JoinedStr: "strings are not allowed: the calculator works on numbers only",
    ast.NamedExpr: "assignment (':=') is not allowed",
    ast.Starred: "'*' unpacking of arguments is not allowed",
    ast.Compare: "comparisons are not supported: the result must be a number",
    ast.BoolOp: "'and'/'or' are not supported: the result must be a number",
    ast.IfExp: "'if'/'else' is not supported",
    ast.Tuple: "commas only separate function arguments (for thousands write 1000, not 1,000)",
    ast.List: "lists are not allowed",
    ast.Set: "sets are not allowed",
    ast.Dict: "dicts are not allowed",
    ast.Not: "'not' is not supported",
    ast.Invert: "'~' is not supported",
    ast.BitXor: "bitwise operators are not supported (for powers write 2**10 or 2^10)",
    ast.BitAnd: "bitwise operators are not supported",
    ast.BitOr: "bitwise operators are not supported",
    ast.LShift: "bit shifts are not supported",
    ast.RShift: "bit shifts are not supported",
    ast.MatMult: "'@' is not supported",
    ast.Await: "'await' is not allowed",
    ast.Yield: "'yield' is not allowed",
    ast.YieldFrom: "'yield' is not allowed",
}


@dataclass(frozen=True)
class Parsed:
    tree: ast.Expression
    nodes: int
    """Nodes in the tree, for the answer's meta."""


def parse(source: str, limits: EvaluationLimits) -> Parsed:
    """The checked syntax tree of ``source`` (Python expression syntax)."""
    try:
        tree = ast.parse(source, mode="eval")
    except SyntaxError as exc:  # also "too many nested parentheses"
        raise CalculationError(f"not a valid expression: {exc.msg}") from exc
    except (RecursionError, MemoryError) as exc:
        raise CalculationError("the expression is nested too deeply to parse") from exc
    except ValueError as exc:  # e.g. a NUL character, on some Python versions
        raise CalculationError(f"not a valid expression: {exc}") from exc
    return Parsed(tree=tree, nodes=check_tree(tree, limits))


def check_tree(tree: ast.Expression, limits: EvaluationLimits) -> int:
    """Check every node against the whitelist, size and nesting bounds; return the node count.

    The walk uses an explicit stack, not recursion, so a deep tree cannot exhaust the stack here.
    """
    count = 0
    # Children are pushed in reverse so that problems are reported in reading order.
    stack: list[tuple[ast.AST, int, bool]] = [(tree, 0, False)]
    while stack:
        node, depth, is_callee = stack.pop()
        count += isinstance(node, ast.expr)  # operands and operations, not operator tokens
        if count > limits.max_nodes:
            raise CalculationError(
                f"the expression is too long (more than {limits.max_nodes} parts)"
            )
        if depth > limits.max_depth:
            raise CalculationError(
                f"the expression is nested too deeply (more than {limits.max_depth} levels)"
            )
        check_node(node, is_callee)
        for child in reversed(list(ast.iter_child_nodes(node))):
            # The evaluator loops down a BinOp's left side, so only other children nest deeper.
            left_spine = isinstance(node, ast.BinOp) and child is node.left
            stack.append((child, depth if left_spine else depth + 1, _is_callee(node, child)))
    return count


def _is_callee(parent: ast.AST, child: ast.AST) -> bool:
    return isinstance(parent, ast.Call) and child is parent.func


def check_node(node: ast.AST, is_callee: bool = False) -> None:
    if not isinstance(node, _ALLOWED):
        raise CalculationError(_REFUSALS.get(type(node)) or _unsupported(node))
    if isinstance(node, ast.Constant):
        _check_constant(node)
    elif isinstance(node, ast.Name):
        _check_name(node.id, is_callee)
    elif isinstance(node, ast.Call):
        _check_call(node)


def _unsupported(node: ast.AST) -> str:
    return (
        f"{type(node).__name__} is not supported: use numbers, + - * / // % ** ( ), "
        f"the constants {', '.join(CONSTANTS)} and the functions {', '.join(FUNCTIONS)}"
    )


def _check_constant(node: ast.Constant) -> None:
    value = node.value
    if isinstance(value, bool) or value is None or value is ...:
        raise CalculationError(f"{value!r} is not a number")
    if isinstance(value, str | bytes):
        raise CalculationError("strings are not allowed: the calculator works on numbers only")
    if isinstance(value, complex):
        raise CalculationError("complex numbers are not supported")
    if not isinstance(value, int | float):
        raise CalculationError(f"{type(value).__name__} values are not supported")
    if isinstance(value, float) and not math.isfinite(value):  # 1e309 parses as inf
        raise CalculationError(
            "number literal too large: a floating-point number is at most about 1.8e308 "
            "(write an integer such as 10**309 for an exact large number)"
        )


def _check_name(name: str, is_callee: bool) -> None:
    if is_callee:
        if name in FUNCTIONS:
            return
        if name in CONSTANTS:
            raise CalculationError(f"{name} is a constant, not a function")
    else:
        if name in CONSTANTS:
            return
        if name in FUNCTIONS:
            raise CalculationError(f"{name} is a function: call it like {name}(2)")
    hint = " (write * to multiply)" if name in ("x", "X") else ""
    raise CalculationError(
        f"unknown name {name!r}{hint}; known constants: {', '.join(CONSTANTS)}; "
        f"functions: {', '.join(FUNCTIONS)}"
    )


def _check_call(node: ast.Call) -> None:
    if not isinstance(node.func, ast.Name):
        raise CalculationError("only the listed functions can be called, by name")
    if node.keywords:
        raise CalculationError("keyword arguments are not supported")
    if any(isinstance(arg, ast.Starred) for arg in node.args):
        raise CalculationError(_REFUSALS[ast.Starred])
    function = FUNCTIONS.get(node.func.id)
    if function is None:
        return  # the name check on node.func explains what is unknown
    given = len(node.args)
    too_many = function.max_args is not None and given > function.max_args
    if given < function.min_args or too_many:
        raise CalculationError(f"{function.name} takes {function.arity()}, got {given}")
