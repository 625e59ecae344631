"""``POST /v1/responses`` through the real OpenAI SDK (``client.responses.create``): the local
model offline, and the fake Anthropic upstream, asserting what reached it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import jsonschema
import pytest

from functions.gateway.providers.local import MARK
from tests.fakes.anthropic_server import Answer, FakeAnthropic, Fault
from tests.gateway.openai_support import WEATHER_TOOL, gateway_on, openai_client
from tests.gateway.support import ServedGateway
from tests.lazy_imports import openai

PERSON = {
    "type": "object",
    "properties": {
        "name": {"type": "string"},
        "age": {"type": "integer", "minimum": 0},
        "role": {"type": "string", "enum": ["admin", "user"]},
    },
    "required": ["name", "age", "role"],
    "additionalProperties": False,
}


@pytest.fixture(scope="module")
def served(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[ServedGateway, FakeAnthropic]]:
    with gateway_on(tmp_path_factory.mktemp("responses")) as both:
        yield both


@pytest.fixture(scope="module")
def gateway(served: tuple[ServedGateway, FakeAnthropic]) -> ServedGateway:
    return served[0]


@pytest.fixture(scope="module")
def upstream(served: tuple[ServedGateway, FakeAnthropic]) -> FakeAnthropic:
    return served[1]


@pytest.fixture(scope="module")
def client(gateway: ServedGateway) -> Iterator[openai.OpenAI]:
    with openai_client(gateway) as sdk:
        yield sdk


USER_ASKS: Any = {"role": "user", "content": "Take a photo."}


def last_request(upstream: FakeAnthropic) -> dict[str, Any]:
    body: dict[str, Any] = upstream.requests[-1].body
    return body


def test_a_string_input_is_answered_by_the_local_model(client: openai.OpenAI) -> None:
    response = client.responses.create(model="local", input="what is 2 + 3?")
    assert response.id.startswith("resp_")
    assert response.object == "response"
    assert response.status == "completed"
    assert response.output_text.startswith(MARK) and "= 5" in response.output_text
    [message] = response.output
    assert message.type == "message" and message.id.startswith("msg_")
    assert message.role == "assistant" and message.content[0].type == "output_text"
    assert response.usage is not None and response.usage.total_tokens > 0
    assert response.usage.input_tokens_details.cached_tokens == 0
    assert response.tools == [] and response.tool_choice == "auto"


def test_messages_and_instructions_reach_the_upstream_as_anthropic_turns(
    client: openai.OpenAI, upstream: FakeAnthropic
) -> None:
    upstream.enqueue(Answer.text("Paris.", input_tokens=12, output_tokens=3))
    response = client.responses.create(
        model="anthropic",
        instructions="Answer in one word.",
        input=[
            {"role": "developer", "content": "Be exact."},
            {"role": "user", "content": [{"type": "input_text", "text": "Capital of France?"}]},
        ],
        max_output_tokens=50,
        temperature=0.2,
        store=False,
        metadata={"ticket": "42"},
    )
    assert response.output_text == "Paris."
    assert response.metadata == {"ticket": "42"}
    assert response.usage is not None
    assert (response.usage.input_tokens, response.usage.output_tokens) == (12, 3)
    sent = last_request(upstream)
    assert sent["system"] == "Answer in one word.\n\nBe exact."
    assert sent["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "Capital of France?"}]}
    ]
    assert (sent["max_tokens"], sent["temperature"]) == (50, 0.2)
    assert "metadata" not in sent  # OpenAI's metadata is no Anthropic field


def test_a_tool_round_trip_through_the_upstream(
    client: openai.OpenAI, upstream: FakeAnthropic
) -> None:
    upstream.enqueue(Answer.tool_use("get_weather", {"city": "Oslo"}, tool_id="toolu_w1"))
    first = client.responses.create(
        model="anthropic",
        input="Weather in Oslo?",
        tools=[WEATHER_TOOL],
        tool_choice="required",
        parallel_tool_calls=False,
    )
    [call] = [item for item in first.output if item.type == "function_call"]
    assert (call.call_id, call.name, json.loads(call.arguments)) == (
        "toolu_w1",
        "get_weather",
        {"city": "Oslo"},
    )
    assert (call.id or "").startswith("fc_")
    sent = last_request(upstream)
    assert sent["tools"] == [
        {
            "name": "get_weather",
            "input_schema": WEATHER_TOOL["parameters"],
            "description": "The weather in a city today.",
            "strict": True,
        }
    ]
    assert sent["tool_choice"] == {"type": "any", "disable_parallel_tool_use": True}

    upstream.enqueue(Answer.text("Sunny in Oslo."))
    conversation: list[Any] = [
        {"role": "user", "content": "Weather in Oslo?"},
        *[item.model_dump(exclude_none=True) for item in first.output],
        {"type": "function_call_output", "call_id": call.call_id, "output": "sunny, 21 C"},
    ]
    second = client.responses.create(
        model="anthropic",
        input=conversation,
        tools=[WEATHER_TOOL],
    )
    assert second.output_text == "Sunny in Oslo."
    messages = last_request(upstream)["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant", "user"]
    assert messages[1]["content"] == [
        {"type": "tool_use", "id": "toolu_w1", "name": "get_weather", "input": {"city": "Oslo"}}
    ]
    assert messages[2]["content"] == [
        {"type": "tool_result", "tool_use_id": "toolu_w1", "content": "sunny, 21 C"}
    ]


def test_the_local_model_calls_a_tool_the_input_names(client: openai.OpenAI) -> None:
    response = client.responses.create(
        model="local",
        input="use get_weather for Oslo",
        tools=[WEATHER_TOOL],
    )
    [call] = [item for item in response.output if item.type == "function_call"]
    assert call.name == "get_weather" and json.loads(call.arguments) == {"city": "Oslo"}


def test_json_schema_from_the_local_model_is_valid_for_the_schema(client: openai.OpenAI) -> None:
    response = client.responses.create(
        model="local",
        input="Make up a person.",
        text={
            "format": {"type": "json_schema", "name": "person", "schema": PERSON, "strict": True}
        },
    )
    jsonschema.validate(json.loads(response.output_text), PERSON)
    assert response.text.format.type == "json_schema"  # type: ignore[union-attr]


def test_json_schema_reaches_the_upstream_as_its_output_format(
    client: openai.OpenAI, upstream: FakeAnthropic
) -> None:
    upstream.enqueue(Answer.text('{"name": "Ada", "age": 36, "role": "admin"}'))
    response = client.responses.create(
        model="anthropic",
        input="Ada, 36, admin.",
        text={"format": {"type": "json_schema", "name": "person", "schema": PERSON}},
    )
    assert json.loads(response.output_text)["name"] == "Ada"
    sent = last_request(upstream)
    assert sent["output_config"] == {"format": {"type": "json_schema", "schema": PERSON}}


def test_json_schema_where_bedrock_may_answer_is_a_forced_tool(
    client: openai.OpenAI, upstream: FakeAnthropic
) -> None:
    """Bedrock has no structured output here: on a route that can reach it the schema is a
    forced tool, whose input is the answer's text (and any text before it a preamble)."""
    ada = {"name": "Ada", "age": 36, "role": "admin"}
    upstream.enqueue(Answer.tool_use("json_response", ada, preamble="Here you are."))
    response = client.responses.create(
        model="anthropic-then-bedrock",
        input="Ada, 36, admin.",
        text={"format": {"type": "json_schema", "name": "person", "schema": PERSON}},
    )
    assert json.loads(response.output_text) == ada
    assert [item.type for item in response.output] == ["message"]
    sent = last_request(upstream)
    assert "output_config" not in sent
    assert sent["tools"][-1] == {
        "name": "json_response",
        "description": sent["tools"][-1]["description"],
        "input_schema": PERSON,
    }
    assert sent["tool_choice"] == {"type": "tool", "name": "json_response"}


