"""The local model and what current Anthropic clients (Claude Code, the SDKs) send: system turns
mid-conversation, block types and fields it does not know, server tools, tool_choice."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import jsonschema
import pytest

from functions.gateway.providers.local import MARK, LocalProvider
from shared.errors import BadRequest
from tests.gateway.support import CALCULATOR_TOOL, DATA_TOOL, SEARCH_TOOL, WEB_TOOL, user

ALL_TOOLS = [CALCULATOR_TOOL, SEARCH_TOOL, WEB_TOOL, DATA_TOOL]
SCHEMA = "http://json-schema.org/draft-07/schema#"


def answer(messages: Sequence[Mapping[str, Any]], **body: Any) -> dict[str, Any]:
    request = {"model": "claude-sonnet-4-5-20250929", "max_tokens": 1024, "messages": messages}
    message = LocalProvider().answer({**request, **body}, "local-rules")
    json.dumps(message, allow_nan=False)  # what the gateway sends must be strict JSON
    assert message["content"][0]["type"] == "text"
    assert message["content"][0]["text"].startswith(MARK)
    return message


def tool_uses(message: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [(b["name"], b["input"]) for b in message["content"] if b["type"] == "tool_use"]


def tool(name: str, description: str, properties: dict[str, Any], *required: str) -> dict[str, Any]:
    """A tool as Claude Code declares one: a draft-07 schema closed to other properties."""
    schema = {
        "type": "object",
        "properties": properties,
        "required": list(required),
        "additionalProperties": False,
        "$schema": SCHEMA,
    }
    return {"name": name, "description": description, "input_schema": schema}


def valid_for(tools: Sequence[Mapping[str, Any]], name: str, arguments: dict[str, Any]) -> None:
    [declared] = [t for t in tools if t["name"] == name]
    jsonschema.validate(arguments, declared["input_schema"])


# -- system turns, unknown blocks and unknown fields -------------------------------------------


def test_a_system_turn_in_the_middle_is_context_not_an_error() -> None:
    messages = [
        *user("hello"),
        {"role": "assistant", "content": "Hi."},
        {"role": "system", "content": "The user prefers short answers."},
        *user("what is 12*(3+4)?"),
    ]

    message = answer(messages, tools=ALL_TOOLS)

    assert tool_uses(message) == [("calculator", {"expression": "12*(3+4)"})]


def test_a_system_turn_after_tool_results_does_not_hide_them() -> None:
    messages = [
        *user("what is 2+2?"),
        {
            "role": "assistant",
            "content": [{"type": "tool_use", "id": "t1", "name": "calculator", "input": {}}],
        },
        {
            "role": "user",
            "content": [
                {
                    "type": "tool_result",
                    "tool_use_id": "t1",
                    "content": '{"expression":"2+2","value":4}',
                }
            ],
        },
        {"role": "system", "content": [{"type": "text", "text": "Answer in one line."}]},
    ]

    message = answer(messages, tools=ALL_TOOLS)

    assert "2+2 = 4." in message["content"][0]["text"]
    assert message["stop_reason"] == "end_turn"


@pytest.mark.parametrize(
    "system",
    [
        "You are a helpful assistant.",
        [{"type": "text", "text": "You are Claude Code.", "cache_control": {"type": "ephemeral"}}],
        [
            {"type": "text", "text": "a"},
            {"type": "text", "text": "b", "cache_control": {"type": "ephemeral", "ttl": "1h"}},
        ],
    ],
    ids=["string", "one block with cache_control", "blocks"],
)
def test_system_as_a_string_or_blocks(system: Any) -> None:
    message = answer(user("what is 2 plus 3"), system=system, tools=ALL_TOOLS)

    assert tool_uses(message) == [("calculator", {"expression": "2  +  3"})]


UNKNOWN_BLOCKS = [
    {"type": "thinking", "thinking": "Let me think about 9*9.", "signature": "c2ln"},
    {"type": "redacted_thinking", "data": "ZW5jcnlwdGVk"},
    {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0"}},
    {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "1+1"}},
    {"type": "server_tool_use", "id": "srvtoolu_1", "name": "web_search", "input": {"query": "x"}},
    {"type": "web_search_tool_result", "tool_use_id": "srvtoolu_1", "content": []},
    {"type": "container_upload", "file_id": "file_1"},
    {
        "type": "search_result",
        "source": "s",
        "title": "t",
        "content": [{"type": "text", "text": "5*5"}],
    },
    {"type": "a_block_type_from_next_year", "payload": {"anything": [1, 2]}},
]


def test_unknown_content_blocks_are_ignored() -> None:
    messages = [
        {"role": "user", "content": [*UNKNOWN_BLOCKS, {"type": "text", "text": "hello"}]},
        {"role": "assistant", "content": [*UNKNOWN_BLOCKS, {"type": "text", "text": "Hi."}]},
        {
            "role": "user",
            "content": [*UNKNOWN_BLOCKS, {"type": "text", "text": "compute 6 times 7"}],
        },
    ]

    message = answer(messages, tools=ALL_TOOLS)

    assert tool_uses(message) == [("calculator", {"expression": "6  *  7"})]


def test_a_turn_of_only_unknown_blocks_is_skipped_for_the_last_readable_one() -> None:
    messages = [*user("what is 2+2"), {"role": "user", "content": UNKNOWN_BLOCKS}]

    assert tool_uses(answer(messages, tools=ALL_TOOLS)) == [("calculator", {"expression": "2+2"})]


def test_unknown_top_level_fields_are_ignored() -> None:
    extra = {
        "thinking": {"type": "adaptive"},
        "output_config": {"effort": "high"},
        "context_management": {"edits": [{"type": "clear_tool_uses_20250919"}]},
        "mcp_servers": [{"type": "url", "url": "https://mcp.example", "name": "x"}],
        "metadata": {"user_id": "user_abc"},
        "service_tier": "auto",
        "container": "container_1",
        "a_field_from_next_year": {"nested": True},
    }

    plain = answer(user("what is 2+2"), tools=ALL_TOOLS)
    modern = answer(user("what is 2+2"), tools=ALL_TOOLS, **extra)

    assert modern["content"] == plain["content"]
    assert modern["stop_reason"] == plain["stop_reason"] == "tool_use"


SERVER_TOOLS = [
    {"type": "web_search_20250305", "name": "web_search", "max_uses": 5},
    {"type": "bash_20250124", "name": "bash"},
    {"type": "text_editor_20250728", "name": "str_replace_based_edit_tool"},
    {"type": "code_execution_20250825", "name": "code_execution"},
    {"name": "no_schema_at_all", "description": "a calculator"},
    {"name": "odd_schema", "description": "search", "input_schema": {"properties": ["q"]}},
]


def test_server_tools_and_tools_without_a_schema_are_left_out_of_planning() -> None:
    message = answer(user("what is 2+2 and search for retries"), tools=[*SERVER_TOOLS, *ALL_TOOLS])

    assert tool_uses(message) == [
        ("calculator", {"expression": "2+2"}),
        ("search", {"query": "retries"}),
    ]


def test_with_only_server_tools_it_answers_in_text() -> None:
    message = answer(user("search the web for python news"), tools=SERVER_TOOLS)

    assert tool_uses(message) == []
    assert message["stop_reason"] == "end_turn"


# -- tool_choice -------------------------------------------------------------------------------

FORM_TOOL = tool(
    "file_report",
    "Files a report.",
    {
        "title": {"type": "string", "minLength": 3, "maxLength": 40},
        "severity": {"type": "string", "enum": ["low", "high"]},
        "count": {"type": "integer", "minimum": 1},
        "ratio": {"type": "number", "exclusiveMinimum": 0},
        "urgent": {"type": "boolean"},
        "tags": {"type": "array", "items": {"type": "string"}, "minItems": 1},
        "owner": {
            "type": "object",
            "properties": {"name": {"type": "string"}, "team": {"type": ["string", "null"]}},
            "required": ["name", "team"],
            "additionalProperties": False,
        },
        "note": {"type": "string"},
    },
    "title",
    "severity",
    "count",
    "ratio",
    "urgent",
    "tags",
    "owner",
)


def test_tool_choice_any_always_gives_a_tool_use() -> None:
    message = answer(
        user("write me a poem about spring"), tools=ALL_TOOLS, tool_choice={"type": "any"}
    )

    [(name, arguments)] = tool_uses(message)
    valid_for(ALL_TOOLS, name, arguments)
    assert message["stop_reason"] == "tool_use"


def test_tool_choice_any_still_picks_the_tool_that_fits() -> None:
    message = answer(user("what is 2+2"), tools=ALL_TOOLS, tool_choice={"type": "any"})

    assert tool_uses(message) == [("calculator", {"expression": "2+2"})]


def test_tool_choice_tool_uses_that_tool_with_the_arguments_the_rules_read() -> None:
    message = answer(
        user("hello, what is 9 times 9?"),
        tools=ALL_TOOLS,
        tool_choice={"type": "tool", "name": "calculator"},
    )

    assert tool_uses(message) == [("calculator", {"expression": "9  *  9"})]


def test_tool_choice_tool_with_nothing_to_read_still_calls_it_with_valid_arguments() -> None:
    tools = [*ALL_TOOLS, FORM_TOOL]

    message = answer(
        user("hello there"), tools=tools, tool_choice={"type": "tool", "name": "file_report"}
    )

    [(name, arguments)] = tool_uses(message)
    assert name == "file_report"
    valid_for(tools, name, arguments)
    assert message["stop_reason"] == "tool_use"


def test_tool_choice_tool_for_a_search_tool_on_arithmetic_sends_the_text() -> None:
    message = answer(user("2+2?"), tools=ALL_TOOLS, tool_choice={"type": "tool", "name": "search"})

    assert tool_uses(message) == [("search", {"query": "2+2"})]


def test_tool_choice_none_never_gives_a_tool_use() -> None:
    message = answer(user("what is 2+2"), tools=ALL_TOOLS, tool_choice={"type": "none"})

    assert tool_uses(message) == []
    assert message["stop_reason"] == "end_turn"


def test_tool_choice_auto_and_absent_plan_as_before() -> None:
    for text, expected in [
        ("write me a poem", []),
        ("2+2", [("calculator", {"expression": "2+2"})]),
    ]:
        auto = answer(user(text), tools=[CALCULATOR_TOOL], tool_choice={"type": "auto"})
        absent = answer(user(text), tools=[CALCULATOR_TOOL])

        assert tool_uses(auto) == tool_uses(absent) == expected


def test_disable_parallel_tool_use_gives_one_call() -> None:
    choice = {"type": "auto", "disable_parallel_tool_use": True}

    message = answer(
        user("what is 2+2 and search for retries"), tools=ALL_TOOLS, tool_choice=choice
    )

    assert tool_uses(message) == [("calculator", {"expression": "2+2"})]


def test_a_forced_tool_after_tool_results_states_them_and_calls_again() -> None:
    messages = [
        *user("what is 2+2"),
        {
            "role": "assistant",
            "content": [{"type": "tool_use", "id": "t", "name": "calculator", "input": {}}],
        },
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t", "content": "4"}]},
    ]

    message = answer(messages, tools=ALL_TOOLS, tool_choice={"type": "any"})

    assert "calculator returned: 4." in message["content"][0]["text"]
    assert [name for name, _ in tool_uses(message)] == ["calculator"]


@pytest.mark.parametrize(
    ("tools", "choice", "expected"),
    [
        (ALL_TOOLS, {"type": "tool", "name": "weather"}, "tool 'weather'"),
        (SERVER_TOOLS, {"type": "tool", "name": "web_search"}, "server tools"),
        (SERVER_TOOLS, {"type": "any"}, "any tool"),
        (None, {"type": "any"}, "any tool"),
    ],
    ids=["unknown tool", "server tool", "any of server tools", "any of none"],
)
def test_a_forced_call_that_cannot_be_made_is_a_400(
    tools: list[dict[str, Any]] | None, choice: dict[str, Any], expected: str
) -> None:
    body = {"model": "m", "max_tokens": 10, "messages": user("hi"), "tool_choice": choice}
    if tools is not None:
        body["tools"] = tools

    with pytest.raises(BadRequest) as refused:
        LocalProvider().answer(body, "local-rules")

    assert expected in refused.value.message


# -- a request as Claude Code sends its first one ----------------------------------------------


def claude_code_tools() -> list[dict[str, Any]]:
    """24 tools shaped like Claude Code's (names, descriptions and schemas abridged)."""
    text = {"type": "string"}
    path = {"type": "string", "description": "The absolute path to the file"}
    todos = {
        "type": "array",
        "items": {
            "type": "object",
            "properties": {
                "content": {"type": "string", "minLength": 1},
                "status": {"type": "string", "enum": ["pending", "in_progress", "completed"]},
                "activeForm": {"type": "string", "minLength": 1},
            },
            "required": ["content", "status", "activeForm"],
        },
    }
    return [
        tool(
            "Task",
            "Launch a new agent to handle complex, multi-step tasks.",
            {"description": text, "prompt": text, "subagent_type": text},
            "description",
            "prompt",
            "subagent_type",
        ),
        tool(
            "Bash",
            "Executes a given bash command in a persistent shell session.",
            {
                "command": text,
                "timeout": {"type": "number", "maximum": 600000},
                "description": text,
                "run_in_background": {"type": "boolean"},
            },
            "command",
        ),
        tool(
            "Glob",
            "Fast file pattern matching tool that works with any codebase size.",
            {"pattern": text, "path": text},
            "pattern",
        ),
        tool(
            "Grep",
            "A powerful search tool built on ripgrep.",
            {
                "pattern": text,
                "path": text,
                "output_mode": {
                    "type": "string",
                    "enum": ["content", "files_with_matches", "count"],
                },
                "-i": {"type": "boolean"},
                "head_limit": {"type": "number"},
            },
            "pattern",
        ),
        tool("ExitPlanMode", "Use this tool when you are in plan mode.", {"plan": text}, "plan"),
        tool(
            "Read",
            "Reads a file from the local filesystem.",
            {"file_path": path, "offset": {"type": "number"}, "limit": {"type": "number"}},
            "file_path",
        ),
        tool(
            "Edit",
            "Performs exact string replacements in files.",
            {
                "file_path": path,
                "old_string": text,
                "new_string": text,
                "replace_all": {"type": "boolean", "default": False},
            },
            "file_path",
            "old_string",
            "new_string",
        ),
        tool(
            "MultiEdit",
            "Makes multiple edits to a single file in one operation.",
            {
                "file_path": path,
                "edits": {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "type": "object",
                        "properties": {"old_string": text, "new_string": text},
                        "required": ["old_string", "new_string"],
                    },
                },
            },
            "file_path",
            "edits",
        ),
        tool(
            "Write",
            "Writes a file to the local filesystem.",
            {"file_path": path, "content": text},
            "file_path",
            "content",
        ),
        tool(
            "NotebookEdit",
            "Replaces the contents of a cell in a Jupyter notebook.",
            {
                "notebook_path": text,
                "new_source": text,
                "cell_type": {"type": "string", "enum": ["code", "markdown"]},
            },
            "notebook_path",
            "new_source",
        ),
        tool(
            "WebFetch",
            "Fetches content from a specified URL and processes it.",
            {"url": {"type": "string", "format": "uri"}, "prompt": text},
            "url",
            "prompt",
        ),
        tool(
            "TodoWrite",
            "Use this tool to create and manage a structured task list.",
            {"todos": todos},
            "todos",
        ),
        tool(
            "WebSearch",
            "Allows Claude to search the web and use the results.",
            {
                "query": {"type": "string", "minLength": 2},
                "allowed_domains": {"type": "array", "items": text},
            },
            "query",
        ),
        tool(
            "BashOutput",
            "Retrieves output from a running or completed background bash shell.",
            {"bash_id": text, "filter": text},
            "bash_id",
        ),
        tool(
            "KillShell",
            "Kills a running background bash shell by its ID.",
            {"shell_id": text},
            "shell_id",
        ),
        tool(
            "SlashCommand",
            "Execute a slash command within the main conversation.",
            {"command": text},
            "command",
        ),
        tool(
            "Skill", "Execute a skill within the main conversation.", {"command": text}, "command"
        ),
        tool(
            "AskUserQuestion",
            "Asks the user questions.",
            {
                "questions": {
                    "type": "array",
                    "minItems": 1,
                    "maxItems": 4,
                    "items": {
                        "type": "object",
                        "properties": {"question": text},
                        "required": ["question"],
                    },
                }
            },
            "questions",
        ),
        tool("EnterPlanMode", "Enters plan mode.", {}),
        tool(
            "ListMcpResourcesTool",
            "Lists available resources from configured MCP servers.",
            {"server": text},
        ),
        tool(
            "ReadMcpResourceTool",
            "Reads a specific resource from an MCP server.",
            {"server": text, "uri": text},
            "server",
            "uri",
        ),
        tool("mcp__ide__getDiagnostics", "Get language diagnostics from VS Code.", {"uri": text}),
        tool(
            "mcp__ide__executeCode",
            "Execute python code in the Jupyter kernel.",
            {"code": text},
            "code",
        ),
        tool(
            "LS",
            "Lists files and directories in a given path.",
            {"path": path, "ignore": {"type": "array", "items": text}},
            "path",
        ),
    ]


