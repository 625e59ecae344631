"""The local model picks a tool no rule knows (an MCP server's) by the request's words."""

from __future__ import annotations

from typing import Any

import pytest

from functions.gateway.providers.local import LocalProvider
from functions.gateway.providers.local_match import matched_call, subject_of


def tool(name: str, description: str, **properties: dict[str, Any]) -> dict[str, Any]:
    schema = {"type": "object", "properties": properties, "required": list(properties)}
    return {"name": name, "description": description, "input_schema": schema}


FORECAST = tool(
    "weather__get_forecast", "Get the weather forecast for a city.", city={"type": "string"}
)
SEARCH = tool("search", "Searches the knowledge base.", query={"type": "string"})
ISSUES = tool(
    "tracker__open_issues",
    "The open issues of a project.",
    query={"type": "string"},
    limit={"type": "integer"},
)


def answer(text: str, tools: list[dict[str, Any]]) -> list[dict[str, Any]]:
    body = {"messages": [{"role": "user", "content": text}], "tools": tools, "max_tokens": 500}
    content: list[dict[str, Any]] = LocalProvider().answer(body, "local")["content"]
    return content


def test_the_tool_whose_words_the_task_shares_is_called_with_the_city() -> None:
    content = answer("What is the weather forecast for Paris?", [SEARCH, FORECAST])

    [call] = [block for block in content if block["type"] == "tool_use"]
    assert (call["name"], call["input"]) == ("weather__get_forecast", {"city": "Paris"})


def test_a_query_argument_takes_the_request_and_others_their_simplest_value() -> None:
    call = matched_call([ISSUES], "Find the open issues about login timeouts")

    assert call is not None and call.name == "tracker__open_issues"
    assert call.arguments["query"] == "the open issues about login timeouts"
    assert isinstance(call.arguments["limit"], int)


def test_no_offered_tool_fits_says_so() -> None:
    [block] = answer("Paint my house blue", [FORECAST])

    assert block["type"] == "text"
    assert "None of the available tools fits this request" in block["text"]


@pytest.mark.parametrize(
    "text",
    [
        "What is the capital of France?",  # "the" and "of": no word of the tool's name
        "The weather is nice",  # one word only
    ],
)
def test_one_shared_word_is_not_enough(text: str) -> None:
    assert matched_call([FORECAST], text) is None


def test_the_built_in_rules_still_choose_their_tools() -> None:
    content = answer("What is 6*7?", [FORECAST, tool("calculator", "Arithmetic.", expression={})])

    [call] = [block for block in content if block["type"] == "tool_use"]
    assert call["name"] == "calculator"


@pytest.mark.parametrize(
    ("text", "subject"),
    [
        ("What is the weather forecast for Paris?", "Paris"),
        ("forecast in New York", "New York"),
        ("weather forecast", "weather forecast"),
    ],
)
def test_what_a_request_is_about(text: str, subject: str) -> None:
    assert subject_of(text) == subject


RUN_TASK = tool(
    "mcp__orchestrator__run_task",
    "Runs a task with Agent Orchestrator: a model plans it and calls the orchestrator's agents "
    "(calculator, search, data processing, web search).",
    task={"type": "string"},
)
BASH = tool("Bash", "Executes a given bash command in a shell.", command={"type": "string"})
CALCULATOR = tool(
    "calculator", "Evaluates an arithmetic expression.", expression={"type": "string"}
)


@pytest.mark.parametrize(
    "text", ["What is 15% of 80 plus 3?", "Find the weather forecast for Paris", "2+2"]
)
def test_a_task_no_other_tool_fits_goes_to_the_orchestrators_run_task(text: str) -> None:
    content = answer(text, [BASH, RUN_TASK])  # as Claude Code offers it, beside its own tools

    [call] = [block for block in content if block["type"] == "tool_use"]
    assert (call["name"], call["input"]) == ("mcp__orchestrator__run_task", {"task": text})


def test_a_tool_that_fits_is_still_called_before_run_task() -> None:
    content = answer("What is 15% of 80 plus 3?", [RUN_TASK, CALCULATOR])

    [call] = [block for block in content if block["type"] == "tool_use"]
    assert call["name"] == "calculator"


def test_a_greeting_is_no_task_for_run_task() -> None:
    [block] = answer("hello", [BASH, RUN_TASK])

    assert block["type"] == "text" and "None of the available tools" in block["text"]
