"""The local model under hostile input: every malformed request is a 400, and every request
is answered in bounded time and memory, whatever its size."""

from __future__ import annotations

import json
import time
import tracemalloc
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from functions.gateway.providers import local_rules as rules
from functions.gateway.providers.local import MARK, LocalProvider
from shared.errors import BadRequest
from tests.gateway.support import CALCULATOR_TOOL, DATA_TOOL, SEARCH_TOOL, WEB_TOOL, user

ALL_TOOLS = [CALCULATOR_TOOL, SEARCH_TOOL, WEB_TOOL, DATA_TOOL]
# Generous: each of these takes a few milliseconds now; before, 400 KB of "(" took 44 s.
SECONDS = 5.0
MEGABYTES = 50


def request(text: str, tools: Sequence[Mapping[str, Any]] | None = None) -> dict[str, Any]:
    return {"model": "local", "max_tokens": 256, "messages": user(text), "tools": tools or []}


def strict_dumps(message: dict[str, Any]) -> str:
    """The answer as the gateway sends it; fails on NaN or Infinity, which JSON does not have."""
    return json.dumps(message, allow_nan=False)


@pytest.fixture
def measured() -> Iterator[Callable[[Callable[[], Any]], Any]]:
    """Run a call and check it stayed within ``SECONDS`` and ``MEGABYTES`` (Python heap)."""

    def run(call: Callable[[], Any]) -> Any:
        tracemalloc.start()
        started = time.perf_counter()
        try:
            return call()
        finally:
            elapsed = time.perf_counter() - started
            peak = tracemalloc.get_traced_memory()[1] / 1e6
            tracemalloc.stop()
            assert elapsed < SECONDS, f"took {elapsed:.2f} s"
            assert peak < MEGABYTES, f"peak {peak:.1f} MB"

    yield run


def answer_or_400(body: dict[str, Any]) -> dict[str, Any] | BadRequest:
    try:
        return LocalProvider().answer(body, "local-rules")
    except BadRequest as refused:
        return refused


# -- malformed input is the caller's error, never a retryable failure --------------------------


def test_a_csv_field_over_the_csv_limit_is_a_400_not_a_crash() -> None:
    body = request(
        'Which city is warmest?\ncity,temp\nOslo,"' + "x" * 140_000 + '"\nRome,17', ALL_TOOLS
    )

    with pytest.raises(BadRequest) as refused:
        LocalProvider().answer(body, "local-rules")

    # A 400 is neither retried nor counted by the circuit that default, fast and local share.
    assert refused.value.status_code == 400 and not refused.value.retryable
    assert "the attached CSV cannot be read" in refused.value.message
    assert "field larger than field limit" in refused.value.message


def test_attached_data_over_the_data_window_is_refused_naming_the_limit() -> None:
    rows = "\n".join(f"city{n},{n}" for n in range(30_000))  # about 300 KB of CSV
    body = request(f"Which city is warmest?\ncity,temp\n{rows}", ALL_TOOLS)

    with pytest.raises(BadRequest) as refused:
        LocalProvider().answer(body, "local-rules")

    assert f"at most {rules.DATA_WINDOW} characters" in refused.value.message


@pytest.mark.parametrize(
    "attached",
    ['[{"temp": NaN}, {"temp": 1}]', '[{"temp": 1e999}]', '[{"temp": Infinity}]'],
    ids=["NaN", "1e999", "Infinity"],
)
def test_rows_with_non_json_numbers_never_reach_the_answer(attached: str) -> None:
    message = LocalProvider().answer(request(f"describe {attached}", ALL_TOOLS), "local-rules")

    strict_dumps(message)  # raises on a NaN or infinite number anywhere in the answer
    assert "data_processor" not in [b.get("name") for b in message["content"]]


def test_a_long_digit_run_in_a_csv_cell_stays_text() -> None:
    digits = "7" * 40_000  # int() refuses it, float() would make it inf
    text = f"Which is largest?\nname,value\na,{digits}\nb,2"

    message = LocalProvider().answer(request(text, [CALCULATOR_TOOL, DATA_TOOL]), "local-rules")

    [(name, arguments)] = [(b["name"], b["input"]) for b in message["content"][1:]]
    assert name == "data_processor"
    assert arguments["rows"] == [{"name": "a", "value": digits}, {"name": "b", "value": 2}]
    strict_dumps(message)


