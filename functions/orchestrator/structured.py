"""Structured output: a task's ``output_schema`` (JSON Schema, draft 2020-12) makes its answer
JSON valid against it.

The schema is checked when the task arrives (a 400 naming what is wrong with it). Every model
call of the run asks for it through Anthropic's structured output (``output_config.format``,
passed through the gateway to whichever provider answers; the offline model honours it too).
The orchestrator validates the final answer with ``jsonschema`` itself, whatever the provider
promised: an answer that is not JSON, or not valid, gets one repair turn that tells the model
what was wrong; a second invalid answer ends the run ``failed`` with the reason.

A schema comes from the client, so it is checked as hostile input: a ``$ref`` must be local
(``#...``: nothing is fetched, not even a file), one that refers back to itself without end is
refused (or, met only by an answer, is that answer's problem, never a crash), and every
``pattern`` is matched by RE2 (``google-re2``), whose time grows linearly with the text. Python's
``re`` backtracks: a pattern such as ``(a+)+$`` or ``\\d*\\d*\\d*x`` held the instance's
event loop for minutes on one answer, and ``re`` cannot be stopped. A pattern RE2 cannot compile
(a backreference, a lookaround) is a 400 that says so. ``patternProperties`` is refused: jsonschema
matches its names with ``re`` in several keywords (``additionalProperties`` among them), and
neither Anthropic's nor OpenAI's structured output accepts it.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterator
from typing import Any

from jsonschema import Draft202012Validator, validators
from jsonschema.exceptions import SchemaError, ValidationError, best_match
from referencing.exceptions import Unresolvable

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
        problem = f"output_schema: not a valid JSON Schema at {where[:200]}: {exc.message[:300]}"
        raise BadRequest(problem) from exc
    except (OverflowError, RecursionError) as exc:  # ``re`` on a pattern like ``x{4294967296}``
        raise BadRequest(f"output_schema: a pattern ``re`` cannot compile: {exc}") from exc
    for key, value in _keywords(schema):
        if key in ("$ref", "$dynamicRef") and not value.startswith("#"):
            raise BadRequest(
                f"output_schema: $ref {value[:80]!r} is not fetched: only local ones (#...)"
            )
        if key == "patternProperties":
            raise BadRequest(
                "output_schema: patternProperties is not supported (its names would be matched "
                "by a backtracking engine); name the properties, or use additionalProperties"
            )
        if key == "pattern":
            _compiled(value)  # a 400 when RE2 cannot match it
    unusable = _unusable(schema, None)
    if unusable is not None:
        raise BadRequest(f"output_schema: {unusable}")
    return schema


_VALUES = frozenset({"const", "enum", "default", "examples"})
"""Keywords whose values are data, not schemas."""
_MAPS = frozenset({"properties", "$defs", "definitions", "dependentSchemas"})
"""Keywords whose values map names (any string, "pattern" included) to schemas."""


def _keywords(node: Any) -> Iterator[tuple[str, str]]:
    """Each ``$ref``/``$dynamicRef``, ``pattern`` and ``patternProperties`` in the schema
    ``node``, as ``(keyword, string)`` (the string of the first three)."""
    if isinstance(node, list):
        for item in node:
            yield from _keywords(item)
    if not isinstance(node, dict):
        return
    for key, value in node.items():
        if key in _VALUES:
            continue
        if key in ("$ref", "$dynamicRef", "pattern") and isinstance(value, str):
            yield key, value
        if key == "patternProperties":
            yield key, ""
        if key in _MAPS and isinstance(value, dict):
            for schema in value.values():
                yield from _keywords(schema)
        else:
            yield from _keywords(value)


MAX_PATTERN_MEMORY = 8 * 1024 * 1024
"""RE2's memory for one compiled pattern; a pattern that needs more is refused."""


@functools.lru_cache(maxsize=256)
def _compiled(pattern: str) -> Any:
    """``pattern`` compiled by RE2 (imported on the first pattern); ``BadRequest`` when RE2
    cannot compile it, naming why."""
    import re2  # type: ignore[import-untyped]

    options = re2.Options()
    options.log_errors = False  # it would print the client's pattern to stderr, past our logs
    options.max_mem = MAX_PATTERN_MEMORY
    try:
        return re2.compile(pattern, options)
    except re2.error as exc:
        reason = exc.args[0].decode("utf-8", "replace") if exc.args else "invalid"
        raise BadRequest(
            f"output_schema: pattern {pattern[:80]!r} cannot be matched in linear time (RE2: "
            f"{reason[:120]}); backreferences and lookarounds are not supported"
        ) from None


def _pattern(
    validator: Any, pattern: str, instance: Any, schema: dict[str, Any]
) -> Iterator[ValidationError]:
    """The ``pattern`` keyword, matched by RE2 instead of ``re``."""
    if validator.is_type(instance, "string") and not _compiled(pattern).search(instance):
        yield ValidationError(f"{instance[:80]!r} does not match {pattern[:80]!r}")


def _pattern_if_safe(
    validator: Any, pattern: str, instance: Any, schema: dict[str, Any]
) -> Iterator[ValidationError]:
    """``pattern`` matched by RE2 where RE2 compiles it, else left to whoever serves the schema."""
    try:
        _compiled(pattern)
    except BadRequest:
        return
    yield from _pattern(validator, pattern, instance, schema)


Validator = validators.extend(Draft202012Validator, {"pattern": _pattern})
"""Draft 2020-12, its ``pattern`` matched by RE2: what validates answers here."""
ToolValidator = validators.extend(Draft202012Validator, {"pattern": _pattern_if_safe})
"""What validates a model's tool input against an agent's or MCP server's schema (upstream text,
untrusted): a ``pattern`` RE2 cannot compile is not checked here; the agent checks its input."""


def _unusable(schema: dict[str, Any], value: Any) -> str | None:
    """Why ``schema`` cannot be applied to ``value``: a ``$ref`` that refers back to itself
    without end, or one that leads nowhere (None when it can)."""
    try:
        Validator(schema).is_valid(value)
    except RecursionError:
        return "a $ref refers back to itself without end"
    except Unresolvable as exc:
        return f"a $ref leads nowhere ({str(exc)[:200]})"
    return None


def output_config(schema: dict[str, Any]) -> dict[str, Any]:
    """What a model call carries to ask for JSON valid against ``schema``."""
    return {"format": {"type": "json_schema", "schema": schema}}


def parsed(text: str, schema: dict[str, Any]) -> tuple[Any, str | None]:
    """The answer as JSON, and what is wrong with it (None when it is valid)."""
    try:
        value = json.loads(_unfenced(text))
    except (ValueError, RecursionError) as exc:
        return None, f"the answer is not JSON ({exc})"
    try:
        error = best_match(Validator(schema).iter_errors(value))
    except (RecursionError, Unresolvable, BadRequest):
        return value, f"output_schema cannot be applied to it: {_unusable(schema, value)}"
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
