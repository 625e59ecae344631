"""The calculator agent: its input model, its description for the planning model, and ``run``."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from functions.agents.calculator.evaluator import calculate
from functions.agents.calculator.limits import DEFAULT_LIMITS
from shared.agent import AgentResult, AgentSpec

DESCRIPTION = (
    "Evaluates one arithmetic expression exactly and safely, and returns its value. "
    "Use it for any arithmetic instead of computing in your head: sums, products, powers, "
    "roots, logarithms, trigonometry (radians) and percentages. "
    "Supports + - * / // % ** and parentheses; ^ means power (2^10 is 1024, never xor); "
    "× and ÷ are accepted; numbers like 42, 3.14, 1e3, 2.5E-4, 1_000; "
    "the constants pi, e; the functions sqrt, log (natural; log(x, base)), log10, log2, exp, "
    "sin, cos, tan, abs, round (round(x, digits)), min, max, floor, ceil, factorial, percent. "
    "Percentages: '50%' is 0.5, '15% of 80' is 12, '200 * 10%' is 20; '100 + 10%' is refused "
    "as ambiguous (write '100 + 10% of 100' or '100 + 0.1'). A % followed by a number is the "
    "remainder (10 % 3 is 1). Integers stay exact (2**100 in full; 6/3 is 2, 7/2 is 3.5); "
    "floats are rounded to 15 significant digits. "
    "Do NOT use it for: algebra with unknowns (solving for x), unit or currency conversion, "
    "dates, statistics over a table of rows (use data_processor), or looking up facts "
    "(use search). Write plain numbers without thousands separators (1000, not 1,000). "
    f"Limits: {DEFAULT_LIMITS.max_length} characters, integers up to "
    f"{DEFAULT_LIMITS.max_int_bits} bits, {DEFAULT_LIMITS.time_limit_s:g} s."
)


class CalculatorInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    expression: str = Field(
        min_length=1,
        max_length=DEFAULT_LIMITS.max_length,
        description="One arithmetic expression, e.g. 'sqrt(2) * 15% of 80' or '2^10 / 3'.",
    )


def run(agent_input: CalculatorInput) -> AgentResult:
    calculation = calculate(agent_input.expression)
    meta: dict[str, object] = {
        "nodes": calculation.nodes,
        "elapsed_ms": calculation.elapsed_ms,
    }
    # Show the rewritten form only when it says something new (2^10 -> 2 ** 10, 50% -> ...).
    if "".join(calculation.interpreted_as.split()) != "".join(agent_input.expression.split()):
        meta["interpreted_as"] = calculation.interpreted_as
    return AgentResult(
        result={"expression": agent_input.expression, "value": calculation.value}, meta=meta
    )


SPEC: AgentSpec[CalculatorInput] = AgentSpec(
    name="calculator",
    description=DESCRIPTION,
    input_model=CalculatorInput,
    run=run,
    example={"expression": "15% of 80 + sqrt(16) * 2^3"},
)
