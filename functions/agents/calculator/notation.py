"""Calculator notation that people and models type, rewritten as Python expression syntax.

    2^10          ->  2 ** 10            ``^`` is power here, never bitwise xor
    6 × 7 ÷ 2     ->  6 * 7 / 2
    50%           ->  percent(50)        a ``%`` that ends an operand is a percentage
    15% of 80     ->  percent(15) * 80
    200 * 10%     ->  200 * percent(10)
    10 % 3        ->  10 % 3             a ``%`` followed by an operand is the remainder
    50 % -3       ->  400                could be either, so the caller is asked to choose

Only the token stream is rewritten. The result is parsed with ``ast.parse`` and checked node by
node exactly like text the user typed, so nothing this module produces is trusted.
"""

from __future__ import annotations

import io
import keyword
import tokenize
from dataclasses import dataclass

from functions.agents.calculator.limits import CalculationError

_SYMBOLS = str.maketrans({"×": "*", "·": "*", "÷": "/", "−": "-", "^": "**"})
_SKIPPED = {tokenize.NEWLINE, tokenize.NL, tokenize.INDENT, tokenize.DEDENT, tokenize.ENDMARKER}
# A % directly before one of these has nothing to take a remainder by, so it is a percentage.
_AFTER_PERCENT = {")", ",", "*", "/", "//", "**"}
_OPENERS = {"(", "["}
_CLOSERS = {")", "]", ","}
_SIGNS = {"+", "-"}

PERCENT_FUNCTION = "percent"


@dataclass(frozen=True)
class Token:
    kind: int
    text: str
    closes_percent: bool = False
    """The ``)`` that ends a ``percent(...)`` this module wrote; ``of`` may follow it."""


def to_python(expression: str) -> str:
    """The expression in Python syntax; ``CalculationError`` for notation that is ambiguous."""
    tokens = _tokens(expression.translate(_SYMBOLS))
    out: list[Token] = []
    for index, token in enumerate(tokens):
        following = tokens[index + 1] if index + 1 < len(tokens) else None
        _check_juxtaposed(tokens[index - 1] if index else None, token)
        if token.text == "%" and _is_percent_sign(following):
            _wrap_percent(out)
        elif token.kind == tokenize.NAME and token.text == "of":
            if not (out and out[-1].closes_percent):
                raise CalculationError("'of' must follow a percentage, as in '15% of 80'")
            out.append(Token(tokenize.OP, "*"))
        else:
            out.append(token)
    return _render(out)


def _tokens(text: str) -> list[Token]:
    try:
        raw = list(tokenize.generate_tokens(io.StringIO(text).readline))
    except tokenize.TokenError as exc:
        raise CalculationError(
            "the parentheses do not match: check that every '(' has its ')'"
        ) from exc
    except SyntaxError as exc:
        raise CalculationError(f"not a valid expression: {exc.msg}") from exc
    tokens = []
    for tok in raw:
        if tok.type in _SKIPPED or (tok.type == tokenize.ERRORTOKEN and tok.string.isspace()):
            continue
        # "!" is checked by name too: newer Pythons tokenize it as an operator.
        if tok.type in (tokenize.ERRORTOKEN, tokenize.COMMENT) or tok.string == "!":
            raise CalculationError(_unexpected(tok.string[:1]))
        tokens.append(Token(tok.type, tok.string))
    if not tokens:
        raise CalculationError("the expression is empty")
    return tokens


def _unexpected(char: str) -> str:
    if char in "'\"":
        return "text in quotes is not supported: the calculator works on numbers only"
    if char == "!":
        return "'!' is not supported: write factorial(5) for 5!"
    if char == "#":
        return "'#' is not supported: remove it (it would start a comment)"
    return f"unexpected character {char!r}"


def _check_juxtaposed(previous: Token | None, token: Token) -> None:
    """Refuse implicit multiplication (``2(3+4)``, ``2 pi``) with a hint, rather than guessing
    or leaving Python to say "invalid syntax"."""
    if previous is None or not (previous.kind == tokenize.NUMBER or previous.text == ")"):
        return
    is_operand = token.kind == tokenize.NUMBER or (
        token.kind == tokenize.NAME and token.text != "of" and not keyword.iskeyword(token.text)
    )
    if is_operand or token.text == "(":
        raise CalculationError(
            f"an operator is missing between {previous.text!r} and {token.text!r}: "
            "write * to multiply, as in 2*(3+4) or 2*pi"
        )


def _is_percent_sign(following: Token | None) -> bool:
    if following is None or following.text in _AFTER_PERCENT:
        return True
    if following.kind == tokenize.NAME and following.text == "of":
        return True
    if following.text in _SIGNS:
        raise CalculationError(
            f"'% {following.text}' is ambiguous: write 'a % (-b)' for the remainder "
            f"or '(a%) {following.text} b' for a percentage"
        )
    return False  # a number, name or '(' follows: the remainder operator


def _wrap_percent(out: list[Token]) -> None:
    """Turn ``<operand> %`` (already in ``out``) into ``percent(<operand>)``."""
    start = _operand_start(out)
    out[start:start] = [Token(tokenize.NAME, PERCENT_FUNCTION), Token(tokenize.OP, "(")]
    out.append(Token(tokenize.OP, ")", closes_percent=True))


def _operand_start(out: list[Token]) -> int:
    """Where the operand that ends ``out`` begins: a number, a name, ``(...)`` or ``f(...)``."""
    if out and out[-1].kind in (tokenize.NUMBER, tokenize.NAME):
        return len(out) - 1
    if out and out[-1].text == ")":
        depth = 0
        for index in range(len(out) - 1, -1, -1):
            depth += {")": 1, "(": -1}.get(out[index].text, 0)
            if depth == 0:
                called = index > 0 and out[index - 1].kind == tokenize.NAME
                return index - 1 if called else index
    raise CalculationError("'%' must follow a number or a ')', as in '50%' or '(1 + 2)%'")


def _render(tokens: list[Token]) -> str:
    """Tokens as readable text: ``percent(15) * 80``, ``-3``, ``max(1, 2)``."""
    parts: list[str] = []
    previous: Token | None = None
    previous_is_sign = False
    for token in tokens:
        tight = previous is None or (
            previous.text in _OPENERS
            or token.text in _CLOSERS
            or previous_is_sign
            or (token.text == "(" and previous.kind == tokenize.NAME)
        )
        if not tight:
            parts.append(" ")
        parts.append(token.text)
        # A sign is unary when nothing, an operator or an opening bracket comes before it.
        previous_is_sign = token.text in _SIGNS and (
            previous is None or (previous.kind == tokenize.OP and previous.text not in ")]")
        )
        previous = token
    return "".join(parts)
