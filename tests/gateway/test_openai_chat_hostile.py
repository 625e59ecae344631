"""Hostile input on ``/v1/chat/completions``: every refusal is a 4xx in OpenAI's error shape
naming what is wrong, answered at once; nothing crashes, hangs or reaches a provider."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.gateway.support import module_gateway

PATH = "/v1/chat/completions"
LIMIT = 200_000
HI = [{"role": "user", "content": "hi"}]
URL = "https://example.com/cat.png"
CALLS_F = {
    "role": "assistant",
    "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}],
}
"""An assistant message calling ``f``, whose result must follow it."""


@pytest.fixture(scope="module")
def http(tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    folder = tmp_path_factory.mktemp("hostile")
    with module_gateway(folder, GATEWAY_MAX_BODY_BYTES=str(LIMIT)) as served:
        yield served.http()


def refused(response: httpx.Response, status: int = 400) -> dict[str, Any]:
    """The OpenAI-shaped error of a refusal, checking the shape on the way."""
    assert response.status_code == status, response.text[:300]
    error: dict[str, Any] = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}, error
    assert len(error["message"]) < 400  # what was sent is not echoed back whole
    return error


def post(http: httpx.Client, body: Any) -> httpx.Response:
    return http.post(PATH, content=json.dumps(body), headers={"content-type": "application/json"})


def file_message(file: dict[str, Any]) -> dict[str, Any]:
    return {"role": "user", "content": [{"type": "file", "file": file}]}


def image_message(url: str) -> dict[str, Any]:
    parts = [
        {"type": "text", "text": "what is this?"},
        {"type": "image_url", "image_url": {"url": url}},
    ]
    return {"role": "user", "content": parts}


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


def test_a_body_over_the_limit_is_413(http: httpx.Client) -> None:
    body = {"model": "local", "messages": [{"role": "user", "content": "x" * LIMIT}]}
    refused(post(http, body), 413)


def test_a_body_that_is_not_json_is_refused(http: httpx.Client) -> None:
    response = http.post(PATH, content=b"{not json", headers={"content-type": "application/json"})
    refused(response)


def test_a_deeply_nested_body_is_refused(http: httpx.Client) -> None:
    raw = '{"model": "local", "messages": ' + nested(50_000) + "}"
    response = http.post(PATH, content=raw, headers={"content-type": "application/json"})
    refused(response)


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ([1, 2], "body"),
        ({"model": 7, "messages": HI}, "model"),
        ({"model": "", "messages": HI}, "model"),
        ({"model": "local", "messages": {"role": "user"}}, "messages"),
        ({"model": "local", "messages": ["hi"]}, "messages[0]"),
        ({"model": "local", "messages": [{"role": ["user"], "content": "x"}]}, "messages[0].role"),
        ({"model": "local", "messages": [{"role": "r" * 100_000}]}, "messages[0].role"),
        (
            {"model": "local", "messages": [{"role": "user", "content": {"a": 1}}]},
            "messages[0].content",
        ),
        (
            {"model": "local", "messages": [{"role": "user", "content": [None]}]},
            "messages[0].content[0]",
        ),
        (
            {
                "model": "local",
                "messages": [{"role": "system", "content": [{"type": "image_url"}]}],
            },
            "messages[0].content[0].type",
        ),
        (
            {"model": "local", "messages": [{"role": "assistant", "tool_calls": "x"}]},
            "messages[0].tool_calls",
        ),
        (
            {"model": "local", "messages": [{"role": "assistant", "tool_calls": [{"id": 1}]}]},
            "messages[0].tool_calls[0].function",
        ),
        ({"model": "local", "messages": HI, "tools": {"a": 1}}, "tools"),
        (
            {"model": "local", "messages": HI, "tools": [{"type": "function", "function": "f"}]},
            "tools[0].function",
        ),
        (
            {
                "model": "local",
                "messages": HI,
                "tools": [{"type": "function", "function": {"name": "f", "parameters": "x"}}],
            },
            "tools[0].function.parameters",
        ),
        (
            {"model": "local", "messages": HI, "tool_choice": {"type": "function", "function": 3}},
            "tool_choice.function",
        ),
        ({"model": "local", "messages": HI, "parallel_tool_calls": "no"}, "parallel_tool_calls"),
        ({"model": "local", "messages": HI, "stream_options": []}, "stream_options"),
        ({"model": "local", "messages": HI, "stop": [1]}, "stop[0]"),
        ({"model": "local", "messages": HI, "max_tokens": True}, "max_tokens"),
        ({"model": "local", "messages": HI, "max_completion_tokens": 1e9}, "max_completion_tokens"),
        ({"model": "local", "messages": HI, "n": "2"}, "n"),
        ({"model": "local", "messages": HI, "response_format": "json"}, "response_format"),
        (
            {
                "model": "local",
                "messages": HI,
                "response_format": {
                    "type": "json_schema",
                    "json_schema": {"name": "x", "schema": []},
                },
            },
            "response_format.json_schema.schema",
        ),
        ({"model": "local", "messages": HI, "temperature": float("nan")}, "temperature"),
        ({"model": "local", "messages": HI, "top_p": float("inf")}, "top_p"),
        ({"model": "local", "messages": HI, "tool_choice": "required"}, "tool_choice"),
        ({"model": "local", "messages": HI, "web_search_options": {}}, "web_search_options"),
        ({"model": "local", "messages": HI, "logit_bias": {"50256": -100}}, "logit_bias"),
        ({"model": "local", "messages": HI, "logit_bias": [1]}, "logit_bias"),
        (
            {"model": "local", "messages": [file_message({"file_id": "file-1"})]},
            "messages[0].content[0].file.file_data",
        ),
        (
            {
                "model": "local",
                "messages": [file_message({"file_data": "data:text/csv;base64,YQ=="})],
            },
            "messages[0].content[0].file.file_data",
        ),
        (
            {
                "model": "local",
                "messages": HI,
                "tools": [{"type": "function", "function": {"name": "json_response"}}],
                "response_format": {"type": "json_object"},
            },
            "tools",
        ),
        (
            {"model": "local", "messages": [*HI, {"role": "tool", "tool_call_id": "c9"}]},
            "messages[1].tool_call_id",
        ),
        (
            {"model": "local", "messages": [*HI, CALLS_F, HI[0]]},
            "messages[1].tool_calls[0].id",
        ),
        ({"model": "local", "messages": [*HI, CALLS_F]}, "messages[1].tool_calls[0].id"),
        (
            {"model": "local", "messages": [*HI, CALLS_F, CALLS_F]},
            "messages[1].tool_calls[0].id",
        ),
        (
            {"model": "local", "messages": [image_message("data:image/png;base64,")]},
            "messages[0].content[1].image_url.url",
        ),
        (
            {"model": "local", "messages": [image_message("data:text/html;base64,PGI+")]},
            "messages[0].content[1].image_url.url",
        ),
        (
            {"model": "default", "messages": [image_message("https://example.com/a.png")]},
            "messages[0].content[1].image_url.url",
        ),
    ],
)
def test_wrong_types_are_refused_naming_the_field(
    http: httpx.Client, body: Any, param: str
) -> None:
    assert refused(post(http, body))["param"] == param


@pytest.mark.parametrize(
    "arguments",
    ["{not json", "[1]", "NaN", '"a string"', nested(10_000), '{"a": ' + nested(100) + "}"],
)
def test_tool_call_arguments_that_are_no_json_object_are_refused(
    http: httpx.Client, arguments: str
) -> None:
    call = {"id": "c1", "type": "function", "function": {"name": "f", "arguments": arguments}}
    body = {"model": "local", "messages": [*HI, {"role": "assistant", "tool_calls": [call]}]}
    error = refused(post(http, body))
    assert error["param"] == "messages[1].tool_calls[0].function.arguments"


def test_many_messages_are_read_in_linear_time(http: httpx.Client) -> None:
    turns = [{"role": ("user", "assistant")[n % 2], "content": "w"} for n in range(4_000)]
    body = {"model": "local", "messages": [*turns, {"role": "user", "content": "What is 1+1?"}]}
    response = post(http, body)
    assert response.status_code == 200, response.text[:300]
    assert "1+1 = 2" in response.json()["choices"][0]["message"]["content"].replace(" + ", "+")


def test_a_schema_that_asks_for_too_much_is_refused(http: httpx.Client) -> None:
    wide = {
        "type": "array",
        "minItems": 1000,
        "items": {"type": "array", "minItems": 1000, "items": {"type": "integer"}},
    }
    schema = {"type": "object", "properties": {"a": wide}, "required": ["a"]}
    body = {
        "model": "local",
        "messages": HI,
        "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": schema}},
    }
    assert "values" in refused(post(http, body))["message"]


def test_an_image_url_is_refused_only_where_a_provider_cannot_fetch_it(
    http: httpx.Client,
) -> None:
    """``default`` can fail over to Bedrock, which takes images inline only: a URL is refused
    there naming Bedrock, and a data URL is answered; the local model reads no image at all,
    so a URL costs it nothing."""
    error = refused(post(http, {"model": "bedrock", "messages": [image_message(URL)]}))
    assert "bedrock" in error["message"] and "data: URL" in error["message"]
    inline = image_message("data:image/png;base64,iVBORw0KGgo=")
    assert post(http, {"model": "default", "messages": [inline]}).status_code == 200
    assert post(http, {"model": "local", "messages": [image_message(URL)]}).status_code == 200


def test_a_tool_result_answering_an_earlier_call_is_taken(http: httpx.Client) -> None:
    call = {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
    body = {
        "model": "local",
        "messages": [
            *HI,
            {"role": "assistant", "tool_calls": [call]},
            {"role": "tool", "tool_call_id": "c1", "content": "42"},
        ],
    }
    assert post(http, body).status_code == 200


@pytest.mark.parametrize("path", [PATH, "/v1/responses"], ids=["chat", "responses"])
def test_a_tool_schema_nested_past_the_limit_is_refused_before_it_goes_upstream(
    http: httpx.Client, path: str
) -> None:
    """Nested ~950 levels, a body parsed and then failed to encode for the provider (a 502):
    the gateway refuses it as parsed, past 256 levels, and takes what real schemas nest."""

    def body(depth: int) -> str:
        schema = '{"type": "object", "properties": {"a": ' * depth + "{}" + "}}" * depth
        if path == PATH:
            tool = '{"type": "function", "function": {"name": "f", "parameters": ' + schema + "}}"
            asked = '"messages": [{"role": "user", "content": "hi"}]'
        else:
            tool = '{"type": "function", "name": "f", "parameters": ' + schema + "}"
            asked = '"input": "hi"'
        return '{"model": "local", ' + asked + ', "tools": [' + tool + "]}"

    headers = {"content-type": "application/json"}
    assert http.post(path, content=body(100), headers=headers).status_code == 200
    deep = http.post(path, content=body(470), headers=headers)
    assert "nested too deeply" in refused(deep)["message"]
