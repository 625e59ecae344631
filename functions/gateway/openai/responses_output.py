"""The Response object and its output items, from an Anthropic message (whole, or as streamed
so far): the shapes both ``/v1/responses`` answers share."""

from __future__ import annotations

from typing import Any

from functions.gateway.openai.responses_input import ResponsesRequest
from functions.gateway.openai.translate import RESPONSE_TOOL, obj, token_count
from shared.http import compact_json


def output_items(
    content: list[dict[str, Any]], response_id: str, json_tool: bool = False
) -> list[dict[str, Any]]:
    """Anthropic content blocks as Responses output items: each run of text blocks one
    ``message`` (a part per block), each ``tool_use`` a ``function_call``; thinking and
    server-tool blocks are the provider's own and left out. With ``json_tool`` the forced
    JSON tool's input is the text, and any other text only its preamble."""
    items: list[dict[str, Any]] = []
    for block in content:
        kind = block.get("type")
        if kind == "tool_use" and json_tool and block.get("name") == RESPONSE_TOOL:
            block, kind = {"text": compact_json(block.get("input") or {})}, "text"
        elif kind == "text" and json_tool:
            continue
        if kind == "text":
            part = {"type": "output_text", "text": block.get("text", ""), "annotations": []}
            if items and items[-1]["type"] == "message":
                items[-1]["content"].append(part)
            else:
                items.append(message_item(item_id("msg", response_id, len(items)), [part]))
        elif kind == "tool_use":
            arguments = compact_json(block.get("input") or {})
            items.append(
                function_call_item(
                    item_id("fc", response_id, len(items)), block["id"], block["name"], arguments
                )
            )
    return items


def item_id(prefix: str, response_id: str, index: int) -> str:
    return f"{prefix}_{response_id.removeprefix('resp_')[:24]}{index:04d}"


def message_item(
    ident: str, parts: list[dict[str, Any]], status: str = "completed"
) -> dict[str, Any]:
    return {"type": "message", "id": ident, "role": "assistant", "status": status, "content": parts}


def function_call_item(
    ident: str, call_id: str, name: str, arguments: str, status: str = "completed"
) -> dict[str, Any]:
    return {
        "type": "function_call",
        "id": ident,
        "call_id": call_id,
        "name": name,
        "arguments": arguments,
        "status": status,
    }


def usage_of(usage: dict[str, Any]) -> dict[str, Any]:
    """Anthropic usage as OpenAI's: input counts the cached tokens too, as OpenAI's does."""
    cached = token_count(usage, "cache_read_input_tokens")
    written = token_count(usage, "cache_creation_input_tokens")
    input_tokens = token_count(usage, "input_tokens") + cached + written
    output_tokens = token_count(usage, "output_tokens")
    return {
        "input_tokens": input_tokens,
        "input_tokens_details": {"cached_tokens": cached, "cache_write_tokens": written},
        "output_tokens": output_tokens,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": input_tokens + output_tokens,
    }


def response_object(
    message: dict[str, Any],
    request: ResponsesRequest,
    response_id: str,
    created_at: int,
    *,
    output: list[dict[str, Any]] | None = None,
    status: str | None = None,
) -> dict[str, Any]:
    """The Response object for ``message`` (an Anthropic message, whole or as streamed)."""
    stop_reason = message.get("stop_reason")
    if status is None:
        status = "incomplete" if stop_reason == "max_tokens" else "completed"
    incomplete = {"reason": "max_output_tokens"} if status == "incomplete" else None
    return {
        "id": response_id,
        "object": "response",
        "created_at": created_at,
        "status": status,
        "error": None,
        "incomplete_details": incomplete,
        "model": message.get("model") or request.model,
        "output": output_items(message.get("content") or [], response_id, request.json_tool)
        if output is None
        else output,
        "usage": usage_of(obj(message.get("usage"))) if status != "in_progress" else None,
        "previous_response_id": None,
        "store": False,
        "truncation": "disabled",
        "reasoning": None,
        "user": None,
        **request.echo,
    }
