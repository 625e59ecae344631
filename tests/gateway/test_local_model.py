"""The local rule-based model: reading requests, choosing tools, stating results, being honest."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import pytest

from functions.gateway.providers import local_rules as rules
from functions.gateway.providers.local import MARK, LocalProvider
from tests.gateway.support import CALCULATOR_TOOL, DATA_TOOL, SEARCH_TOOL, WEB_TOOL, user

ALL_TOOLS = [CALCULATOR_TOOL, SEARCH_TOOL, WEB_TOOL, DATA_TOOL]


def answer(
    text: str, tools: Sequence[Mapping[str, Any]] | None = None, **body: Any
) -> dict[str, Any]:
    request = {"model": "local", "max_tokens": 512, "messages": user(text), **body}
    if tools is not None:
        request["tools"] = tools
    return LocalProvider().answer(request, "local-rules")


def tool_uses(message: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [(b["name"], b["input"]) for b in message["content"] if b["type"] == "tool_use"]


def compact(expression: str | None) -> str | None:
    return None if expression is None else "".join(expression.split())


# -- reading an expression ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expression"),
    [
        ("what is 2 plus 3", "2+3"),
        ("15% of 80", "15%of80"),
        ("sqrt(16) + 2", "sqrt(16)+2"),
        ("What is 12*(3+4)?", "12*(3+4)"),
        ("compute 7 times 6 minus 2 please", "7*6-2"),
        ("2 to the power of 10", "2**10"),
        ("what is 9 divided by 3", "9/3"),
        ("(1 + 2) * 3", "(1+2)*3"),
    ],
)
def test_expression_is_read_from_words_and_symbols(text: str, expression: str) -> None:
    assert compact(rules.extract_expression(text)) == expression


@pytest.mark.parametrize("text", ["hello there", "the year 2024", "version 3.11 of python"])
def test_no_expression_without_an_operator(text: str) -> None:
    assert rules.extract_expression(text) is None


# -- choosing tools ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tool", "kind"),
    [
        (CALCULATOR_TOOL, "calc"),
        (SEARCH_TOOL, "search"),
        (WEB_TOOL, "web"),
        (DATA_TOOL, "data"),
        ({"name": "evaluator", "description": "Does exact math."}, "calc"),
        ({"name": "kb", "description": "Look up the knowledge base."}, "search"),
        ({"name": "lookup", "description": "Calculates nothing."}, "search"),  # name first
        ({"name": "weather", "description": "Forecasts."}, "other"),
    ],
)
def test_tool_kind_comes_from_name_then_description(tool: dict[str, Any], kind: str) -> None:
    assert rules.tool_kind(tool) == kind


def test_arithmetic_goes_to_the_calculator() -> None:
    message = answer("What is 12*(3+4)?", ALL_TOOLS)

    assert tool_uses(message) == [("calculator", {"expression": "12*(3+4)"})]
    assert message["stop_reason"] == "tool_use"


def test_a_lookup_goes_to_search() -> None:
    message = answer("tell me about circuit breakers", ALL_TOOLS)

    assert tool_uses(message) == [("search", {"query": "circuit breakers"})]


def test_the_words_asking_to_search_are_not_searched_for() -> None:
    message = answer("Search the knowledge base for the circuit breaker", ALL_TOOLS)

    assert tool_uses(message) == [("search", {"query": "the circuit breaker"})]


def test_news_goes_to_the_web_tool() -> None:
    message = answer("what is the latest news on python releases", ALL_TOOLS)

    assert tool_uses(message) == [("tavily", {"query": "the latest news on python releases"})]


def test_without_a_web_tool_news_goes_to_search() -> None:
    message = answer("what is the latest news on python", [SEARCH_TOOL])

    assert [name for name, _ in tool_uses(message)] == ["search"]


def test_search_and_compute_give_two_tool_uses() -> None:
    message = answer("search for the circuit breaker pattern and compute 2+2*10", ALL_TOOLS)

    assert tool_uses(message) == [
        ("search", {"query": "the circuit breaker pattern"}),
        ("calculator", {"expression": "2+2*10"}),
    ]
    ids = [b["id"] for b in message["content"] if b["type"] == "tool_use"]
    assert len(set(ids)) == 2


def test_attached_json_rows_go_to_the_data_tool() -> None:
    rows = [{"city": "Oslo", "temp": 3}, {"city": "Rome", "temp": 17}]

    message = answer(f"Which city is warmest? {json.dumps(rows)}", ALL_TOOLS)

    assert tool_uses(message) == [("data_processor", {"rows": rows, "operation": "describe"})]


def test_attached_csv_goes_as_rows_to_a_data_tool_that_takes_only_rows() -> None:
    message = answer("Which city is warmest?\ncity,temp\nOslo,3\nRome,17.5", ALL_TOOLS)

    rows = [{"city": "Oslo", "temp": 3}, {"city": "Rome", "temp": 17.5}]
    assert tool_uses(message) == [("data_processor", {"rows": rows, "operation": "describe"})]


def test_arguments_follow_the_tools_own_property_names() -> None:
    tool = {
        "name": "math",
        "description": "arithmetic",
        "input_schema": {"type": "object", "properties": {"expr": {"type": "string"}}},
    }

    assert tool_uses(answer("what is 3 plus 4", [tool])) == [("math", {"expr": "3  +  4"})]


def test_tool_choice_none_and_named_tool_are_obeyed() -> None:
    assert tool_uses(answer("2+2?", ALL_TOOLS, tool_choice={"type": "none"})) == []
    forced = answer("2+2?", ALL_TOOLS, tool_choice={"type": "tool", "name": "search"})
    assert [name for name, _ in tool_uses(forced)] == ["search"]


WORDCOUNT_TOOL = {
    "name": "wordcount",
    "description": "Counts the words of a text. Do NOT use it for arithmetic (use calculator).",
    "input_schema": {
        "type": "object",
        "properties": {"text": {"type": "string", "minLength": 1}},
        "required": ["text"],
    },
}


@pytest.mark.parametrize(
    ("text", "argument"),
    [
        ("Use wordcount on: one two three", "one two three"),
        ("please call the wordcount agent for the quick brown fox", "the quick brown fox"),
        ("run WordCount", "run WordCount"),
    ],
)
def test_a_tool_no_rule_knows_is_used_when_the_request_names_it(text: str, argument: str) -> None:
    calls = tool_uses(answer(text, [*ALL_TOOLS, WORDCOUNT_TOOL]))
    assert calls == [("wordcount", {"text": argument})]


def test_only_tools_named_in_the_request_are_matched_against_it() -> None:
    # A request may offer thousands of tools: each is a set lookup, not a regex over the text.
    tools = [{**WORDCOUNT_TOOL, "name": f"tool{n}"} for n in range(5_000)] + [WORDCOUNT_TOOL]
    tried = []
    found = rules.named_tool(tools, "use wordcount on: a b", lambda: tried.append(1))
    assert found == (WORDCOUNT_TOOL, "a b") and len(tried) == 1


def test_a_tool_named_in_passing_is_not_called() -> None:
    message = answer("what does wordcount do?", [WORDCOUNT_TOOL])
    assert tool_uses(message) == []


def test_no_fitting_tool_says_it_cannot() -> None:
    message = answer("write me a poem about spring", [CALCULATOR_TOOL])

    [block] = message["content"]
    assert block["type"] == "text"
    assert "None of the available tools fits this request" in block["text"]
    assert "write me a poem about spring" in block["text"]
    assert message["stop_reason"] == "end_turn"


def test_no_tools_at_all_says_what_it_is() -> None:
    [block] = answer("What is the meaning of life?")["content"]

    assert "cannot answer open questions" in block["text"]
    assert "ANTHROPIC_API_KEY" in block["text"]


# -- stating tool results ----------------------------------------------------------------------


def after_tool(name: str, content: Any, is_error: bool = False) -> str:
    """The local model's text after ``name`` answered ``content``."""
    messages = [
        *user("question"),
        {
            "role": "assistant",
            "content": [{"type": "tool_use", "id": "toolu_1", "name": name, "input": {}}],
        },
        {
            "role": "user",
            "content": [
                {
                    "type": "tool_result",
                    "tool_use_id": "toolu_1",
                    "content": content if isinstance(content, str) else json.dumps(content),
                    "is_error": is_error,
                }
            ],
        },
    ]
    message = LocalProvider().answer(
        {"model": "local", "max_tokens": 512, "messages": messages}, "local-rules"
    )
    assert message["stop_reason"] == "end_turn"
    [block] = message["content"]
    text: str = block["text"]
    return text


