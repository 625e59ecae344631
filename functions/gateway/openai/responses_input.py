"""A ``POST /v1/responses`` request as the gateway's internal Anthropic Messages request.

The stateless subset current OpenAI clients (the OpenAI SDK, the Agents SDK) send: ``input``
as a string or items (messages, ``function_call``, ``function_call_output``), ``instructions``,
function ``tools``, ``tool_choice``, ``parallel_tool_calls``, ``text.format``,
``max_output_tokens``, ``temperature``, ``top_p``. What needs state the gateway does not keep
(``previous_response_id``, ``store: true``, ``conversation``, ``background``, stored prompts)
or tools that run at OpenAI (web search, file search, computer use...) is refused with a 400
naming the parameter, never ignored. Fields that change nothing here (``include``,
``truncation``, ``reasoning``, ``service_tier``...) pass unread.

Each check names the parameter as OpenAI does (``input[2].arguments``), so a client sees what
to fix; sizes and nesting are bounded before this runs (the edge, the JSON parser).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from functions.gateway.openai import translate as tr
from functions.gateway.openai.errors import InvalidParam
from shared.errors import BadRequest

DEFAULT_MAX_TOKENS = 4096
"""``max_tokens`` for Anthropic when the request sets no ``max_output_tokens``."""
STATEFUL = {
    "previous_response_id": "the gateway keeps no responses: send the whole conversation as input",
    "conversation": "the gateway keeps no conversations: send the whole conversation as input",
    "prompt": "the gateway keeps no stored prompts: send instructions and input instead",
}
"""Fields that need a store the gateway does not have, and what to do instead."""
MESSAGE_ROLES = ("user", "assistant", "system", "developer")
TEXT_PARTS = ("input_text", "output_text", "text", "summary_text", "refusal")


class ParamError(InvalidParam):
    """A Responses API field that is wrong, or asks for what the gateway does not serve."""

    def __init__(self, param: str, problem: str, code: str = "invalid_value") -> None:
        super().__init__(param, problem, code)


def unsupported(param: str, problem: str) -> ParamError:
    return ParamError(param, problem, code="unsupported_parameter")


@dataclass
class ResponsesRequest:
    """What a Responses request asks of the router, and what its answer echoes back."""

    model: str
    messages_body: dict[str, Any]
    """The Anthropic Messages request (``model``, ``messages``, ``max_tokens``...)."""
    stream: bool = False
    echo: dict[str, Any] = field(default_factory=dict)
    """The request's fields a Response object repeats (tools, tool_choice, instructions...)."""
    json_tool: bool = False
    """The answer arrives as the input of ``translate.RESPONSE_TOOL`` (``text.format`` on a
    route without structured output, or ``json_object``): its input is the answer's text."""


def translate_request(body: Any, providers: tr.Providers) -> ResponsesRequest:
    """``body`` (a parsed ``POST /v1/responses``) as a Messages request; ``ParamError``
    naming the first field that is wrong or not served by ``model``'s providers."""
    if not isinstance(body, dict):
        raise BadRequest(f"request body must be a JSON object, got {tr.type_name(body)}")
    _refuse_stateful(body)
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise ParamError("model", "field required (a non-empty string naming a route or model)")
    stream = body.get("stream", False)
    tr.expect(stream, (bool, type(None)), "stream", "a boolean")
    route_providers = providers(model)
    system, messages, urls = _conversation(body.get("input"))
    tr.check_image_urls(urls, model, route_providers)
    instructions = body.get("instructions")
    if instructions is not None:
        system.insert(0, tr.expect(instructions, str, "instructions", "a string"))
    out: dict[str, Any] = {
        "model": model,
        "messages": messages,
        "max_tokens": _max_tokens(body.get("max_output_tokens")),
    }
    if system:
        out["system"] = "\n\n".join(system)
    for name in ("temperature", "top_p"):
        if body.get(name) is not None:
            out[name] = tr.number(body[name], name)
    tool_fields, parallel = _tool_fields(body)
    out.update(tool_fields)
    wanted, schema = _text_format(body.get("text"))
    json_tool = wanted and tr.answer_format(schema, route_providers, out)
    metadata = body.get("metadata")
    tr.expect(metadata, (dict, type(None)), "metadata", "an object of string values")
    return ResponsesRequest(model, out, bool(stream), _echo(body, parallel), json_tool)


