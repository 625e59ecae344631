"""Pieces of OpenAI's request and answer shapes that the OpenAI-compatible endpoints share,
translated to and from the Anthropic Messages shape the gateway speaks inside.

Each function checks what it translates and raises ``InvalidParam`` naming the field (as
OpenAI's ``param``), so a client learns what to fix; what Anthropic's API checks anyway
(a schema's contents, a temperature's range) is passed on for the upstream to judge.
"""

from __future__ import annotations

import json
import math
import uuid
from collections.abc import Callable
from typing import Any

from functions.gateway.openai.errors import InvalidParam
from shared.errors import BadGateway, BadRequest
from shared.inbound import check_depth

MAX_ARGUMENT_DEPTH = 64
"""Nesting a tool call's JSON arguments may have."""
RESPONSE_TOOL = "json_response"
"""The forced tool that carries a JSON answer where the route cannot use structured output;
its input becomes the answer's text, never a tool call."""
STRUCTURED_PROVIDERS = frozenset({"anthropic", "local"})
"""Providers that honour ``output_config.format`` (the local model answers the schema too)."""
Providers = Callable[[str], frozenset[str]]
"""The kinds of provider of the route serving a model name (empty when no route serves it)."""
IMAGE_URL_PROVIDERS = frozenset({"anthropic", "local"})
"""Providers that take an image by http(s) URL: Anthropic's API fetches it; the local model
reads no image at all, by URL or inline, so a URL costs it nothing. Bedrock is not one: Claude
on Bedrock takes base64 image sources only (and the Converse API bytes or S3), so a route that
can reach Bedrock refuses a URL with a 400 naming the part, rather than fail at the fallback."""

_FINISH = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}
_IMAGE_TYPES = ("image/jpeg", "image/png", "image/gif", "image/webp")


def type_name(value: Any) -> str:
    if value is None:
        return "null"
    return {dict: "object", list: "array", str: "string", bool: "boolean"}.get(
        type(value), type(value).__name__
    )


def expect(value: Any, kind: type | tuple[type, ...], param: str, what: str) -> Any:
    """``value`` when it is of ``kind`` (a bool is no number); else ``InvalidParam``."""
    if isinstance(value, kind) and not (isinstance(value, bool) and bool not in _kinds(kind)):
        return value
    raise InvalidParam(param, f"must be {what}, got {type_name(value)}", "invalid_type")


def _kinds(kind: type | tuple[type, ...]) -> tuple[type, ...]:
    return kind if isinstance(kind, tuple) else (kind,)


def number(value: Any, param: str) -> float:
    """A finite number: Python's parser takes ``NaN`` and ``1e999``, which no JSON upstream
    reads back."""
    found: float = expect(value, (int, float), param, "a number")
    if isinstance(found, float) and not math.isfinite(found):
        raise InvalidParam(param, f"must be a finite number, got {found}")
    return found


def obj(value: Any) -> dict[str, Any]:
    """``value`` when it is an object, else an empty one: an upstream event's parts are read
    this way, a field of the wrong type as if absent, so nonsense never raises mid-stream."""
    return value if isinstance(value, dict) else {}


def positive_int(value: Any, param: str) -> int:
    number: int = expect(value, int, param, "a positive integer")
    if number < 1:
        raise InvalidParam(param, f"must be a positive integer, got {number}")
    return number


def text_of(content: Any, param: str) -> str:
    """The text of a ``system``/``developer``/``tool`` content: a string or text parts."""
    if isinstance(content, str):
        return content
    parts = expect(content, list, param, "a string or a list of text parts")
    texts = []
    for n, part in enumerate(parts):
        where = f"{param}[{n}]"
        part = expect(part, dict, where, "an object")
        if part.get("type") not in ("text", "input_text", "output_text"):
            raise InvalidParam(
                f"{where}.type",
                f"only text parts are accepted here, got {str(part.get('type'))[:40]!r}",
            )
        texts.append(expect(part.get("text"), str, f"{where}.text", "a string"))
    return "\n".join(texts)


