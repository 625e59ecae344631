"""Validation of an Anthropic Messages API request: cheap, and precise about what is wrong.

Written by hand rather than as a pydantic model because it sits on the hot path of every
request and only needs to check shape; the body is passed on to providers as it came.
"""

from __future__ import annotations

from typing import Any

from shared.errors import BadRequest

_OPTIONAL_TYPES: dict[str, tuple[type, ...]] = {
    "stream": (bool,),
    "temperature": (int, float),
    "top_p": (int, float),
    "top_k": (int,),
    "stop_sequences": (list,),
    "metadata": (dict,),
    "tool_choice": (dict,),
    "tools": (list,),
    "system": (str, list),
}


# What each common block type must carry, as Anthropic's API requires it.
_BLOCK_FIELDS: dict[str, tuple[tuple[str, tuple[type, ...]], ...]] = {
    "text": (("text", (str,)),),
    "tool_use": (("id", (str,)), ("name", (str,)), ("input", (dict,))),
    "tool_result": (("tool_use_id", (str,)), ("content", (str, list, type(None)))),
}


def _type_name(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def _check_content(index: int, content: Any) -> None:
    where = f"messages.{index}.content"
    if isinstance(content, str):
        return
    if not isinstance(content, list):
        raise BadRequest(f"{where}: must be a string or a list of content blocks")
    for n, block in enumerate(content):
        if not isinstance(block, dict) or not isinstance(block.get("type"), str):
            raise BadRequest(f"{where}.{n}: each content block must be an object with a 'type'")
        for field, types in _BLOCK_FIELDS.get(block["type"], ()):
            if not isinstance(block.get(field), types):
                expected = " or ".join(t.__name__ for t in types)
                raise BadRequest(f"{where}.{n}.{field}: must be {expected}")


def _check_tools(tools: list[Any]) -> None:
    for n, tool in enumerate(tools):
        if not isinstance(tool, dict):
            raise BadRequest(f"tools.{n}: must be an object")
        if tool.get("type") not in (None, "custom"):
            continue  # server tools (web_search, ...) have no input_schema
        if not isinstance(tool.get("name"), str) or not tool["name"]:
            raise BadRequest(f"tools.{n}.name: field required (a non-empty string)")
        schema = tool.get("input_schema")
        if not isinstance(schema, dict):
            raise BadRequest(f"tools.{n}.input_schema: field required (a JSON Schema object)")
        if not isinstance(schema.get("properties", {}), dict):
            raise BadRequest(f"tools.{n}.input_schema.properties: must be an object")
        required = schema.get("required", [])
        if not isinstance(required, list) or not all(isinstance(r, str) for r in required):
            raise BadRequest(f"tools.{n}.input_schema.required: must be a list of strings")


def validate_messages_request(body: Any) -> dict[str, Any]:
    """Return ``body`` if it is a well-formed Messages request; raise ``BadRequest`` naming
    the first problem otherwise."""
    if not isinstance(body, dict):
        raise BadRequest(f"request body must be a JSON object, got {_type_name(body)}")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise BadRequest("model: field required (a non-empty string naming a route)")
    max_tokens = body.get("max_tokens")
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
        raise BadRequest(f"max_tokens: must be a positive integer, got {max_tokens!r}")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise BadRequest("messages: field required (a non-empty list)")
    for index, message in enumerate(messages):
        if not isinstance(message, dict):
            raise BadRequest(f"messages.{index}: must be an object with 'role' and 'content'")
        # Any role is passed on: the API grows new ones (a mid-conversation ``system`` turn
        # under a beta), and the provider, not the gateway, knows which it accepts.
        if not isinstance(message.get("role"), str) or not message["role"]:
            raise BadRequest(f"messages.{index}.role: field required (a string such as 'user')")
        if "content" not in message:
            raise BadRequest(f"messages.{index}.content: field required")
        _check_content(index, message["content"])
    for key, types in _OPTIONAL_TYPES.items():
        value = body.get(key)
        if value is not None and (
            not isinstance(value, types) or isinstance(value, bool) and bool not in types
        ):
            expected = " or ".join(t.__name__ for t in types)
            raise BadRequest(f"{key}: must be {expected}, got {_type_name(value)}")
    if body.get("tools"):
        _check_tools(body["tools"])
    return body
