"""The tools the model sees, written by the orchestrator from the agents' own schemas, and the
check of the model's arguments before an agent is called.

An agent whose input takes tabular data (a ``rows`` or ``csv`` property) is offered one more
property when the task came with data: ``dataset``, the name of that data. The model names it
instead of copying rows into its answer; the orchestrator puts the rows in the call.
"""

from __future__ import annotations

import csv
import io
import json
import weakref
from dataclasses import dataclass
from typing import Any

from jsonschema.exceptions import ValidationError, best_match

from functions.orchestrator.agent_types import ToolSpec
from functions.orchestrator.structured import ToolValidator
from shared.errors import BadRequest
from shared.inbound import check_depth, too_deep

MAX_TASK_DEPTH = 100
"""How deeply a task (the JSON object, or a CloudEvent's data) may nest arrays and objects;
its ``data`` is one level below. Checked as the request is parsed, before any work: data just
under Python's own parser limit was accepted and then failed when the run was encoded."""
DATASET = "task_data"
_DATA_PROPERTIES = ("rows", "csv")


@dataclass(frozen=True)
class TaskData:
    """The data a task is about: rows (a list of objects) or CSV text."""

    rows: list[dict[str, Any]] | None = None
    csv: str | None = None

    @property
    def row_count(self) -> int:
        if self.rows is not None:
            return len(self.rows)
        return max(0, len((self.csv or "").strip().splitlines()) - 1)

    def columns(self) -> list[str]:
        if self.rows is not None:
            seen: dict[str, None] = {}
            for row in self.rows[:1000]:
                seen.update(dict.fromkeys(row))
            return list(seen)
        header = next(csv.reader(io.StringIO(self.csv or "")), [])
        return [name.strip() for name in header]

    def as_arguments(self) -> dict[str, Any]:
        return {"rows": self.rows} if self.rows is not None else {"csv": self.csv}


def parse_task_data(value: Any, max_depth: int = MAX_TASK_DEPTH - 1) -> TaskData | None:
    """``data`` from a request: a list of objects, or text holding JSON rows or CSV; JSON text
    nested at most as deep as data sent as JSON may be (one level below the task)."""
    if value is None:
        return None
    if isinstance(value, str):
        text = value.strip()
        if not text:
            raise BadRequest("data: empty text; send rows (a list of objects) or CSV/JSON text")
        if text.startswith("["):
            try:
                value = json.loads(text)
            except ValueError as exc:
                raise BadRequest(f"data: looks like JSON but is not valid: {exc}") from exc
            except RecursionError as exc:
                raise too_deep(max_depth, "data") from exc
            check_depth(value, max_depth, text, "data")
        else:
            if "\n" not in text:
                raise BadRequest("data: CSV text needs a header line and at least one row")
            return TaskData(csv=text)
    if isinstance(value, list) and all(isinstance(row, dict) for row in value):
        if not value:
            raise BadRequest("data: the list of rows is empty")
        return TaskData(rows=value)
    raise BadRequest("data: must be a list of objects (rows), or CSV or JSON text")


class InvalidArguments(BadRequest):
    """The model's arguments do not match the tool's schema; the message says where."""


@dataclass(frozen=True)
class Tool:
    name: str
    description: str
    input_schema: dict[str, Any]
    """The schema offered to the model (the agent's, plus ``dataset`` when it applies)."""
    takes_data: bool
    validator: Any
    """A ``structured.ToolValidator`` of ``input_schema``."""

    def definition(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "input_schema": self.input_schema,
        }

    def prepare(self, arguments: Any, data: TaskData | None) -> dict[str, Any]:
        """The agent's input for the model's ``arguments``: checked against the offered schema,
        then the named dataset replaced by the data itself."""
        if not isinstance(arguments, dict):
            raise InvalidArguments("the input must be a JSON object")
        problems = sorted(self.validator.iter_errors(arguments), key=_depth)
        if problems:
            raise InvalidArguments(_describe(problems))
        prepared = dict(arguments)
        named = prepared.pop("dataset", None)
        if self.takes_data and data is not None:
            inline = any(key in prepared for key in _DATA_PROPERTIES)
            if named == DATASET or not inline:
                for key in _DATA_PROPERTIES:
                    prepared.pop(key, None)
                prepared.update(data.as_arguments())
        return prepared


_PLAIN: weakref.WeakKeyDictionary[ToolSpec, Tool] = weakref.WeakKeyDictionary()
"""Tools for tasks without data, by spec: the same for every run while the spec is cached."""
_WITH_DATA: weakref.WeakKeyDictionary[ToolSpec, Any] = weakref.WeakKeyDictionary()
"""The validator of a spec offered with ``dataset``: only that property's description (the row
count) differs between tasks, and a description does not change what is valid."""


def make_tool(spec: ToolSpec, data: TaskData | None) -> Tool:
    if data is None or not _takes_data(spec.input_schema):
        tool = _PLAIN.get(spec)
        if tool is None:
            tool = _PLAIN[spec] = _make_tool(spec, None)
        return tool
    validator = _WITH_DATA.get(spec)
    tool = _make_tool(spec, data, validator)
    if validator is None:
        _WITH_DATA[spec] = tool.validator
    return tool


def _make_tool(spec: ToolSpec, data: TaskData | None, validator: Any = None) -> Tool:
    """The tool for ``spec``, offering ``data`` as ``dataset`` when the spec takes data."""
    schema = spec.input_schema  # copied where it changes, never changed in place
    properties = schema.get("properties")
    takes_data = _takes_data(schema)
    description = spec.description.strip()
    if takes_data and data is not None and isinstance(properties, dict):
        dataset = {
            "type": "string",
            "enum": [DATASET],
            "description": f"'{DATASET}' uses the task's data ({data.row_count} rows) without "
            "copying it; the orchestrator supplies it. Use it instead of rows or csv.",
        }
        schema = {**schema, "properties": {**properties, "dataset": dataset}}
        description += (
            f"\n\nThe task's data is available to this tool as dataset '{DATASET}' "
            f'({data.row_count} rows): pass "dataset": "{DATASET}" rather than the rows.'
        )
    description += (
        "\n\nInput that does not match the schema, and any failure of the tool, comes back as "
        "an error result: read it, fix the input, and try again or take another way."
    )
    return Tool(
        name=spec.name,
        description=description,
        input_schema=schema,
        takes_data=takes_data,
        validator=validator or ToolValidator(schema),
    )


def _takes_data(schema: dict[str, Any]) -> bool:
    properties = schema.get("properties")
    return isinstance(properties, dict) and any(k in properties for k in _DATA_PROPERTIES)


def _depth(error: ValidationError) -> int:
    return -len(error.absolute_path)


def _describe(problems: list[ValidationError]) -> str:
    best = best_match(problems)
    shown = [best] + [p for p in problems if p is not best][:2]
    parts = []
    for problem in shown:
        where = ".".join(str(part) for part in problem.absolute_path) or "(input)"
        parts.append(f"{where}: {problem.message[:300]}")
    return "invalid input: " + "; ".join(parts)