def content_blocks(content: Any, param: str) -> list[dict[str, Any]]:
    """A user's content (a string or parts: text, images, files) as Anthropic blocks."""
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    parts = expect(content, list, param, "a string or a list of content parts")
    return [_part_block(part, f"{param}[{n}]") for n, part in enumerate(parts)]


def _part_block(part: Any, where: str) -> dict[str, Any]:
    part = expect(part, dict, where, "an object with a 'type'")
    kind = part.get("type")
    if kind in ("text", "input_text"):
        return {"type": "text", "text": expect(part.get("text"), str, f"{where}.text", "a string")}
    if kind == "image_url":
        image = expect(part.get("image_url"), dict, f"{where}.image_url", "an object")
        url = expect(image.get("url"), str, f"{where}.image_url.url", "a string")
        return {"type": "image", "source": image_source(url, f"{where}.image_url.url")}
    if kind == "input_image":
        url = expect(part.get("image_url"), str, f"{where}.image_url", "a string")
        return {"type": "image", "source": image_source(url, f"{where}.image_url")}
    if kind == "file":
        return _file_block(expect(part.get("file"), dict, f"{where}.file", "an object"), where)
    if kind in ("input_audio", "audio"):
        raise InvalidParam(f"{where}.type", "audio input is not supported by this gateway")
    raise InvalidParam(f"{where}.type", f"unknown content part type {str(kind)[:40]!r}")


def image_source(url: str, param: str) -> dict[str, Any]:
    """A data URL as Anthropic's base64 source, an http(s) URL as its url source (whether
    the route can take one is ``check_image_urls``'s to say)."""
    if url.startswith("data:"):
        media_type, data = _data_url(url, param)
        if media_type not in _IMAGE_TYPES:
            raise InvalidParam(param, f"images must be one of {', '.join(_IMAGE_TYPES)}")
        return {"type": "base64", "media_type": media_type, "data": data}
    if url.startswith(("https://", "http://")):
        return {"type": "url", "url": url}
    raise InvalidParam(param, "must be a data: URL or an http(s) URL")


def _data_url(url: str, param: str) -> tuple[str, str]:
    head, comma, data = url.partition(",")
    media_type, _, encoding = head[5:].partition(";")
    if not comma or encoding != "base64" or not data:
        raise InvalidParam(param, "a data URL must be data:<media type>;base64,<data>")
    return media_type.lower(), data


def image_urls(blocks: list[dict[str, Any]], param: str, field: str) -> list[str]:
    """Where the images given by URL are among ``blocks`` (one per part of ``param``)."""
    return [
        f"{param}[{n}].{field}"
        for n, block in enumerate(blocks)
        if block["type"] == "image" and block["source"]["type"] == "url"
    ]


def check_image_urls(urls: list[str], model: str, providers: frozenset[str]) -> None:
    """Refuse the first image given by URL (``urls``: where each is, as OpenAI names the
    parameter) when a provider serving ``model`` cannot take one (``IMAGE_URL_PROVIDERS``)."""
    unable = sorted(providers - IMAGE_URL_PROVIDERS)
    if urls and unable:
        raise InvalidParam(
            urls[0],
            f"model {model[:100]!r} can be served by {', '.join(unable)}, which takes images "
            "only inline: send the image as a data: URL (data:image/png;base64,...)",
        )


def _file_block(file: dict[str, Any], where: str) -> dict[str, Any]:
    return pdf_block(file.get("file_data"), f"{where}.file.file_data")


def pdf_block(data: Any, param: str) -> dict[str, Any]:
    """An inline file (a data URL, or bare base64) as Anthropic's PDF document block."""
    if not isinstance(data, str):
        raise InvalidParam(
            param, "only inline files (file_data) can be passed on: ids need a store"
        )
    if not data.startswith("data:"):
        data = "data:application/pdf;base64," + data
    media_type, encoded = _data_url(data, param)
    if media_type != "application/pdf":
        raise InvalidParam(param, "only PDF files are accepted")
    return {
        "type": "document",
        "source": {"type": "base64", "media_type": media_type, "data": encoded},
    }