def test_deeply_nested_attached_json_is_not_a_crash() -> None:
    result = answer_or_400(request("describe " + "[" * 100_000 + "]" * 100_000, ALL_TOOLS))

    assert isinstance(result, BadRequest) or result["content"][0]["text"].startswith(MARK)


def test_a_huge_tool_result_is_stated_without_being_parsed(measured: Any) -> None:
    content = "[" + "[]," * 1_000_000 + "[]]"  # 3 MB: a million lists if it were parsed
    messages = [
        *user("q"),
        {
            "role": "assistant",
            "content": [{"type": "tool_use", "id": "a", "name": "t", "input": {}}],
        },
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": "a", "content": content}],
        },
    ]
    body = {"model": "local", "max_tokens": 256, "messages": messages}

    message = measured(lambda: LocalProvider().answer(body, "local-rules"))

    assert message["content"][0]["text"].startswith(f"{MARK} t returned: [[],[],")


# -- bounded time and memory -------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "(" * 400_000,
        "1+" * 2_000_000 + "1",  # 4 MB
        "7" * 40_000,
        "what is " + "(" * 200_000 + "2+2" + ")" * 200_000,
        "search for " + "circuit breaker " * 100_000,
        "a," * 100_000 + "\n" + "1," * 100_000,
    ],
    ids=["400 KB of (", "4 MB of 1+1+", "40 KB digit run", "deep parens", "1.6 MB query", "wide"],
)
def test_hostile_text_is_answered_in_bounded_time_and_memory(text: str, measured: Any) -> None:
    result = measured(lambda: answer_or_400(request(text, ALL_TOOLS)))

    if isinstance(result, BadRequest):
        assert result.status_code == 400
    else:
        assert result["content"][0]["text"].startswith(MARK)
        strict_dumps(result)


def test_a_huge_sum_is_not_sent_to_a_calculator_that_would_refuse_its_length(
    measured: Any,
) -> None:
    tool = {
        **CALCULATOR_TOOL,
        "input_schema": {
            "type": "object",
            "properties": {"expression": {"type": "string", "maxLength": 1000}},
            "required": ["expression"],
        },
    }

    message = measured(lambda: LocalProvider().answer(request("1+" * 2_000_000 + "1", [tool]), "m"))

    assert [b["type"] for b in message["content"]] == ["text"]


def test_only_the_end_of_a_long_turn_is_read() -> None:
    text = "ignore all this. " * 10_000 + "what is 6 times 7"

    message = LocalProvider().answer(request(text, ALL_TOOLS), "local-rules")

    assert [(b["name"], b["input"]) for b in message["content"][1:]] == [
        ("calculator", {"expression": "6  *  7"})
    ]


def test_balancing_parentheses_is_linear() -> None:
    # Read directly, without the window: 100 KB of "(" took about 9 s before.
    started = time.perf_counter()

    assert rules.extract_expression("(" * 100_000 + "1+2") == "1+2"
    assert time.perf_counter() - started < SECONDS


def test_the_timeout_ends_the_work_with_a_400() -> None:
    ticks = iter(range(1_000_000))

    def clock() -> float:  # a second passes at every look at the clock
        return float(next(ticks))

    with pytest.raises(BadRequest) as refused:
        LocalProvider().answer(
            request("what is 2+2 and search for retries", ALL_TOOLS),
            "m",
            timeout_s=2.5,
            clock=clock,
        )

    assert "within 2.5 s" in refused.value.message


def test_a_timeout_that_is_not_reached_changes_nothing() -> None:
    body = request("what is 2+2", ALL_TOOLS)

    assert LocalProvider().answer(body, "m", timeout_s=30) == LocalProvider().answer(body, "m")


@settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(st.text(max_size=300) | st.text(alphabet='0123456789+-*/%^()[]{},.eE\n" :', max_size=300))
def test_any_text_is_an_answer_or_a_400(text: str) -> None:
    result = answer_or_400(request(text, ALL_TOOLS))

    if not isinstance(result, BadRequest):
        assert result["content"][0]["text"].startswith(MARK)
        strict_dumps(result)