def test_json_object_streams_as_text_from_the_forced_tool(
    client: openai.OpenAI, upstream: FakeAnthropic
) -> None:
    upstream.enqueue(Answer.tool_use("json_response", {"ok": True}, preamble="Sure."))
    with client.responses.stream(
        model="anthropic", input="JSON please", text={"format": {"type": "json_object"}}
    ) as stream:
        deltas = [e.delta for e in stream if e.type == "response.output_text.delta"]
        final = stream.get_final_response()
    assert json.loads("".join(deltas)) == {"ok": True} == json.loads(final.output_text)
    assert [item.type for item in final.output] == ["message"]


def test_an_answer_cut_at_max_output_tokens_is_incomplete(
    client: openai.OpenAI, upstream: FakeAnthropic
) -> None:
    upstream.enqueue(Answer.text("A long", stop_reason="max_tokens"))
    response = client.responses.create(model="anthropic", input="Go on", max_output_tokens=2)
    assert response.status == "incomplete"
    assert response.incomplete_details is not None
    assert response.incomplete_details.reason == "max_output_tokens"


@pytest.mark.parametrize(
    ("options", "param"),
    [
        ({"previous_response_id": "resp_123"}, "previous_response_id"),
        ({"store": True}, "store"),
        ({"conversation": "conv_1"}, "conversation"),
        ({"background": True}, "background"),
        ({"tools": [{"type": "web_search"}]}, "tools[0].type"),
        ({"tools": [{"type": "file_search", "vector_store_ids": ["vs_1"]}]}, "tools[0].type"),
    ],
)
def test_what_needs_a_store_or_runs_at_openai_is_refused_naming_it(
    client: openai.OpenAI, options: dict[str, Any], param: str
) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.responses.create(model="local", input="hi", **options)
    error = caught.value.body
    assert isinstance(error, dict) and error["param"] == param, error
    assert error["type"] == "invalid_request_error" and param in error["message"]


