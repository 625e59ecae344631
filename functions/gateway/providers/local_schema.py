"""The simplest JSON value a JSON Schema accepts: the local model's arguments for a forced
tool call that no rule could fill, and its answer to a request for structured output
(``output_config.format``), so that a client asking for JSON always gets JSON that its schema
validates.

Required properties only, each the least value of its type within the schema's bounds
(``minimum``/``maximum``, ``minLength``/``maxLength``, ``minItems``, ``enum``, ``const``,
``format``); strings carry the given text, and a number is the last one the text states when
the schema allows it (so that an answer carries what was computed). Local ``$ref``s
(``#/$defs/...``, as pydantic writes them) are followed. The work is bounded before it is
done: at most ``MAX_DEPTH`` levels and ``MAX_NODES`` values in all, padding to at most
``MAX_SIZE`` characters or items; a schema that asks for more is a ``BadRequest``.
``pattern`` is not honoured.
"""

from __future__ import annotations

import math
import re
from typing import Any

from shared.errors import BadRequest

MAX_DEPTH = 16
"""Nesting of objects and arrays filled in (a recursive ``$ref`` stops here)."""
MAX_NODES = 10_000
"""Values in one answer, all levels together."""
MAX_SIZE = 1000
"""The most characters or items one value pads to when a schema asks for a minimum."""
DEFAULT_STRING = 200
"""The most characters of the text a string takes when the schema gives no ``maxLength``."""
_FORMATS = {
    "date-time": "1970-01-01T00:00:00Z",
    "date": "1970-01-01",
    "time": "00:00:00Z",
    "email": "user@example.com",
    "uri": "https://example.com/",
    "uuid": "00000000-0000-0000-0000-000000000000",
}


def minimal_instance(schema: Any, text: str) -> Any:
    """The simplest value ``schema`` accepts, with ``text`` for its strings."""
    return _Filler(schema if isinstance(schema, dict) else {}, text).fill(schema, 0)


class _Filler:
    def __init__(self, root: dict[str, Any], text: str) -> None:
        self._root = root
        self._text = text
        self._nodes = 0

    def fill(self, spec: Any, depth: int) -> Any:
        self._nodes += 1
        if self._nodes > MAX_NODES:
            raise BadRequest(f"the schema asks for more than {MAX_NODES} values in an answer")
        spec = self._resolved(spec, depth)
        for key in ("const", "default"):
            if key in spec:
                return spec[key]
        if isinstance(spec.get("enum"), list) and spec["enum"]:
            return spec["enum"][0]
        options = spec.get("anyOf") or spec.get("oneOf")
        if isinstance(options, list) and options:
            return self.fill(_first_not_null(options), depth)
        kind = spec.get("type", "object")
        if isinstance(kind, list):
            kind = next((k for k in kind if k != "null"), "null")
        return self._of_type(kind, spec, depth)

    def _of_type(self, kind: Any, spec: dict[str, Any], depth: int) -> Any:
        if kind == "string":
            return _string(spec, self._text)
        if kind in ("number", "integer"):
            return _number(spec, kind == "integer", self._text)
        if kind == "boolean":
            return False
        if kind == "array":
            count = min(int(spec.get("minItems", 0)), MAX_SIZE) if depth < MAX_DEPTH else 0
            return [self.fill(spec.get("items"), depth + 1) for _ in range(count)]
        if kind == "object":
            properties = spec.get("properties") or {}
            required = (spec.get("required") or []) if depth < MAX_DEPTH else []
            return {name: self.fill(properties.get(name), depth + 1) for name in required}
        return None  # "null", or no type at all: null is as good as anything

    def _resolved(self, given: Any, depth: int) -> dict[str, Any]:
        """``given`` with its ``$ref`` followed and its ``allOf`` merged (one level each)."""
        if not isinstance(given, dict):
            return {}
        spec: dict[str, Any] = given
        ref = spec.get("$ref")
        if isinstance(ref, str) and ref.startswith("#"):
            target: Any = self._root
            for segment in ref[1:].strip("/").split("/") if ref != "#" else []:
                target = (
                    target.get(segment.replace("~1", "/").replace("~0", "~"), {})
                    if isinstance(target, dict)
                    else {}
                )
            spec = {
                **(target if isinstance(target, dict) else {}),
                **{k: v for k, v in spec.items() if k != "$ref"},
            }
        parts = spec.get("allOf")
        if isinstance(parts, list):
            merged: dict[str, Any] = {k: v for k, v in spec.items() if k != "allOf"}
            for item in parts:
                part = self._resolved(item, depth + 1) if depth < MAX_DEPTH else {}
                merged["properties"] = {
                    **merged.get("properties", {}),
                    **part.get("properties", {}),
                }
                merged["required"] = [*merged.get("required", []), *part.get("required", [])]
                merged.update(
                    {k: v for k, v in part.items() if k not in ("properties", "required")}
                )
            spec = merged
        return spec


