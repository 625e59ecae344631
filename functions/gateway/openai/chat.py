"""``POST /v1/chat/completions``: OpenAI's Chat Completions over the gateway's routes.

A request is translated into an Anthropic Messages request (``chat_request``), served by the
same service entry as ``/v1/messages``, and its answer translated back (``completion``, or
``chat_stream.chunks`` for ``stream: true``). Roles: ``system`` and ``developer`` become the
system prompt; ``assistant`` ``tool_calls`` become ``tool_use`` blocks; ``tool`` messages
become ``tool_result`` blocks in a user turn (consecutive turns of one role are merged, as
Anthropic reads them; each tool call must have its result before the conversation goes on).
What no provider behind the gateway can honour (``n`` > 1, ``logprobs``, ``logit_bias``, audio,
``web_search_options``, an image URL on a route that can reach Bedrock) is refused with a 400
naming the field, never silently dropped. Fields
that only steer OpenAI's own service (``store``, ``metadata``, ``seed``, penalties,
``service_tier``) have no effect.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from functions.gateway.openai import translate as tr
from functions.gateway.openai.chat_stream import chunks
from functions.gateway.openai.errors import InvalidParam
from shared.http import SSE_CONTENT_TYPE, Call, Reply, compact_json

if TYPE_CHECKING:
    from functions.gateway.service import GatewayService

DEFAULT_MAX_TOKENS = 4096
"""``max_tokens`` when the client gives none (OpenAI has no required limit; Anthropic has)."""


@dataclass(frozen=True)
class ChatRequest:
    """A Chat Completions request, translated."""

    model: str
    """The model the client asked for: every answer names it."""
    body: dict[str, Any]
    """The Anthropic Messages request that serves it."""
    stream: bool = False
    include_usage: bool = False
    """``stream_options.include_usage``: a last chunk with the usage."""
    json_tool: bool = False
    """The answer arrives as the input of ``translate.RESPONSE_TOOL``."""


def chat_request(payload: Any, providers: tr.Providers) -> ChatRequest:
    """``payload`` translated; ``InvalidParam`` naming the first field that cannot be."""
    payload = tr.expect(payload, dict, "body", "a JSON object")
    model = tr.expect(payload.get("model"), str, "model", "a string naming a route or model")
    if not model:
        raise InvalidParam("model", "must not be empty")
    _refuse_unsupported(payload)
    route_providers = providers(model)
    system, turns, urls = _conversation(payload.get("messages"))
    tr.check_image_urls(urls, model, route_providers)
    body: dict[str, Any] = {"model": model, "messages": turns}
    if system:
        body["system"] = system
    body["max_tokens"] = _max_tokens(payload)
    _sampling(payload, body)
    _tools(payload, body)
    json_tool = _response_format(payload.get("response_format"), route_providers, body)
    stream = tr.expect(payload.get("stream", False) or False, bool, "stream", "a boolean")
    options = payload.get("stream_options")
    options = {} if options is None else tr.expect(options, dict, "stream_options", "an object")
    include_usage = options.get("include_usage") or False
    tr.expect(include_usage, bool, "stream_options.include_usage", "a boolean")
    return ChatRequest(model, body, stream, stream and include_usage, json_tool)


def _refuse_unsupported(payload: dict[str, Any]) -> None:
    n = payload.get("n")
    if n is not None and tr.expect(n, int, "n", "an integer") != 1:
        raise InvalidParam("n", "only one choice (n=1) can be answered through this gateway")
    if payload.get("logprobs") or payload.get("top_logprobs") is not None:
        param = "logprobs" if payload.get("logprobs") else "top_logprobs"
        raise InvalidParam(param, "log probabilities are not available from these providers")
    bias = payload.get("logit_bias")
    if bias is not None and tr.expect(bias, dict, "logit_bias", "an object") != {}:
        raise InvalidParam("logit_bias", "token biases cannot be applied by these providers")
    if payload.get("web_search_options") is not None:
        raise InvalidParam(
            "web_search_options", "web search runs at OpenAI; give the model a function tool"
        )
    modalities = payload.get("modalities")
    if payload.get("audio") is not None or (isinstance(modalities, list) and "audio" in modalities):
        param = "audio" if payload.get("audio") is not None else "modalities"
        raise InvalidParam(param, "audio output is not supported by this gateway")


def _max_tokens(payload: dict[str, Any]) -> int:
    for name in ("max_completion_tokens", "max_tokens"):
        if payload.get(name) is not None:
            return tr.positive_int(payload[name], name)
    return DEFAULT_MAX_TOKENS


def _sampling(payload: dict[str, Any], body: dict[str, Any]) -> None:
    for name in ("temperature", "top_p"):
        if payload.get(name) is not None:
            body[name] = tr.number(payload[name], name)
    stop = payload.get("stop")
    if isinstance(stop, str):
        body["stop_sequences"] = [stop]
    elif stop is not None:
        stops = tr.expect(stop, list, "stop", "a string or a list of strings")
        body["stop_sequences"] = [
            tr.expect(s, str, f"stop[{n}]", "a string") for n, s in enumerate(stops)
        ]
    if payload.get("user") is not None:
        body["metadata"] = {"user_id": tr.expect(payload["user"], str, "user", "a string")}


def _tools(payload: dict[str, Any], body: dict[str, Any]) -> None:
    tools = payload.get("tools")
    if tools is not None:
        tr.expect(tools, list, "tools", "a list of function tools")
        body["tools"] = [_tool(tool, f"tools[{n}]") for n, tool in enumerate(tools)]
    choice = tr.tool_choice(payload.get("tool_choice"), payload.get("parallel_tool_calls"))
    if body.get("tools") and choice is not None:
        body["tool_choice"] = choice
    elif choice is not None and choice["type"] in ("any", "tool"):
        raise InvalidParam("tool_choice", "asks for a tool call, but the request has no tools")


def _tool(tool: Any, where: str) -> dict[str, Any]:
    tool = tr.expect(tool, dict, where, "an object")
    if tool.get("type") != "function":
        raise InvalidParam(f"{where}.type", "only function tools are supported")
    return tr.function_tool(
        tr.expect(tool.get("function"), dict, f"{where}.function", "an object"), f"{where}.function"
    )


def _response_format(spec: Any, providers: frozenset[str], body: dict[str, Any]) -> bool:
    if spec is None:
        return False
    spec = tr.expect(spec, dict, "response_format", "an object with a 'type'")
    kind = spec.get("type")
    if kind == "text":
        return False
    if kind == "json_object":
        return tr.answer_format(None, providers, body)
    if kind == "json_schema":
        schema = tr.json_schema_of(spec.get("json_schema"), "response_format.json_schema")
        return tr.answer_format(schema, providers, body)
    raise InvalidParam("response_format.type", "must be 'text', 'json_object' or 'json_schema'")


def _conversation(messages: Any) -> tuple[str, list[dict[str, Any]], list[str]]:
    """The system prompt, the turns (consecutive turns of one role merged), and where the
    images given by URL are."""
    messages = tr.expect(messages, list, "messages", "a non-empty list of messages")
    system: list[str] = []
    turns: list[dict[str, Any]] = []
    urls: list[str] = []
    calls = tr.ToolCalls()
    for index, message in enumerate(messages):
        where = f"messages[{index}]"
        message = tr.expect(message, dict, where, "an object with a 'role'")
        role = message.get("role")
        if role in ("system", "developer"):
            system.append(tr.text_of(message.get("content"), f"{where}.content"))
            continue
        if role == "user":
            calls.all_answered()
            blocks = tr.content_blocks(message.get("content"), f"{where}.content")
            urls += tr.image_urls(blocks, f"{where}.content", "image_url.url")
        elif role == "assistant":
            calls.all_answered()
            blocks = _assistant_blocks(message, where)
            for n, block in enumerate(b for b in blocks if b["type"] == "tool_use"):
                calls.called(block["id"], f"{where}.tool_calls[{n}].id")
        elif role == "tool":
            role, blocks = "user", [_tool_result(message, where, calls)]
        else:
            raise InvalidParam(
                f"{where}.role",
                f"unknown role {str(role)[:40]!r}; use system, developer, user, assistant or tool",
            )
        if turns and turns[-1]["role"] == role:
            turns[-1]["content"].extend(blocks)
        elif blocks:
            turns.append({"role": role, "content": blocks})
    calls.all_answered()
    if not turns:
        raise InvalidParam("messages", "must hold at least one user message")
    return "\n\n".join(system), turns, urls


def _assistant_blocks(message: dict[str, Any], where: str) -> list[dict[str, Any]]:
    content = message.get("content")
    blocks: list[dict[str, Any]] = []
    if isinstance(content, list):
        for n, part in enumerate(content):
            part = tr.expect(part, dict, f"{where}.content[{n}]", "an object")
            text = part.get("text") if part.get("type") == "text" else part.get("refusal")
            blocks.append(
                {
                    "type": "text",
                    "text": tr.expect(text, str, f"{where}.content[{n}].text", "a string"),
                }
            )
    elif content is not None:
        text = tr.expect(content, str, f"{where}.content", "a string, a list of parts or null")
        blocks.append({"type": "text", "text": text})
    blocks = [b for b in blocks if b["text"]]  # Anthropic refuses empty text blocks
    calls = message.get("tool_calls") or []
    tr.expect(calls, list, f"{where}.tool_calls", "a list")
    return blocks + [_tool_use(call, f"{where}.tool_calls[{n}]") for n, call in enumerate(calls)]


def _tool_use(call: Any, where: str) -> dict[str, Any]:
    call = tr.expect(call, dict, where, "an object")
    function = tr.expect(call.get("function"), dict, f"{where}.function", "an object")
    return {
        "type": "tool_use",
        "id": tr.expect(call.get("id"), str, f"{where}.id", "a string"),
        "name": tr.expect(function.get("name"), str, f"{where}.function.name", "a string"),
        "input": tr.tool_arguments(function.get("arguments"), f"{where}.function.arguments"),
    }


def _tool_result(message: dict[str, Any], where: str, calls: tr.ToolCalls) -> dict[str, Any]:
    call_id = tr.expect(message.get("tool_call_id"), str, f"{where}.tool_call_id", "a string")
    calls.answered(call_id, f"{where}.tool_call_id")
    text = tr.text_of(message.get("content", ""), f"{where}.content")
    return {"type": "tool_result", "tool_use_id": call_id, "content": text}


def completion(message: dict[str, Any], request: ChatRequest) -> dict[str, Any]:
    """An Anthropic Message as OpenAI's ``chat.completion``."""
    texts: list[str] = []
    calls: list[dict[str, Any]] = []
    for block in message.get("content") or []:
        kind = block.get("type")
        if kind == "text" and not request.json_tool:  # with it, text is only a preamble
            texts.append(block.get("text", ""))
        elif kind == "tool_use" and request.json_tool and block.get("name") == tr.RESPONSE_TOOL:
            texts.append(compact_json(block.get("input", {})))
        elif kind == "tool_use":
            calls.append(tool_call(block))
    reason = tr.finish_reason(message.get("stop_reason"))
    if reason == "tool_calls" and not calls:
        reason = "stop"  # the forced JSON tool answered: that is the final answer
    reply: dict[str, Any] = {
        "role": "assistant",
        "content": "".join(texts) if texts else None,
        "refusal": None,
        "annotations": [],
    }
    if calls:
        reply["tool_calls"] = calls
    return {
        "id": tr.answer_id(message, "chatcmpl-"),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": request.model,
        "choices": [{"index": 0, "message": reply, "finish_reason": reason, "logprobs": None}],
        "usage": tr.usage(message.get("usage")),
        "system_fingerprint": None,
    }


def tool_call(block: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": block.get("id"),
        "type": "function",
        "function": {"name": block.get("name"), "arguments": compact_json(block.get("input", {}))},
    }


class ChatCompletions:
    """The route's handler: translate in, call the service, translate out."""

    def __init__(self, service: GatewayService) -> None:
        self._service = service

    async def __call__(self, call: Call) -> Reply:
        service = self._service
        with service.errors_with_request_id(call):
            service.authenticate(call)
            request = chat_request(await service.payload(call), service.providers_of)
            if request.stream:
                events, headers = await service.stream(call, request.body)
                return Reply(
                    chunks(events, request), headers=headers, content_type=SSE_CONTENT_TYPE
                )
            answer, headers = await service.complete(call, request.body)
            message = tr.upstream_message(answer)
        return Reply(completion(message, request), headers=headers)
