"""The calculator's core, called directly: values, exactness, notation, refusals and bounds."""

from __future__ import annotations

import math

import pytest

from functions.agents.calculator.evaluator import calculate
from functions.agents.calculator.limits import CalculationError, EvaluationLimits
from shared.errors import BadRequest


def value_of(expression: str, limits: EvaluationLimits | None = None) -> int | float:
    return calculate(expression, limits or EvaluationLimits()).value


def refusal(expression: str, limits: EvaluationLimits | None = None) -> str:
    with pytest.raises(CalculationError) as caught:
        calculate(expression, limits or EvaluationLimits())
    assert caught.value.status_code == 400
    return caught.value.message


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("1 + 2 * 3", 7),
        ("(1 + 2) * 3", 9),
        ("2 ** 3 ** 2", 512),  # power is right-associative
        ("-2 ** 2", -4),  # and binds tighter than unary minus, as in mathematics
        ("+5 - -3", 8),
        ("17 // 5", 3),
        ("-17 // 5", -4),
        ("17 % 5", 2),
        ("7 / 2", 3.5),
        ("6 / 3", 2),
        ("1_000 + 1", 1001),
        ("1e3", 1000.0),
        ("2.5E-4 * 4", 0.001),
        ("0.1 + 0.2", 0.3),
        ("2^10", 1024),
        ("2 ^ 3 ^ 2", 512),
        ("6 × 7 ÷ 2", 21),
        ("10 − 4", 6),
        ("1 + 2 + 3 + 4 + 5 + 6 + 7 + 8 + 9 + 10", 55),
    ],
)
def test_arithmetic(expression: str, expected: int | float) -> None:
    result = value_of(expression)
    assert result == expected
    assert type(result) is type(expected)


def test_integers_stay_exact() -> None:
    assert value_of("2 ** 100") == 1267650600228229401496703205376
    assert value_of("2 ** 100 + 1 - 2 ** 100") == 1
    assert value_of("10 ** 30 / 10 ** 10") == 10**20
    assert isinstance(value_of("10 ** 30 / 10 ** 10"), int)


def test_results_beyond_json_safe_integers_are_exact() -> None:
    assert value_of("2 ** 53 + 1") == 9007199254740993
    assert value_of("factorial(25)") == math.factorial(25)


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("sqrt(16)", 4),
        ("sqrt(10 ** 400)", 10**200),
        ("sqrt(2)", 1.4142135623731),
        ("log(e)", 1.0),
        ("log(8, 2)", 3.0),
        ("log(1000, 10)", 3.0),
        ("log10(1000)", 3.0),
        ("log2(1024)", 10.0),
        ("exp(0)", 1.0),
        ("sin(pi / 2)", 1.0),
        ("cos(0)", 1.0),
        ("tan(pi / 4)", 1.0),
        ("abs(-7)", 7),
        ("round(2.567)", 3),
        ("round(2.567, 2)", 2.57),
        ("round(1234, -2)", 1200),
        ("min(3, 1, 2)", 1),
        ("max(3, 1.5, 2)", 3),
        ("floor(-2.5)", -3),
        ("ceil(2.1)", 3),
        ("floor(7)", 7),
        ("factorial(5)", 120),
        ("factorial(0)", 1),
        ("pi", math.pi),
        ("2 * pi", 2 * math.pi),
    ],
)
def test_functions_and_constants(expression: str, expected: int | float) -> None:
    result = value_of(expression)
    assert result == pytest.approx(expected, rel=1e-14)
    assert type(result) is type(expected)


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("50%", 0.5),
        ("15% of 80", 12),
        ("15 % of 80", 12),
        ("200 * 10%", 20),
        ("10% * 200", 20),
        ("2.5% of 80", 2.0),
        ("-5% of 80", -4),
        ("(1 + 2)%", 0.03),
        ("sqrt(16)%", 0.04),
        ("max(10%, 5)", 5),
        ("100 + 10% of 100", 110),
        ("100 - 15% of 100", 85),
        ("(50%) - 3", -2.5),
        ("80 / 50%", 160.0),
        ("10% of 10% of 10000", 100),
        ("percent(25)", 0.25),
        ("10 % 3", 1),  # a % followed by a number stays the remainder
        ("10 % (2 + 1)", 1),
    ],
)
def test_percentages(expression: str, expected: int | float) -> None:
    result = value_of(expression)
    assert result == expected
    assert type(result) is type(expected)


@pytest.mark.parametrize(
    ("expression", "expected_message"),
    [
        ("100 + 10%", "ambiguous"),
        ("100 - 10%", "ambiguous"),
        ("50 % -3", "ambiguous"),
        ("of 80", "'of' must follow a percentage"),
        ("3 of 80", "'of' must follow a percentage"),
        ("%5", "not a valid expression"),
        ("+%", "'%' must follow a number"),
    ],
)
def test_ambiguous_or_misplaced_percentages_are_refused(
    expression: str, expected_message: str
) -> None:
    assert expected_message in refusal(expression)


def test_ambiguity_message_says_what_to_write_instead() -> None:
    message = refusal("100 + 10%")
    assert "x + y% of x" in message and "x + y/100" in message


