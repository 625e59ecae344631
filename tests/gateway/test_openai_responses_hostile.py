"""Hostile input on ``POST /v1/responses``: huge, deep, wrong types, function_call arguments
that are not JSON, unknown items. Each is a clear 4xx in OpenAI's error shape naming the
parameter; nothing crashes or hangs, and the gateway answers the next request."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.gateway.openai_support import gateway_on, openai_client
from tests.gateway.support import ServedGateway
from tests.lazy_imports import openai

MAX_BODY_BYTES = 256 * 1024
KEY = "hostile-test-key"
URL = "https://example.com/cat.png"


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServedGateway]:
    folder = tmp_path_factory.mktemp("hostile")
    limits = {"GATEWAY_MAX_BODY_BYTES": str(MAX_BODY_BYTES), "GATEWAY_API_KEYS": KEY}
    with gateway_on(folder, None, **limits) as (served, _):
        yield served


@pytest.fixture(scope="module")
def http(gateway: ServedGateway) -> httpx.Client:
    return gateway.http()


def post(http: httpx.Client, body: Any, key: str = KEY) -> httpx.Response:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    headers = {"content-type": "application/json", "authorization": f"Bearer {key}"}
    return http.post("/v1/responses", content=content, headers=headers)


def call_item(arguments: Any) -> dict[str, Any]:
    return {"type": "function_call", "call_id": "c1", "name": "f", "arguments": arguments}


def output_item(output: Any) -> dict[str, Any]:
    return {"type": "function_call_output", "call_id": "c1", "output": output}


def image_part(url: str) -> dict[str, Any]:
    return {"type": "input_image", "image_url": url}


def user_parts(*parts: Any) -> dict[str, Any]:
    return {"role": "user", "content": list(parts)}


def request(**fields: Any) -> dict[str, Any]:
    return {"model": "local", "input": "hi", **fields}


CASES: list[tuple[str, dict[str, Any], str]] = [
    ("no model", {"input": "hi"}, "model"),
    ("model a number", request(model=7), "model"),
    ("input a number", request(input=5), "input"),
    ("input empty", request(input=[]), "input"),
    ("an item a string", request(input=["hi"]), "input[0]"),
    ("an unknown item", request(input=[{"type": "computer_call_output"}]), "input[0].type"),
    ("a stored item", request(input=[{"type": "item_reference", "id": "msg_1"}]), "input[0]"),
    ("a tool role", request(input=[{"role": "tool", "content": "x"}]), "input[0].role"),
    ("content a number", request(input=[{"role": "user", "content": 3}]), "input[0].content"),
    (
        "an unknown part",
        request(input=[{"role": "user", "content": [{"type": "input_audio"}]}]),
        "input[0].content[0].type",
    ),
    (
        "a part without text",
        request(input=[{"role": "user", "content": [{"type": "input_text", "text": 1}]}]),
        "input[0].content[0].text",
    ),
    (
        "an image by file id",
        request(input=[{"role": "user", "content": [{"type": "input_image", "file_id": "f"}]}]),
        "input[0].content[0].image_url",
    ),
    ("arguments not JSON", request(input=[call_item("{not json")]), "input[0].arguments"),
    ("arguments a list", request(input=[call_item("[1, 2]")]), "input[0].arguments"),
    ("arguments an object", request(input=[call_item({"a": 1})]), "input[0].arguments"),
    (
        "arguments nested deep",
        request(input=[call_item('{"a":' * 200 + "1" + "}" * 200)]),
        "input[0].arguments",
    ),
    (
        "arguments nested past the parser",
        request(input=[call_item("[" * 100_000 + "]" * 100_000)]),
        "input[0].arguments",
    ),
    (
        "a call without call_id",
        request(input=[{"type": "function_call", "name": "f", "arguments": "{}"}]),
        "input[0].call_id",
    ),
    (
        "an output that is an object",
        request(input=[{"type": "function_call_output", "call_id": "c", "output": {"a": 1}}]),
        "input[0].output",
    ),
    ("tools an object", request(tools={"type": "function"}), "tools"),
    ("a tool a string", request(tools=["get_weather"]), "tools[0]"),
    ("a tool without a name", request(tools=[{"type": "function"}]), "tools[0].name"),
    (
        "parameters a list",
        request(tools=[{"type": "function", "name": "f", "parameters": [1]}]),
        "tools[0].parameters",
    ),
    ("a computer tool", request(tools=[{"type": "computer_use_preview"}]), "tools[0].type"),
    (
        "tool_choice bogus",
        request(tools=[{"type": "function", "name": "f"}], tool_choice=3),
        "tool_choice",
    ),
    ("tool_choice without tools", request(tool_choice="required"), "tool_choice"),
    ("text.format bogus", request(text={"format": {"type": "yaml"}}), "text.format.type"),
    (
        "schema a string",
        request(text={"format": {"type": "json_schema", "schema": "x"}}),
        "text.format.schema",
    ),
    ("max_output_tokens zero", request(max_output_tokens=0), "max_output_tokens"),
    ("max_output_tokens a string", request(max_output_tokens="10"), "max_output_tokens"),
    ("max_output_tokens a bool", request(max_output_tokens=True), "max_output_tokens"),
    ("temperature a string", request(temperature="hot"), "temperature"),
    ("stream a string", request(stream="yes"), "stream"),
    ("metadata a list", request(metadata=["a"]), "metadata"),
    ("instructions a list", request(instructions=["be brief"]), "instructions"),
    ("temperature NaN", request(temperature=float("nan")), "temperature"),
    ("log probabilities", request(top_logprobs=3), "top_logprobs"),
    (
        "a file by id",
        request(input=[user_parts({"type": "input_file", "file_id": "file-1"})]),
        "input[0].content[0].file_data",
    ),
    (
        "a file that is no PDF",
        request(
            input=[user_parts({"type": "input_file", "file_data": "data:text/csv;base64,YQ=="})]
        ),
        "input[0].content[0].file_data",
    ),
    ("a call left without its output", request(input=[call_item("{}")]), "input[0].call_id"),
    (
        "a user message before a call's output",
        request(input=[call_item("{}"), {"role": "user", "content": "and?"}]),
        "input[0].call_id",
    ),
    (
        "an output answering no call",
        request(input=[{"type": "function_call_output", "call_id": "c9", "output": "x"}]),
        "input[0].call_id",
    ),
    (
        "an output with an image by URL where Bedrock may answer",
        request(model="default", input=[call_item("{}"), output_item([image_part(URL)])]),
        "input[1].output[0].image_url",
    ),
    (
        "an image in a developer message",
        request(input=[{"role": "developer", "content": [image_part(URL)]}]),
        "input[0].content[0].type",
    ),
    (
        "an image of HTML",
        request(input=[user_parts(image_part("data:text/html;base64,PGI+"))]),
        "input[0].content[0].image_url",
    ),
    (
        "an image with no data",
        request(input=[user_parts(image_part("data:image/png;base64,"))]),
        "input[0].content[0].image_url",
    ),
    (
        "an image URL where Bedrock may answer",
        request(model="default", input=[user_parts(image_part(URL))]),
        "input[0].content[0].image_url",
    ),
]


@pytest.mark.parametrize(("body", "param"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_a_wrong_field_is_a_400_naming_it(http: httpx.Client, body: Any, param: str) -> None:
    response = post(http, body)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["param"] == param and error["message"].startswith(param), error
    assert error["type"] == "invalid_request_error"


@pytest.mark.parametrize(
    "body",
    [
        b"[]",
        b'"hi"',
        b"{not json",
        b"",
        b'{"model": "local", "input": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
    ],
    ids=["a list", "a string", "not JSON", "empty", "nested past the parser"],
)
def test_a_body_that_is_no_request_is_a_400(http: httpx.Client, body: bytes) -> None:
    response = post(http, body)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["message"]


def test_a_body_over_the_limit_is_a_413(http: httpx.Client) -> None:
    response = post(http, request(input="x" * MAX_BODY_BYTES))
    assert response.status_code == 413, response.text


def test_many_items_and_tools_within_the_limit_are_answered(http: httpx.Client) -> None:
    turns = [{"role": "user", "content": f"turn {n}"} for n in range(2000)]
    tools = [{"type": "function", "name": f"tool_{n}"} for n in range(500)]
    response = post(
        http, request(input=[*turns, {"role": "user", "content": "what is 2+2?"}], tools=tools)
    )
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "completed"
    assert post(http, request()).status_code == 200  # and the gateway still answers


def test_a_wrong_key_is_the_sdks_authentication_error(gateway: ServedGateway) -> None:
    with (
        openai_client(gateway, api_key="not-the-key") as client,
        pytest.raises(openai.AuthenticationError) as caught,
    ):
        client.responses.create(model="local", input="hi")
    assert caught.value.code == "invalid_api_key"
    with openai_client(gateway, api_key=KEY) as client:
        assert client.responses.create(model="local", input="hi").status == "completed"


def test_an_image_url_is_taken_where_every_provider_can_take_it(http: httpx.Client) -> None:
    """The local model reads no image, by URL or inline: a URL costs it nothing."""
    response = post(http, request(input=[user_parts(image_part(URL))]))
    assert response.status_code == 200, response.text
    inline = image_part("data:image/png;base64,iVBORw0KGgo=")
    assert post(http, request(model="default", input=[user_parts(inline)])).status_code == 200


def test_an_assistants_text_beside_its_calls_is_taken(http: httpx.Client) -> None:
    """A Response's output can put text after a call; sent back as input, it is one turn."""
    said = {"role": "assistant", "content": [{"type": "output_text", "text": "Checking."}]}
    items = [{"role": "user", "content": "hi"}, call_item("{}"), said, output_item("42")]
    assert post(http, request(input=items)).status_code == 200
