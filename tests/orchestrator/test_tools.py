"""The tools the model is offered, the check of its arguments, and the bounded trace values."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from functions.orchestrator.agent_types import ToolSpec
from functions.orchestrator.tools import DATASET, InvalidArguments, TaskData, make_tool
from functions.orchestrator.trace import PREVIEW_CHARS, bounded
from shared.http import json_text
from tests.orchestrator.fakes import CALCULATOR, DATA_SCHEMA


def spec_of(schema: dict[str, Any]) -> ToolSpec:
    return ToolSpec(schema["name"], schema["description"], schema["input_schema"])


def test_each_task_is_offered_its_own_dataset_and_the_spec_is_left_as_it_was() -> None:
    spec = spec_of(DATA_SCHEMA)
    original = copy.deepcopy(spec.input_schema)
    small, large = TaskData(rows=[{"a": 1}] * 3), TaskData(csv="a\n" + "1\n" * 500)

    first, second = make_tool(spec, small), make_tool(spec, large)

    assert "(3 rows)" in first.description and "(500 rows)" in second.description
    offered = second.input_schema["properties"]["dataset"]
    assert offered["enum"] == [DATASET] and "500 rows" in offered["description"]
    assert spec.input_schema == original
    assert "dataset" not in make_tool(spec, None).input_schema["properties"]


def test_arguments_are_checked_against_the_schema_the_task_was_offered() -> None:
    spec = spec_of(DATA_SCHEMA)
    data = TaskData(rows=[{"a": 1}])
    for task_data in (data, TaskData(rows=[{"b": 2}] * 9)):  # a second task, the same checks
        tool = make_tool(spec, task_data)
        prepared = tool.prepare({"operation": "describe", "dataset": DATASET}, task_data)
        assert prepared == {"operation": "describe", "rows": task_data.rows}
        with pytest.raises(InvalidArguments, match="dataset"):
            tool.prepare({"operation": "describe", "dataset": "other"}, task_data)
        with pytest.raises(InvalidArguments, match="operation"):
            tool.prepare({"operation": "drop", "dataset": DATASET}, task_data)
    with pytest.raises(InvalidArguments, match="dataset"):  # no data: no such property
        make_tool(spec, None).prepare({"operation": "describe", "dataset": 1}, None)


def test_an_upstream_schemas_pattern_is_matched_in_linear_time_or_left_to_the_agent() -> None:
    # A hostile agent or MCP server's schema: Python's re would hold the loop for minutes on
    # this input; RE2 answers at once. A pattern RE2 cannot compile is the agent's to check.
    schema = {
        "type": "object",
        "properties": {
            "word": {"type": "string", "pattern": "^(a+)+$"},
            "twice": {"type": "string", "pattern": "^(a)\\1$"},  # a backreference
        },
    }
    tool = make_tool(ToolSpec("hostile", "A tool.", schema), None)
    with pytest.raises(InvalidArguments, match="word"):
        tool.prepare({"word": "a" * 40 + "!"}, None)
    assert tool.prepare({"word": "a" * 40, "twice": "ab"}, None) == {
        "word": "a" * 40,
        "twice": "ab",
    }


def test_a_tool_without_data_is_the_same_for_tasks_with_and_without_data() -> None:
    spec = spec_of(CALCULATOR.schema())
    assert make_tool(spec, TaskData(rows=[{"a": 1}])) is make_tool(spec, None)


def test_trace_values_are_kept_whole_up_to_the_limit_then_previewed() -> None:
    small = {"expression": "6*7", "nested": [1, 2.5, None, True]}
    assert bounded(small) is small
    assert bounded("é" * 300) == "é" * 300
    exact = "x" * (PREVIEW_CHARS - 2)  # its JSON, quotes included, is exactly the limit
    assert bounded(exact) is exact

    for large in ("x" * (PREVIEW_CHARS - 1), {"rows": [{"a": "b" * 50}] * 100}):
        preview = bounded(large)
        assert preview["truncated"] is True
        assert preview["chars"] == len(json_text(large)) > PREVIEW_CHARS
        assert preview["preview"] == json_text(large)[:PREVIEW_CHARS]

    assert bounded("\x00" * 400)["chars"] == 400 * 6 + 2  # escapes count as written


def test_json_text_is_compact_and_writes_what_json_cannot_hold_as_text() -> None:
    assert json_text({"a": [1, "é"], "b": None}) == '{"a":[1,"é"],"b":null}'
    assert json_text({"at": ToolSpec}) == json_text({"at": str(ToolSpec)})
