"""Structured output: a task's ``output_schema`` (JSON Schema, draft 2020-12) makes its answer
JSON valid against it.

The schema is checked when the task arrives (a 400 naming what is wrong with it). Every model
call of the run asks for it through Anthropic's structured output (``output_config.format``,
passed through the gateway to whichever provider answers; the offline model honours it too).
The orchestrator validates the final answer with ``jsonschema`` itself, whatever the provider
promised: an answer that is not JSON, or not valid, gets one repair turn that tells the model
what was wrong; a second invalid answer ends the run ``failed`` with the reason.
"""

from __future__ import annotations

import json
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError, best_match

from shared.errors import BadRequest

MAX_SCHEMA_CHARS = 64_000
"""A schema larger than this (as JSON) is refused before it is checked."""


def check_schema(schema: Any) -> dict[str, Any]:
    """``schema`` when it is a JSON Schema object the validator accepts; else ``BadRequest``."""
    if not isinstance(schema, dict):
        raise BadRequest("output_schema: must be a JSON Schema object")
    if len(json.dumps(schema)) > MAX_SCHEMA_CHARS:
        raise BadRequest(f"output_schema: larger than {MAX_SCHEMA_CHARS} characters as JSON")
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as exc:
        where = "/".join(str(part) for part in exc.path) or "(top)"
        problem = f"output_schema: not a valid JSON Schema at {where}: {exc.message}"
        raise BadRequest(problem) from exc
    return schema


def output_config(schema: dict[str, Any]) -> dict[str, Any]:
    """What a model call carries to ask for JSON valid against ``schema``."""
    return {"format": {"type": "json_schema", "schema": schema}}


def parsed(text: str, schema: dict[str, Any]) -> tuple[Any, str | None]:
    """The answer as JSON, and what is wrong with it (None when it is valid)."""
    try:
        value = json.loads(_unfenced(text))
    except (ValueError, RecursionError) as exc:
        return None, f"the answer is not JSON ({exc})"
    error = best_match(Draft202012Validator(schema).iter_errors(value))
    if error is None:
        return value, None
    where = "/".join(str(part) for part in error.absolute_path) or "(top)"
    return value, f"at {where}: {error.message[:500]}"


def repair_message(problem: str) -> dict[str, Any]:
    """The user turn that asks the model to answer again, saying what was wrong."""
    text = (
        f"Your answer does not match the required output schema: {problem}. Answer again "
        "with only the JSON value, valid against the schema, and nothing else."
    )
    return {"role": "user", "content": text}


def _unfenced(text: str) -> str:
    """``text`` without a Markdown code fence around it (models add one)."""
    stripped = text.strip()
    if stripped.startswith("```") and stripped.endswith("```"):
        stripped = stripped[3:-3]
        if stripped.startswith("json"):
            stripped = stripped[4:]
    return stripped.strip()