def _first_not_null(options: list[Any]) -> Any:
    return next(
        (o for o in options if not (isinstance(o, dict) and o.get("type") == "null")), options[0]
    )


_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")
_TEXT_WINDOW = 2000
"""Of the text, only its end is searched for the number it states."""


def _computed(text: str, integer: bool) -> int | float | None:
    """The last number ``text`` states (a result comes last), as the schema's kind."""
    found = _NUMBER.findall(text[-_TEXT_WINDOW:])
    if not found:
        return None
    value = float(found[-1])
    if not math.isfinite(value):
        return None
    if value.is_integer():
        return int(value)
    return None if integer else value


def _fits(value: int | float, spec: dict[str, Any]) -> bool:
    def bound(key: str) -> float | None:
        given = spec.get(key)
        return given if isinstance(given, int | float) and not isinstance(given, bool) else None

    low, high = bound("minimum"), bound("maximum")
    low_open, high_open, step = (
        bound("exclusiveMinimum"),
        bound("exclusiveMaximum"),
        bound("multipleOf"),
    )
    if (low is not None and value < low) or (high is not None and value > high):
        return False
    if (low_open is not None and value <= low_open) or (
        high_open is not None and value >= high_open
    ):
        return False
    if step is not None and (step <= 0 or not (value / step).is_integer()):
        return False
    enum = spec.get("enum")
    return not isinstance(enum, list) or value in enum


def _string(spec: dict[str, Any], text: str) -> str:
    shortest = min(int(spec.get("minLength", 0)), MAX_SIZE)
    longest = int(spec.get("maxLength", DEFAULT_STRING))
    value = _FORMATS.get(spec.get("format", ""), text)
    return value[:longest].ljust(shortest, "?")


def _number(spec: dict[str, Any], integer: bool, text: str = "") -> int | float:
    computed = _computed(text, integer)
    if computed is not None and _fits(computed, spec):
        return computed  # what the answer states ("6 * 7 = 42." -> 42), when the schema allows
    value: float = 0
    low, high = spec.get("minimum"), spec.get("maximum")
    if isinstance(spec.get("exclusiveMinimum"), int | float):
        low, low_open = spec["exclusiveMinimum"], True
    else:
        low_open = False
    if isinstance(spec.get("exclusiveMaximum"), int | float):
        high, high_open = spec["exclusiveMaximum"], True
    else:
        high_open = False
    if isinstance(low, int | float) and (value < low or (low_open and value <= low)):
        value = math.floor(low) + 1 if low_open else math.ceil(low)
    elif isinstance(high, int | float) and (value > high or (high_open and value >= high)):
        value = math.ceil(high) - 1 if high_open else math.floor(high)
    step = spec.get("multipleOf")
    if isinstance(step, int | float) and step > 0 and value % step:
        value = math.ceil(value / step) * step
    return int(value) if integer or float(value).is_integer() else value