def test_an_upstream_rate_limit_is_the_sdks_rate_limit_error(
    client: openai.OpenAI, upstream: FakeAnthropic
) -> None:
    upstream.enqueue(Fault(429), Fault(429))  # the route's two attempts
    with pytest.raises(openai.RateLimitError) as caught:
        client.responses.create(model="anthropic", input="hi")
    assert caught.value.code == "rate_limit_exceeded"


def test_an_unknown_model_is_the_sdks_not_found_error(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError):
        client.responses.create(model="no-such-route", input="hi")


def test_images_reach_the_upstream_as_image_blocks(
    client: openai.OpenAI, upstream: FakeAnthropic
) -> None:
    upstream.enqueue(Answer.text("Two pictures."))
    parts: Any = [
        {"type": "input_text", "text": "Describe these."},
        {
            "type": "input_image",
            "image_url": "data:image/png;base64,iVBORw0KGgo=",
            "detail": "auto",
        },
        {"type": "input_image", "image_url": "https://example.com/cat.jpg", "detail": "low"},
    ]
    client.responses.create(model="anthropic", input=[{"role": "user", "content": parts}])
    [turn] = last_request(upstream)["messages"]
    assert turn["content"][1:] == [
        {
            "type": "image",
            "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="},
        },
        {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}},
    ]


def test_a_function_output_with_an_image_reaches_the_upstream_as_a_tool_result(
    client: openai.OpenAI, upstream: FakeAnthropic
) -> None:
    """What the Agents SDK sends for a tool that returns an image: text and image parts."""
    upstream.enqueue(Answer.text("A cat."))
    image = {"type": "input_image", "image_url": "data:image/png;base64,iVBORw0KGgo="}
    call: Any = {"type": "function_call", "call_id": "c1", "name": "snap", "arguments": "{}"}
    output: Any = {
        "type": "function_call_output",
        "call_id": "c1",
        "output": [{"type": "input_text", "text": "the photo:"}, image],
    }
    client.responses.create(model="anthropic", input=[USER_ASKS, call, output])
    result = last_request(upstream)["messages"][-1]["content"][0]
    assert result == {
        "type": "tool_result",
        "tool_use_id": "c1",
        "content": [
            {"type": "text", "text": "the photo:"},
            {
                "type": "image",
                "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="},
            },
        ],
    }


def test_pdf_files_reach_the_upstream_as_documents(
    client: openai.OpenAI, upstream: FakeAnthropic
) -> None:
    upstream.enqueue(Answer.text("A one-page PDF."))
    pdf = "data:application/pdf;base64,JVBERi0xLjQK"
    parts: Any = [
        {"type": "input_text", "text": "Summarise."},
        {"type": "input_file", "filename": "a.pdf", "file_data": pdf},
    ]
    client.responses.create(model="anthropic", input=[{"role": "user", "content": parts}])
    document = last_request(upstream)["messages"][0]["content"][1]
    source = {"type": "base64", "media_type": "application/pdf", "data": "JVBERi0xLjQK"}
    assert document == {"type": "document", "source": source}