def _tool_fields(body: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    """Anthropic's ``tools`` and ``tool_choice``, and whether parallel calls are allowed."""
    tools = _tools(body.get("tools"))
    parallel = body.get("parallel_tool_calls")
    tr.expect(parallel, (bool, type(None)), "parallel_tool_calls", "a boolean")
    if tools:
        return {
            "tools": tools,
            "tool_choice": _tool_choice(body.get("tool_choice"), parallel is not False),
        }, parallel is not False
    if body.get("tool_choice") not in (None, "auto", "none"):
        raise ParamError("tool_choice", "names a tool, but the request offers no tools")
    return {}, parallel is not False


def _refuse_stateful(body: dict[str, Any]) -> None:
    for name, instead in STATEFUL.items():
        if body.get(name) is not None:
            raise unsupported(name, f"not supported: {instead}")
    if body.get("store") is True:
        raise unsupported(
            "store", "store: true is not supported (the gateway keeps no responses); send false"
        )
    if body.get("background"):
        raise unsupported("background", "background responses are not supported")
    if body.get("top_logprobs"):  # as on /v1/chat/completions
        raise unsupported(
            "top_logprobs", "log probabilities are not available from these providers"
        )


def _max_tokens(value: Any) -> int:
    if value is None:
        return DEFAULT_MAX_TOKENS
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ParamError("max_output_tokens", f"must be a positive integer, got {value!r:.40}")
    return value


def _conversation(value: Any) -> tuple[list[str], list[dict[str, Any]], list[str]]:
    """The system texts, the user/assistant turns of ``input`` (consecutive turns of one
    role joined, so parallel tool calls and their results each make one turn), and where the
    images given by URL are."""
    if isinstance(value, str):
        return [], [{"role": "user", "content": value}], []
    if not isinstance(value, list) or not value:
        raise ParamError("input", "field required (a string or a non-empty list of items)")
    system: list[str] = []
    turns: list[dict[str, Any]] = []
    urls: list[str] = []
    calls = tr.ToolCalls()
    for index, item in enumerate(value):
        where = f"input[{index}]"
        if not isinstance(item, dict):
            raise ParamError(where, f"must be an object, got {tr.type_name(item)}")
        turn = _item(item, where, calls)
        if turn is None:
            continue
        role, blocks = turn
        if role == "system":
            system.append(_text_only(blocks, f"{where}.content"))
            continue
        urls += tr.image_urls(blocks, f"{where}.content", "image_url")
        if blocks and isinstance(blocks[0].get("content"), list):  # function_call_output parts
            urls += tr.image_urls(blocks[0]["content"], f"{where}.output", "image_url")
        if turns and turns[-1]["role"] == role:
            turns[-1]["content"].extend(blocks)
        else:
            turns.append({"role": role, "content": blocks})
    calls.all_answered()
    if not turns:
        raise ParamError("input", "holds no user or assistant message")
    return system, turns, urls


def _item(
    item: dict[str, Any], where: str, calls: tr.ToolCalls
) -> tuple[str, list[dict[str, Any]]] | None:
    kind = item.get("type", "message")
    if kind == "message":
        role = item.get("role")
        if role not in MESSAGE_ROLES:
            raise ParamError(
                f"{where}.role", f"must be one of {', '.join(MESSAGE_ROLES)}, got {role!r:.40}"
            )
        role = "system" if role == "developer" else role
        if role == "user":  # an assistant's text may sit beside its calls, in one turn
            calls.all_answered()
        return role, _content(item.get("content"), f"{where}.content")
    if kind == "function_call":
        call = _tool_use(item, where)
        calls.called(call["id"], f"{where}.call_id")
        return "assistant", [call]
    if kind == "function_call_output":
        call_id = tr.expect(item.get("call_id"), str, f"{where}.call_id", "a string")
        output = item.get("output")
        if isinstance(output, list):  # text and images, as a tool_result holds them
            output = _content(output, f"{where}.output")
        else:
            tr.expect(output, str, f"{where}.output", "a string or a list of content parts")
        calls.answered(call_id, f"{where}.call_id")
        return "user", [{"type": "tool_result", "tool_use_id": call_id, "content": output}]
    if kind == "reasoning":
        return None  # another model's reasoning: no Anthropic turn can carry it
    if kind == "item_reference":
        raise unsupported(where, "item_reference needs stored items; send the item itself")
    raise ParamError(
        f"{where}.type",
        f"{str(kind)[:40]!r} is not an input item the gateway serves "
        "(message, function_call, function_call_output)",
    )


def _tool_use(item: dict[str, Any], where: str) -> dict[str, Any]:
    call_id = tr.expect(item.get("call_id"), str, f"{where}.call_id", "a string")
    name = tr.expect(item.get("name"), str, f"{where}.name", "a string")
    arguments = tr.tool_arguments(item.get("arguments"), f"{where}.arguments")
    return {"type": "tool_use", "id": call_id, "name": name, "input": arguments}


def _content(value: Any, where: str) -> list[dict[str, Any]]:
    if isinstance(value, str):
        return [{"type": "text", "text": value}]
    if not isinstance(value, list):
        raise ParamError(
            where, f"must be a string or a list of content parts, got {tr.type_name(value)}"
        )
    return [_part(part, f"{where}[{n}]") for n, part in enumerate(value)]


def _part(part: Any, where: str) -> dict[str, Any]:
    if not isinstance(part, dict):
        raise ParamError(where, f"must be an object, got {tr.type_name(part)}")
    kind = part.get("type")
    if kind in TEXT_PARTS:
        key = "refusal" if kind == "refusal" else "text"
        return {"type": "text", "text": tr.expect(part.get(key), str, f"{where}.{key}", "a string")}
    if kind == "input_image":
        return _image(part, where)
    if kind == "input_file":
        return tr.pdf_block(part.get("file_data"), f"{where}.file_data")
    raise ParamError(
        f"{where}.type",
        f"{str(kind)[:40]!r} is not a content part the gateway "
        "serves (input_text, output_text, input_image, input_file)",
    )


def _image(part: dict[str, Any], where: str) -> dict[str, Any]:
    url = part.get("image_url")
    if part.get("file_id") is not None or not isinstance(url, str):
        raise ParamError(
            f"{where}.image_url", "must be a data: or https: URL (file ids need a store)"
        )
    return {"type": "image", "source": tr.image_source(url, f"{where}.image_url")}


def _text_only(blocks: list[dict[str, Any]], param: str) -> str:
    """The text of ``blocks`` (the parts of ``param``), where only text can be passed on."""
    for n, block in enumerate(blocks):
        if block["type"] != "text":
            raise ParamError(f"{param}[{n}].type", "takes text parts only here")
    return _plain_text(blocks)


def _plain_text(blocks: list[dict[str, Any]]) -> str:
    return "\n".join(block["text"] for block in blocks if block.get("type") == "text")


def _tools(value: Any) -> list[dict[str, Any]]:
    if value is None:
        return []
    tr.expect(value, list, "tools", "a list of tools")
    tools = []
    for index, tool in enumerate(value):
        where = f"tools[{index}]"
        if not isinstance(tool, dict):
            raise ParamError(where, f"must be an object, got {tr.type_name(tool)}")
        if tool.get("type") != "function":
            raise unsupported(
                f"{where}.type",
                f"{str(tool.get('type'))[:40]!r} tools run at "
                "OpenAI; the gateway serves function tools only",
            )
        name = tr.expect(tool.get("name"), str, f"{where}.name", "a string")
        parameters = tool.get("parameters") or {"type": "object", "properties": {}}
        tr.expect(parameters, dict, f"{where}.parameters", "a JSON Schema object")
        converted: dict[str, Any] = {"name": name, "input_schema": parameters}
        if tool.get("description") is not None:
            converted["description"] = tr.expect(
                tool["description"], str, f"{where}.description", "a string"
            )
        if tool.get("strict") is True:
            converted["strict"] = True
        tools.append(converted)
    return tools


def _tool_choice(value: Any, parallel: bool) -> dict[str, Any]:
    choice: dict[str, Any]
    if value in (None, "auto"):
        choice = {"type": "auto"}
    elif value == "none":
        return {"type": "none"}
    elif value == "required":
        choice = {"type": "any"}
    elif isinstance(value, dict) and value.get("type") == "function":
        name = tr.expect(value.get("name"), str, "tool_choice.name", "a string")
        choice = {"type": "tool", "name": name}
    else:
        raise ParamError("tool_choice", "must be auto, none, required or {type: function, name}")
    if not parallel:
        choice["disable_parallel_tool_use"] = True
    return choice


def _text_format(value: Any) -> tuple[bool, dict[str, Any] | None]:
    """Whether ``text.format`` asks for JSON, and the schema it must match (None: any
    object); ``translate.answer_format`` asks the route for it."""
    if value is None:
        return False, None
    tr.expect(value, dict, "text", "an object")
    fmt = value.get("format")
    if fmt is None:
        return False, None
    tr.expect(fmt, dict, "text.format", "an object")
    kind = fmt.get("type")
    if kind == "text":
        return False, None
    if kind == "json_object":
        return True, None
    if kind == "json_schema":
        schema = tr.expect(fmt.get("schema"), dict, "text.format.schema", "a JSON Schema object")
        return True, schema
    raise ParamError("text.format.type", "must be text, json_object or json_schema")


def _echo(body: dict[str, Any], parallel: bool) -> dict[str, Any]:
    """The request fields a Response repeats, with OpenAI's defaults where absent."""
    return {
        "instructions": body.get("instructions"),
        "metadata": body.get("metadata") or {},
        "tools": body.get("tools") or [],
        "tool_choice": body.get("tool_choice") or "auto",
        "parallel_tool_calls": parallel,
        "temperature": body.get("temperature"),
        "top_p": body.get("top_p"),
        "max_output_tokens": body.get("max_output_tokens"),
        "text": body.get("text") or {"format": {"type": "text"}},
    }
