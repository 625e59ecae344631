"""Validation of an Anthropic Messages API request: cheap, and precise about what is wrong.

The gateway checks only what it needs to route a request and to protect itself (a JSON
object, ``model``, a non-empty ``messages`` list, ``max_tokens`` where the API requires it,
``stream``); sizes and nesting depth are bounded by the edge and the JSON parser. Every other
field, role and block goes to the provider unchanged: the Messages API grows every month, and
the upstream, not the gateway, knows what it accepts. ``check_conversation`` is what the local
model needs to read a conversation.
"""

from __future__ import annotations

from typing import Any

from shared.errors import BadRequest

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


def _check_route_fields(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise BadRequest(f"request body must be a JSON object, got {_type_name(body)}")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise BadRequest("model: field required (a non-empty string naming a route or model)")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise BadRequest("messages: field required (a non-empty list)")
    return body


def validate_messages_request(body: Any) -> dict[str, Any]:
    """Return ``body`` if the gateway can route it (``POST /v1/messages``); raise
    ``BadRequest`` naming the first problem otherwise. Everything else is the provider's."""
    checked = _check_route_fields(body)
    max_tokens = checked.get("max_tokens")
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
        raise BadRequest(f"max_tokens: must be a positive integer, got {max_tokens!r}")
    if not isinstance(checked.get("stream", False), bool):
        raise BadRequest(f"stream: must be bool, got {_type_name(checked['stream'])}")
    return checked


def validate_count_request(body: Any) -> dict[str, Any]:
    """``POST /v1/messages/count_tokens``: as a messages request, without ``max_tokens``."""
    return _check_route_fields(body)


def check_conversation(messages: list[Any]) -> None:
    """What the local model needs to read a conversation: each message an object with a
    string role and content, each known block with its fields (unknown blocks pass)."""
    for index, message in enumerate(messages):
        if not isinstance(message, dict):
            raise BadRequest(f"messages.{index}: must be an object with 'role' and 'content'")
        if not isinstance(message.get("role"), str) or not message["role"]:
            raise BadRequest(f"messages.{index}.role: field required (a string such as 'user')")
        if "content" not in message:
            raise BadRequest(f"messages.{index}.content: field required")
        _check_content(index, message["content"])