def claude_code_request(prompt: str) -> dict[str, Any]:
    ephemeral = {"type": "ephemeral"}
    reminder = (
        "<system-reminder>\nAs you answer, use this context: CLAUDE.md ...\n</system-reminder>"
    )
    return {
        "model": "claude-sonnet-4-5-20250929",
        "max_tokens": 32000,
        "system": [
            {
                "type": "text",
                "text": "You are Claude Code, Anthropic's official CLI for Claude.",
                "cache_control": ephemeral,
            },
            {
                "type": "text",
                "text": "You are an interactive CLI tool for software engineering tasks. " * 40,
                "cache_control": ephemeral,
            },
        ],
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": reminder},
                    {"type": "text", "text": reminder * 20},
                    {"type": "text", "text": prompt, "cache_control": ephemeral},
                ],
            }
        ],
        "tools": claude_code_tools(),
        "metadata": {"user_id": "user_0123_account__session_4567"},
        "thinking": {"type": "enabled", "budget_tokens": 31999},
        "temperature": 1,
        "stream": True,
    }


def test_claude_code_tools_are_24() -> None:
    assert len(claude_code_tools()) == 24
    for declared in claude_code_tools():
        jsonschema.Draft7Validator.check_schema(declared["input_schema"])


@pytest.mark.parametrize(
    "prompt", ["fix the failing test in tests/test_app.py", "hello", "what does this repo do?"]
)
def test_claude_codes_first_request_is_answered_in_text(prompt: str) -> None:
    request = claude_code_request(prompt)

    message = LocalProvider().answer(request, "local-rules")

    assert message["content"][0]["text"].startswith(MARK)
    assert message["stop_reason"] in ("end_turn", "tool_use")
    for name, arguments in tool_uses(message):
        valid_for(request["tools"], name, arguments)
    json.dumps(message, allow_nan=False)


def test_claude_code_gets_a_tool_use_when_a_tool_fits() -> None:
    request = claude_code_request("search the web for the python 3.14 release notes")

    message = LocalProvider().answer(request, "local-rules")

    assert tool_uses(message) == [("WebSearch", {"query": "the python 3.14 release notes"})]


def test_system_reminders_after_the_prompt_are_not_read_as_the_request() -> None:
    reminder = "<system-reminder>Your todo list is empty. Search for 1+1.</system-reminder>"
    content = [{"type": "text", "text": "what is 6*7"}, {"type": "text", "text": reminder}]

    message = answer([{"role": "user", "content": content}], tools=ALL_TOOLS)

    assert tool_uses(message) == [("calculator", {"expression": "6*7"})]


@pytest.mark.parametrize("name", [t["name"] for t in claude_code_tools()])
def test_claude_code_can_force_any_of_its_tools(name: str) -> None:
    request = {**claude_code_request("hello"), "tool_choice": {"type": "tool", "name": name}}

    message = LocalProvider().answer(request, "local-rules")

    [(used, arguments)] = tool_uses(message)
    assert used == name
    valid_for(request["tools"], name, arguments)
