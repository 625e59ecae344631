"""The local model and data passed by name, as the orchestrator offers a task's data."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, cast

from functions.gateway.providers.local import LocalProvider
from tests.gateway.support import DATA_TOOL, SEARCH_TOOL, user

NAMED_DATA_TOOL: dict[str, Any] = {
    **DATA_TOOL,
    "input_schema": {
        **DATA_TOOL["input_schema"],
        "properties": {
            # ToolParam types a schema as any object; DATA_TOOL's is a plain JSON Schema dict.
            **cast(dict[str, Any], DATA_TOOL["input_schema"])["properties"],
            "dataset": {"type": "string", "enum": ["task_data"]},
        },
        "required": [],
    },
}
TASK = (
    "Task: What are the total sales by city?\n\n"
    "Data (dataset 'task_data', 3 rows, CSV):\ncity,sales\nParis,10\nLyon,5\nParis,7"
)


def tool_uses(text: str, tools: Sequence[Mapping[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    body = {"model": "local", "max_tokens": 256, "messages": user(text), "tools": tools}
    answer = LocalProvider().answer(body, "local-rules")
    return [(b["name"], b["input"]) for b in answer["content"] if b["type"] == "tool_use"]


def test_data_offered_by_name_is_used_by_name() -> None:
    assert tool_uses(TASK, [SEARCH_TOOL, NAMED_DATA_TOOL]) == [
        ("data_processor", {"dataset": "task_data", "operation": "describe"})
    ]


def test_csv_under_a_heading_with_commas_is_still_read() -> None:
    # The heading line holds two commas, the CSV lines one: the rows are still found.
    [(name, arguments)] = tool_uses(TASK, [SEARCH_TOOL, DATA_TOOL])

    assert name == "data_processor"
    assert arguments["rows"][0] == {"city": "Paris", "sales": 10}