def test_calculator_result_is_stated() -> None:
    text = after_tool("calculator", {"result": {"expression": "12*(3+4)", "value": 84}})

    assert "12*(3+4) = 84." in text


def test_search_hits_are_summarised() -> None:
    hits = [
        {"title": "Circuit breakers", "source": "patterns.md", "snippet": "stop calling a failing"},
        {"title": "Retries", "source": "retries.md", "snippet": "back off with jitter"},
    ]

    text = after_tool("search", {"result": {"hits": hits}})

    assert "search found 2 matches" in text
    assert "Circuit breakers (patterns.md): stop calling a failing" in text


def test_empty_search_says_it_cannot_answer() -> None:
    text = after_tool("search", {"result": {"hits": []}})

    assert "search found nothing relevant, so I can't answer that offline" in text


def test_data_rows_are_summarised() -> None:
    rows = [{"city": "Rome", "temp": 17}]

    text = after_tool("data_processor", {"result": {"rows": rows, "row_count": 1}})

    assert 'data_processor returned 1 rows: [{"city":"Rome","temp":17}]' in text


def test_web_answer_names_its_sources() -> None:
    value = {"answer": "Python 3.14 is out", "results": [{"url": "https://python.org/news"}]}

    text = after_tool("tavily", {"result": value})

    assert "The web says: Python 3.14 is out (sources: https://python.org/news)" in text


