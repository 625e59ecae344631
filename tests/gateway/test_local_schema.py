"""The local model's simplest instance of a JSON Schema validates against that schema, within
its bounds, whatever the schema's shape (refs, combinators, bounds, formats)."""

from __future__ import annotations

import json
from typing import Any

import jsonschema
import pytest

from functions.gateway.providers.local import LocalProvider
from functions.gateway.providers.local_schema import MAX_NODES, minimal_instance
from shared.errors import BadRequest

SCHEMAS: list[dict[str, Any]] = [
    {"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]},
    {"type": "integer", "minimum": 5, "maximum": 9},
    {"type": "integer", "exclusiveMaximum": -3},
    {"type": "number", "exclusiveMinimum": 0.5},
    {"type": "integer", "minimum": 7, "multipleOf": 5},
    {"type": "string", "minLength": 300, "maxLength": 400},
    {"type": "string", "maxLength": 3},
    {"type": "string", "format": "date-time"},
    {"type": ["null", "boolean"]},
    {"anyOf": [{"type": "null"}, {"type": "integer", "minimum": 2}]},
    {"enum": ["x", "y"]},
    {"const": {"k": 1}},
    {"type": "array", "items": {"type": "string", "minLength": 2}, "minItems": 3},
    {
        "$defs": {
            "Node": {
                "type": "object",
                "properties": {"kids": {"type": "array", "items": {"$ref": "#/$defs/Node"}}},
                "required": ["kids"],
            }
        },
        "$ref": "#/$defs/Node",
    },
    {
        "allOf": [
            {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]},
            {"properties": {"b": {"type": "boolean"}}, "required": ["b"]},
        ]
    },
]


@pytest.mark.parametrize("schema", SCHEMAS, ids=range(len(SCHEMAS)))
def test_the_instance_validates(schema: dict[str, Any]) -> None:
    jsonschema.validate(minimal_instance(schema, "the answer"), schema)


def test_strings_carry_the_text() -> None:
    assert minimal_instance({"type": "string"}, "2 + 3 = 5") == "2 + 3 = 5"


def test_a_schema_asking_for_too_much_is_refused_before_the_work() -> None:
    wide = {
        "type": "array",
        "minItems": 1000,
        "items": {"type": "array", "minItems": 1000, "items": {"type": "integer"}},
    }
    with pytest.raises(BadRequest, match=str(MAX_NODES)):
        minimal_instance(wide, "")


def test_a_self_referring_schema_ends() -> None:
    assert minimal_instance({"allOf": [{"$ref": "#"}], "type": "integer"}, "") == 0


def test_the_local_model_answers_output_config_on_messages_too() -> None:
    schema = {
        "type": "object",
        "properties": {"sum": {"type": "integer"}, "said": {"type": "string"}},
        "required": ["sum", "said"],
        "additionalProperties": False,
    }
    body = {
        "model": "local",
        "max_tokens": 200,
        "messages": [{"role": "user", "content": "What is 2 + 3?"}],
        "output_config": {"format": {"type": "json_schema", "schema": schema}},
    }
    answer = LocalProvider().answer(body, "local-rules")
    [block] = answer["content"]
    value = json.loads(block["text"])
    jsonschema.validate(value, schema)
    assert "2 + 3 = 5" in value["said"] and answer["stop_reason"] == "end_turn"


def test_a_number_carries_what_the_text_computed_when_the_schema_allows_it() -> None:
    stated = "[local rule-based model] 6 * 7 = 42."
    assert minimal_instance({"type": "integer"}, stated) == 42
    assert minimal_instance({"type": "number"}, "7 / 2 = 3.5") == 3.5
    assert minimal_instance({"type": "integer"}, "7 / 2 = 3.5") == 0  # not an integer
    assert minimal_instance({"type": "integer", "maximum": 10}, stated) == 0  # out of bounds
    assert minimal_instance({"type": "integer", "multipleOf": 5}, stated) == 0
    assert minimal_instance({"type": "integer", "enum": [42]}, stated) == 42