@pytest.mark.parametrize(
    ("expression", "expected_message"),
    [
        ("1 / 0", "division by zero"),
        ("1 // 0", "division by zero"),
        ("1 % 0", "division by zero"),
        ("1.5 / 0.0", "division by zero"),
        ("0 ** -1", "division by zero"),
        ("sqrt(-1)", "sqrt is not defined for negative numbers"),
        ("log(0)", "log is defined only for positive numbers"),
        ("log(-5)", "log is defined only for positive numbers"),
        ("log(8, 1)", "base of a log"),
        ("log10(0)", "log10 is defined only for positive numbers"),
        ("log2(-1)", "log2 is defined only for positive numbers"),
        ("(-8) ** (1/3)", "not a real number"),
        ("exp(1000)", "too large"),
        ("1e308 * 10", "too large"),
        ("10.0 ** 400", "too large"),
        ("factorial(2.5)", "whole number"),
        ("factorial(-1)", "whole number"),
        ("round(2.5, 1.5)", "whole number"),
    ],
)
def test_domain_errors_are_400_with_the_reason(expression: str, expected_message: str) -> None:
    assert expected_message in refusal(expression)


@pytest.mark.parametrize(
    ("expression", "expected_message"),
    [
        ("2(3 + 4)", "write * to multiply"),
        ("2 pi", "write * to multiply"),
        ("3 x 4", "write * to multiply"),
        ("5!", "factorial(5)"),
        ("1,000", "write 1000"),
        ("(1 + 2", "parentheses do not match"),
        ("1 + * 2", "not a valid expression"),
        ("   ", "empty"),
        ("1 + 1 # note", "'#'"),
        ("sqrt", "sqrt is a function"),
        ("pi(2)", "pi is a constant"),
        ("sqrt(1, 2)", "sqrt takes 1 argument, got 2"),
        ("log(1, 2, 3)", "log takes 1 to 2 arguments, got 3"),
        ("min()", "min takes at least 1 argument, got 0"),
        ("x", "write * to multiply"),
        ("foo(1)", "unknown name 'foo'"),
        ("2 ^^ 3", "not a valid expression"),
    ],
)
def test_malformed_input_is_explained(expression: str, expected_message: str) -> None:
    assert expected_message in refusal(expression)


def test_calculation_error_is_a_bad_request() -> None:
    # The HTTP layer renders any BadRequest as 400; the calculator relies on that.
    assert issubclass(CalculationError, BadRequest)


def test_interpreted_as_shows_the_rewritten_syntax() -> None:
    assert calculate("2^10").interpreted_as == "2 ** 10"
    assert calculate("15% of 80").interpreted_as == "percent(15) * 80"
    assert calculate("max(10%, -5)").interpreted_as == "max(percent(10), -5)"
    assert calculate("6 × 7").interpreted_as == "6 * 7"


def test_floats_are_rounded_to_15_significant_digits() -> None:
    assert value_of("0.1 * 3") == 0.3
    assert value_of("1 / 3") == 0.333333333333333
    assert value_of("-0.0") == 0.0 and math.copysign(1, value_of("-0.0")) == 1


class TestLimits:
    def test_length(self) -> None:
        assert "the limit is 10" in refusal("1 + 2 + 3 + 4", EvaluationLimits(max_length=10))

    def test_node_count(self) -> None:
        assert value_of("1 + 2", EvaluationLimits(max_nodes=3)) == 3
        assert "too long" in refusal("1 + 2 + 3", EvaluationLimits(max_nodes=3))

    def test_nesting_depth(self) -> None:
        assert value_of("-(-(-1))", EvaluationLimits(max_depth=4)) == -1
        assert "nested too deeply" in refusal("-(-(-(-(-1))))", EvaluationLimits(max_depth=4))

    def test_long_left_chains_do_not_count_as_nesting(self) -> None:
        # A long sum (e.g. a column of numbers) is evaluated in a loop, not by recursion.
        assert value_of("+".join(["1"] * 300)) == 300
        assert "nested too deeply" in refusal("-" * 150 + "1")

    def test_power_size_is_checked_before_computing(self) -> None:
        limits = EvaluationLimits(max_int_bits=64)
        assert value_of("2 ** 63", limits) == 2**63
        assert "the limit is 64 bits" in refusal("3 ** 100", limits)
        assert "more than 64 bits" in refusal("2 ** 64", limits)
        assert value_of("1 ** (10 ** 18)", limits) == 1
        assert value_of("(-1) ** (10 ** 18 + 1)", limits) == -1

    @pytest.mark.parametrize("expression", ["2 ** 10 ** 3000", "(-3) ** 10 ** 400"])
    def test_an_exponent_beyond_a_float_is_refused(self, expression: str) -> None:
        message = refusal(expression)
        assert "would have more than 1e308 bits; the limit is 10000 bits" in message

    def test_products_are_bounded_too(self) -> None:
        assert "more than 64 bits" in refusal(
            "2 ** 40 * 2 ** 40", EvaluationLimits(max_int_bits=64)
        )

    def test_factorial(self) -> None:
        assert value_of("factorial(1000)") == math.factorial(1000)
        assert "factorial(1500)" in refusal("factorial(1500)")
        assert "bits" in refusal("factorial(10 ** 100)")

    def test_round_digits(self) -> None:
        assert "round's digits" in refusal("round(5, -10 ** 9)")

    def test_wall_clock(self) -> None:
        ticks = iter(range(1000))  # a clock that advances one second per reading

        def clock() -> float:
            return float(next(ticks))

        with pytest.raises(CalculationError, match="longer than 2 s"):
            calculate("1 + 2 + 3 + 4 + 5", EvaluationLimits(time_limit_s=2), clock=clock)