def test_tool_error_is_reported_as_a_failure() -> None:
    text = after_tool("calculator", "division by zero", is_error=True)

    assert "The calculator tool failed: division by zero." in text


def test_plain_text_result_is_passed_on() -> None:
    assert "search returned: no index yet." in after_tool("search", "no index yet")


def test_several_results_are_all_stated() -> None:
    messages = [
        *user("q"),
        {
            "role": "assistant",
            "content": [
                {"type": "tool_use", "id": "a", "name": "calculator", "input": {}},
                {"type": "tool_use", "id": "b", "name": "search", "input": {}},
            ],
        },
        {
            "role": "user",
            "content": [
                {
                    "type": "tool_result",
                    "tool_use_id": "a",
                    "content": '{"expression":"2+2","value":4}',
                },
                {"type": "tool_result", "tool_use_id": "b", "content": "nothing", "is_error": True},
            ],
        },
    ]

    message = LocalProvider().answer({"max_tokens": 512, "messages": messages}, "local-rules")

    text = message["content"][0]["text"]
    assert "2+2 = 4." in text and "The search tool failed: nothing." in text


# -- limits and honesty ------------------------------------------------------------------------


def test_max_tokens_truncates_with_stop_reason_max_tokens() -> None:
    message = answer("What is the meaning of life?", max_tokens=5)

    [block] = message["content"]
    assert len(block["text"]) == 20  # about four characters a token
    assert message["stop_reason"] == "max_tokens"


@pytest.mark.parametrize(
    "message",
    [
        answer("What is 12*(3+4)?", ALL_TOOLS),
        answer("write me a poem", [CALCULATOR_TOOL]),
        answer("hello"),
    ],
    ids=["tool use", "no fitting tool", "no tools"],
)
def test_every_answer_says_it_is_the_local_model(message: dict[str, Any]) -> None:
    assert message["content"][0]["type"] == "text"
    assert message["content"][0]["text"].startswith(MARK)
    assert MARK == "[local rule-based model]"


def test_answers_are_deterministic_messages() -> None:
    first, second = answer("What is 2 plus 3?", ALL_TOOLS), answer("What is 2 plus 3?", ALL_TOOLS)

    assert first == second
    assert first["id"].startswith("msg_local_")
    assert (first["type"], first["role"], first["model"]) == ("message", "assistant", "local-rules")
    assert first["usage"]["input_tokens"] > 0 and first["usage"]["output_tokens"] > 0
    assert answer("What is 2 plus 4?", ALL_TOOLS)["id"] != first["id"]