def function_tool(spec: dict[str, Any], param: str) -> dict[str, Any]:
    """A function tool's ``name``/``description``/``parameters`` as an Anthropic tool."""
    name = expect(spec.get("name"), str, f"{param}.name", "a string")
    tool: dict[str, Any] = {"name": name}
    if spec.get("description") is not None:
        tool["description"] = expect(spec["description"], str, f"{param}.description", "a string")
    schema = spec.get("parameters")
    if schema is None:
        schema = {"type": "object", "properties": {}}
    tool["input_schema"] = expect(schema, dict, f"{param}.parameters", "a JSON Schema object")
    return tool


def tool_arguments(raw: Any, param: str) -> dict[str, Any]:
    """A tool call's ``arguments`` (a JSON string) as the object Anthropic's input is."""
    text = expect(raw, str, param, "a JSON string")
    if not text.strip():
        return {}
    try:
        value = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise InvalidParam(param, f"is not valid JSON ({str(exc)[:80]})") from None
    try:
        check_depth(value, MAX_ARGUMENT_DEPTH, text, param)
    except BadRequest:
        raise InvalidParam(param, f"nests more than {MAX_ARGUMENT_DEPTH} levels") from None
    return expect(value, dict, param, "a JSON object")  # type: ignore[no-any-return]


class ToolCalls:
    """The tool calls of a conversation as it is read: each must be answered by a result
    before the conversation goes on (both OpenAI and Anthropic refuse it otherwise), and each
    result must answer a call made before it."""

    def __init__(self) -> None:
        self._made: set[str] = set()
        self._open: dict[str, str] = {}  # call id -> where it was made

    def called(self, call_id: str, param: str) -> None:
        self._made.add(call_id)
        self._open[call_id] = param

    def answered(self, call_id: str, param: str) -> None:
        if call_id not in self._made:
            raise InvalidParam(param, f"{call_id[:64]!r} answers no earlier tool call")
        self._open.pop(call_id, None)

    def all_answered(self) -> None:
        """Before the conversation goes on (and at its end): no call left without a result."""
        for call_id, param in self._open.items():
            raise InvalidParam(
                param, f"tool call {call_id[:64]!r} has no result: send it right after the call"
            )


def tool_choice(choice: Any, parallel: Any, param: str = "tool_choice") -> dict[str, Any] | None:
    """OpenAI's ``tool_choice`` and ``parallel_tool_calls`` as Anthropic's ``tool_choice``."""
    if parallel is not None:
        expect(parallel, bool, "parallel_tool_calls", "a boolean")
    if choice is None or choice == "auto":
        chosen: dict[str, Any] = {"type": "auto"}
    elif choice == "none":
        return {"type": "none"}
    elif choice == "required":
        chosen = {"type": "any"}
    elif isinstance(choice, dict) and choice.get("type") == "function":
        named: dict[str, Any] = choice.get("function") or choice  # Chat's, or Responses' form
        expect(named, dict, f"{param}.function", "an object")
        name = expect(named.get("name"), str, f"{param}.function.name", "a string")
        chosen = {"type": "tool", "name": name}
    else:
        raise InvalidParam(
            param,
            "must be 'auto', 'none', 'required' or "
            '{"type": "function", "function": {"name": ...}}',
        )
    if parallel is False:
        chosen["disable_parallel_tool_use"] = True
    return chosen


def answer_id(message: dict[str, Any], prefix: str) -> str:
    """``prefix`` and the upstream message's id (which a support request can quote)."""
    upstream = message.get("id")
    if isinstance(upstream, str) and upstream:
        return prefix + upstream.removeprefix("msg_")
    return prefix + uuid.uuid4().hex


