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
refused (or, met only by an answer, is that answer's problem, never a crash), and a ``pattern``
(or ``patternProperties`` name) that can backtrack catastrophically is refused: Python's
``re`` cannot be stopped, and one such match on an answer would hold the instance's event
loop for minutes. Refused is a repeat around another repeat of varying length or around an
alternation (``(a+)+``, ``(\\d+)*``, ``(a|b)*``); a character class does the same safely.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from re import _constants as sre  # type: ignore[attr-defined]
from re import _parser as sre_parse  # type: ignore[attr-defined]
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError, best_match
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
        if key == "pattern" and _backtracks(value):
            raise BadRequest(
                f"output_schema: pattern {value[:80]!r} can backtrack without end (a repeat "
                "around a varying repeat or an alternation); use a character class instead"
            )
    unusable = _unusable(schema, None)
    if unusable is not None:
        raise BadRequest(f"output_schema: {unusable}")
    return schema


_VALUES = frozenset({"const", "enum", "default", "examples"})
"""Keywords whose values are data, not schemas."""


def _keywords(node: Any) -> Iterator[tuple[str, str]]:
    """Each ``$ref``/``$dynamicRef`` and pattern (``pattern``, ``patternProperties``' names)
    in ``node``, as ``(keyword, string)``."""
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
        if key == "patternProperties" and isinstance(value, dict):
            yield from (("pattern", name) for name in value)
        yield from _keywords(value)


def _backtracks(pattern: str) -> bool:
    try:
        return _nested(sre_parse.parse(pattern), repeated=False)
    except (re.error, RecursionError, OverflowError):
        return True  # not one ``re`` reads alike, or too deep to judge: refused


_REPEATS = (sre.MAX_REPEAT, sre.MIN_REPEAT)


def _nested(items: Any, *, repeated: bool) -> bool:
    """Whether a repeat (``repeated``: inside one) holds a varying repeat or an alternation."""
    for op, av in items:
        inner: list[Any] = []
        if op in _REPEATS:
            low, high, body = av
            if repeated and high > 1 and low != high:
                return True
            if _nested(body, repeated=repeated or high > 1):
                return True
        elif op is sre.BRANCH:
            if repeated:
                return True
            inner = list(av[1])
        elif op in (sre.SUBPATTERN, sre.POSSESSIVE_REPEAT):
            inner = [av[-1]]
        elif op is sre.ATOMIC_GROUP:
            inner = [av]
        elif op in (sre.ASSERT, sre.ASSERT_NOT):
            inner = [av[1]]
        elif op is sre.GROUPREF_EXISTS:
            inner = [part for part in av[1:] if part is not None]
        if any(_nested(part, repeated=repeated) for part in inner):
            return True
    return False


def _unusable(schema: dict[str, Any], value: Any) -> str | None:
    """Why ``schema`` cannot be applied to ``value``: a ``$ref`` that refers back to itself
    without end, or one that leads nowhere (None when it can)."""
    try:
        Draft202012Validator(schema).is_valid(value)
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
        error = best_match(Draft202012Validator(schema).iter_errors(value))
    except (RecursionError, Unresolvable):
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