def finish_reason(stop_reason: Any) -> str:
    return _FINISH.get(stop_reason, "stop") if isinstance(stop_reason, str) else "stop"


def usage(anthropic: Any) -> dict[str, Any]:
    """Anthropic's usage as OpenAI's: prompt tokens count cached and cache-written tokens too
    (Anthropic's ``input_tokens`` leaves them out); cache reads are ``cached_tokens``."""
    counts = obj(anthropic)

    def count(name: str) -> int:
        return token_count(counts, name)

    cached = count("cache_read_input_tokens")
    prompt = count("input_tokens") + cached + count("cache_creation_input_tokens")
    completion = count("output_tokens")
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": cached},
        "completion_tokens_details": {"reasoning_tokens": 0},
    }


def token_count(usage: dict[str, Any], name: str) -> int:
    """One of Anthropic's usage counts; 0 when it is absent or not a count."""
    value = usage.get(name)
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def json_schema_of(spec: Any, param: str) -> dict[str, Any]:
    """The schema of a ``json_schema`` response format (``{"name", "schema", "strict"}``)."""
    spec = expect(spec, dict, param, "an object with 'name' and 'schema'")
    schema = spec.get("schema")
    if schema is None:
        return {"type": "object"}
    return dict(expect(schema, dict, f"{param}.schema", "a JSON Schema object"))


def answer_format(
    schema: dict[str, Any] | None, providers: frozenset[str], body: dict[str, Any]
) -> bool:
    """Ask for JSON in ``body`` (an Anthropic request): Anthropic's structured output when
    every provider of the route honours it and there is a schema, else a forced tool whose
    input is the answer. True when the forced tool carries it."""
    if schema is not None and providers <= STRUCTURED_PROVIDERS:
        body["output_config"] = {
            **(body.get("output_config") or {}),
            "format": {"type": "json_schema", "schema": schema},
        }
        return False
    if any(t.get("name") == RESPONSE_TOOL for t in body.get("tools") or []):
        raise InvalidParam(
            "tools", f"{RESPONSE_TOOL!r} is the gateway's own tool for a JSON answer: rename yours"
        )
    tool = {
        "name": RESPONSE_TOOL,
        "description": "Give the final answer as JSON matching this schema.",
        "input_schema": schema or {"type": "object"},
    }
    tools = body.setdefault("tools", [])
    tools.append(tool)
    choice = body.get("tool_choice") or {"type": "auto"}
    if choice["type"] == "none" or (choice["type"] == "auto" and len(tools) == 1):
        body["tool_choice"] = {"type": "tool", "name": RESPONSE_TOOL}
    elif choice["type"] == "auto":  # the model may call the client's tools before answering
        body["tool_choice"] = {**choice, "type": "any"}
    return True


def upstream_message(raw: bytes) -> dict[str, Any]:
    """A provider's answer as a Message the endpoints can translate: content blocks that are
    objects, text that is text, tool calls with an id, a name and an object of arguments.
    Anything else is a ``BadGateway`` (502) saying what was wrong, never a crash."""
    try:
        message = json.loads(raw)
    except (ValueError, RecursionError):
        raise BadGateway("the provider's answer is not JSON") from None
    if not isinstance(message, dict) or not isinstance(message.get("content"), list):
        raise BadGateway("the provider's answer is not an Anthropic message")
    for n, block in enumerate(message["content"]):
        problem = _block_problem(block)
        if problem:
            raise BadGateway(f"the provider's answer is malformed: content[{n}] {problem}")
    return message


def _block_problem(block: Any) -> str | None:
    if not isinstance(block, dict):
        return "is not an object"
    kind = block.get("type")
    if kind == "text" and not isinstance(block.get("text"), str):
        return "is a text block without text"
    if kind == "tool_use":
        if not (isinstance(block.get("id"), str) and isinstance(block.get("name"), str)):
            return "is a tool_use block without an id and a name"
        if not isinstance(block.get("input", {}), dict):
            return "is a tool_use block whose input is not an object"
    return None
