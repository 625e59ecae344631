"""``POST /v1/chat/completions`` through the real OpenAI Python SDK: the fake Anthropic upstream
(asserting what reaches it) and the local model, tools both ways, errors as the SDK's own
exception classes, and requests that cannot be honoured refused naming the field."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import jsonschema
import pytest
from pydantic import BaseModel, Field

from tests.fakes.anthropic_server import Answer, FakeAnthropic, Fault, Reply
from tests.gateway.support import GATEWAY_KEY, ServedGateway, module_gateway
from tests.lazy_imports import openai

CALCULATOR = {
    "type": "function",
    "function": {
        "name": "calculator",
        "description": "Evaluate an arithmetic expression exactly.",
        "parameters": {
            "type": "object",
            "properties": {"expression": {"type": "string"}},
            "required": ["expression"],
        },
    },
}


@pytest.fixture(scope="module")
def upstream() -> Iterator[FakeAnthropic]:
    with FakeAnthropic() as fake:
        yield fake


@pytest.fixture(scope="module")
def gateway(upstream: FakeAnthropic, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    folder: Path = tmp_path_factory.mktemp("chat")
    config = {"aliases": {"gpt-4o*": "local"}}
    with module_gateway(folder, config, upstream, GATEWAY_API_KEYS=GATEWAY_KEY) as served:
        yield served


@pytest.fixture(scope="module")
def client(gateway: ServedGateway) -> Any:
    return gateway.openai()


def sent(upstream: FakeAnthropic) -> dict[str, Any]:
    """The body of the last request that reached the fake Anthropic."""
    body: dict[str, Any] = upstream.requests[-1].body
    return body


def test_a_text_answer_comes_back_in_openai_shape(client: Any, upstream: FakeAnthropic) -> None:
    answer = client.chat.completions.create(
        model="anthropic",
        messages=[
            {"role": "system", "content": "Be brief."},
            {"role": "developer", "content": [{"type": "text", "text": "No jokes."}]},
            {"role": "user", "content": "hello there"},
        ],
        max_completion_tokens=100,
        temperature=0.2,
        stop="END",
        user="user-7",
    )
    assert answer.object == "chat.completion"
    assert answer.id.startswith("chatcmpl-") and answer.model == "anthropic"
    assert answer.created > 0
    [choice] = answer.choices
    assert choice.message.role == "assistant"
    assert choice.message.content == "fake-anthropic answer to: hello there"
    assert choice.finish_reason == "stop" and choice.message.tool_calls is None
    usage = answer.usage
    assert usage.prompt_tokens > 0 and usage.completion_tokens > 0
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens

    body = sent(upstream)
    assert body["system"] == "Be brief.\n\nNo jokes."
    assert body["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "hello there"}]}
    ]
    assert body["max_tokens"] == 100 and body["temperature"] == 0.2
    assert body["stop_sequences"] == ["END"] and body["metadata"] == {"user_id": "user-7"}


def test_the_local_model_answers_offline(client: Any) -> None:
    answer = client.chat.completions.create(
        model="local", messages=[{"role": "user", "content": "What is 17 * (3 + 4)?"}]
    )
    assert "17 * (3 + 4) = 119" in answer.choices[0].message.content
    assert answer.model == "local" and answer.choices[0].finish_reason == "stop"


def test_the_local_model_calls_a_tool(client: Any) -> None:
    answer = client.chat.completions.create(
        model="local",
        messages=[{"role": "user", "content": "What is 17 * (3 + 4)?"}],
        tools=[CALCULATOR],
    )
    [call] = answer.choices[0].message.tool_calls
    assert call.type == "function" and call.function.name == "calculator"
    assert "17" in json.loads(call.function.arguments)["expression"]
    assert answer.choices[0].finish_reason == "tool_calls"


def test_a_tool_round_trip_reaches_the_upstream_as_anthropic_blocks(
    client: Any, upstream: FakeAnthropic
) -> None:
    upstream.enqueue(Answer.tool_use("calculator", {"expression": "2+2"}, tool_id="toolu_1"))
    first = client.chat.completions.create(
        model="anthropic",
        messages=[{"role": "user", "content": "2+2 and 3+3?"}],
        tools=[CALCULATOR],
        tool_choice="required",
        parallel_tool_calls=False,
    )
    [call] = first.choices[0].message.tool_calls
    assert call.id == "toolu_1" and json.loads(call.function.arguments) == {"expression": "2+2"}
    assert first.choices[0].finish_reason == "tool_calls"
    body = sent(upstream)
    assert body["tools"] == [
        {
            "name": "calculator",
            "description": "Evaluate an arithmetic expression exactly.",
            "input_schema": CALCULATOR["function"]["parameters"],  # type: ignore[index]
        }
    ]
    assert body["tool_choice"] == {"type": "any", "disable_parallel_tool_use": True}

    second_call = {
        "id": "toolu_2",
        "type": "function",
        "function": {"name": "calculator", "arguments": '{"expression": "3+3"}'},
    }
    client.chat.completions.create(
        model="anthropic",
        messages=[
            {"role": "user", "content": "2+2 and 3+3?"},
            {"role": "assistant", "content": None, "tool_calls": [call.model_dump(), second_call]},
            {"role": "tool", "tool_call_id": "toolu_1", "content": "4"},
            {"role": "tool", "tool_call_id": "toolu_2", "content": [{"type": "text", "text": "6"}]},
        ],
        tools=[CALCULATOR],
        tool_choice={"type": "function", "function": {"name": "calculator"}},
    )
    body = sent(upstream)
    assert [m["role"] for m in body["messages"]] == ["user", "assistant", "user"]
    assert body["messages"][1]["content"] == [
        {"type": "tool_use", "id": "toolu_1", "name": "calculator", "input": {"expression": "2+2"}},
        {"type": "tool_use", "id": "toolu_2", "name": "calculator", "input": {"expression": "3+3"}},
    ]
    assert body["messages"][2]["content"] == [
        {"type": "tool_result", "tool_use_id": "toolu_1", "content": "4"},
        {"type": "tool_result", "tool_use_id": "toolu_2", "content": "6"},
    ]
    assert body["tool_choice"] == {"type": "tool", "name": "calculator"}


def test_images_reach_the_upstream_as_anthropic_sources(
    client: Any, upstream: FakeAnthropic
) -> None:
    client.chat.completions.create(
        model="anthropic",
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "what is this?"},
                    {
                        "type": "image_url",
                        "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="},
                    },
                    {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}},
                ],
            }
        ],
    )
    _, inline, linked = sent(upstream)["messages"][0]["content"]
    assert inline["source"] == {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}
    assert linked["source"] == {"type": "url", "url": "https://example.com/cat.jpg"}


def test_pdf_files_reach_the_upstream_as_documents(client: Any, upstream: FakeAnthropic) -> None:
    file = {"filename": "a.pdf", "file_data": "data:application/pdf;base64,JVBERi0xLjQK"}
    parts = [{"type": "text", "text": "Summarise."}, {"type": "file", "file": file}]
    client.chat.completions.create(model="anthropic", messages=[{"role": "user", "content": parts}])
    document = sent(upstream)["messages"][0]["content"][1]
    source = {"type": "base64", "media_type": "application/pdf", "data": "JVBERi0xLjQK"}
    assert document == {"type": "document", "source": source}


@pytest.mark.parametrize(
    ("stop_reason", "finish"),
    [("max_tokens", "length"), ("stop_sequence", "stop"), ("refusal", "content_filter")],
)
def test_stop_reasons_map_to_finish_reasons(
    client: Any, upstream: FakeAnthropic, stop_reason: str, finish: str
) -> None:
    upstream.enqueue(Answer.text("partial", stop_reason=stop_reason))
    answer = client.chat.completions.create(
        model="anthropic", messages=[{"role": "user", "content": "hi"}]
    )
    assert answer.choices[0].finish_reason == finish


def test_cached_tokens_are_reported(client: Any, upstream: FakeAnthropic) -> None:
    message = {
        "id": "msg_cached",
        "type": "message",
        "role": "assistant",
        "model": "x",
        "content": [{"type": "text", "text": "ok"}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {
            "input_tokens": 10,
            "output_tokens": 3,
            "cache_read_input_tokens": 100,
            "cache_creation_input_tokens": 5,
        },
    }
    upstream.enqueue(Reply(200, message))
    answer = client.chat.completions.create(
        model="anthropic", messages=[{"role": "user", "content": "hi"}]
    )
    assert answer.id == "chatcmpl-cached"
    assert answer.usage.prompt_tokens == 115 and answer.usage.completion_tokens == 3
    assert answer.usage.total_tokens == 118
    assert answer.usage.prompt_tokens_details.cached_tokens == 100


# -- errors, as the SDK's own classes -------------------------------------------------------


def test_a_wrong_key_is_an_authentication_error(gateway: ServedGateway) -> None:
    with pytest.raises(openai.AuthenticationError) as caught:
        gateway.openai(api_key="wrong").chat.completions.create(
            model="local", messages=[{"role": "user", "content": "hi"}]
        )
    assert caught.value.code == "invalid_api_key"
    assert set(caught.value.response.json()["error"]) == {"message", "type", "param", "code"}


def test_an_unknown_model_is_not_found(client: Any) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        client.chat.completions.create(
            model="gpt-nope", messages=[{"role": "user", "content": "x"}]
        )
    assert caught.value.code == "model_not_found" and "gpt-nope" in caught.value.message


def test_an_upstream_rate_limit_is_a_rate_limit_error(client: Any, upstream: FakeAnthropic) -> None:
    upstream.enqueue(Fault(429), Fault(429))  # the gateway's own two attempts
    with pytest.raises(openai.RateLimitError) as caught:
        client.chat.completions.create(
            model="anthropic", messages=[{"role": "user", "content": "x"}]
        )
    assert caught.value.code == "rate_limit_exceeded"


def test_an_upstream_failure_is_a_server_error(client: Any, upstream: FakeAnthropic) -> None:
    upstream.enqueue(Fault(500), Fault(500))
    with pytest.raises(openai.InternalServerError) as caught:
        client.chat.completions.create(
            model="anthropic", messages=[{"role": "user", "content": "x"}]
        )
    assert caught.value.status_code == 502 and caught.value.type == "server_error"


def test_an_upstream_refusal_keeps_its_status(client: Any, upstream: FakeAnthropic) -> None:
    upstream.enqueue(Fault(400, message="temperature: out of range"))
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(
            model="anthropic", messages=[{"role": "user", "content": "x"}]
        )
    assert "temperature" in caught.value.message


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"n": 2}, "n"),
        ({"logprobs": True}, "logprobs"),
        ({"top_logprobs": 3}, "top_logprobs"),
        ({"audio": {"voice": "alloy", "format": "wav"}, "modalities": ["text", "audio"]}, "audio"),
        ({"modalities": ["text", "audio"]}, "modalities"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"temperature": "hot"}, "temperature"),
        ({"tools": [{"type": "code_interpreter"}]}, "tools[0].type"),
        ({"tool_choice": "sometimes", "tools": [CALCULATOR]}, "tool_choice"),
        ({"response_format": {"type": "yaml"}}, "response_format.type"),
        ({"stream": "yes"}, "stream"),
    ],
)
def test_what_cannot_be_honoured_is_refused_naming_the_field(
    client: Any, extra: dict[str, Any], param: str
) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(
            model="local", messages=[{"role": "user", "content": "hi"}], extra_body=extra
        )
    assert caught.value.param == param, caught.value.message
    body = caught.value.response.json()["error"]
    assert body["message"].startswith(param)


@pytest.mark.parametrize(
    ("messages", "param"),
    [
        ([{"role": "wizard", "content": "hi"}], "messages[0].role"),
        ([{"role": "function", "name": "f", "content": "hi"}], "messages[0].role"),
        ("hello", "messages"),
        ([], "messages"),
        ([{"role": "system", "content": "only a system prompt"}], "messages"),
        ([{"role": "user", "content": 42}], "messages[0].content"),
        (
            [{"role": "user", "content": [{"type": "input_audio", "input_audio": {}}]}],
            "messages[0].content[0].type",
        ),
        (
            [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "ftp://x"}}]}],
            "messages[0].content[0].image_url.url",
        ),
        (
            [
                {"role": "user", "content": "hi"},
                {
                    "role": "assistant",
                    "tool_calls": [
                        {
                            "id": "c1",
                            "type": "function",
                            "function": {"name": "calculator", "arguments": "{not json"},
                        }
                    ],
                },
            ],
            "messages[1].tool_calls[0].function.arguments",
        ),
        (
            [
                {"role": "user", "content": "hi"},
                {
                    "role": "assistant",
                    "tool_calls": [
                        {
                            "id": "c1",
                            "type": "function",
                            "function": {"name": "calculator", "arguments": "[1, 2]"},
                        }
                    ],
                },
            ],
            "messages[1].tool_calls[0].function.arguments",
        ),
        ([{"role": "tool", "content": "4"}], "messages[0].tool_call_id"),
    ],
)
def test_bad_messages_are_refused_naming_the_field(client: Any, messages: Any, param: str) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="local", messages=messages)
    assert caught.value.param == param, caught.value.message


# -- response_format -------------------------------------------------------------------------

CITY = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "population": {"type": "integer", "minimum": 1}},
    "required": ["city", "population"],
    "additionalProperties": False,
}
CITY_FORMAT = {
    "type": "json_schema",
    "json_schema": {"name": "city", "schema": CITY, "strict": True},
}


def test_json_schema_is_anthropic_structured_output_upstream(
    client: Any, upstream: FakeAnthropic
) -> None:
    upstream.enqueue(Answer.text('{"city": "Paris", "population": 2100000}'))
    answer = client.chat.completions.create(
        model="anthropic",
        messages=[{"role": "user", "content": "A city?"}],
        response_format=CITY_FORMAT,
    )
    assert json.loads(answer.choices[0].message.content)["city"] == "Paris"
    body = sent(upstream)
    assert body["output_config"] == {"format": {"type": "json_schema", "schema": CITY}}
    assert "tools" not in body


def test_json_schema_is_a_forced_tool_where_a_provider_lacks_structured_output(
    client: Any, upstream: FakeAnthropic
) -> None:
    upstream.enqueue(Answer.tool_use("json_response", {"city": "Oslo", "population": 700000}))
    answer = client.chat.completions.create(
        model="default",  # its chain holds bedrock
        messages=[{"role": "user", "content": "A city?"}],
        response_format=CITY_FORMAT,
    )
    [choice] = answer.choices
    assert json.loads(choice.message.content) == {"city": "Oslo", "population": 700000}
    assert choice.finish_reason == "stop" and choice.message.tool_calls is None
    body = sent(upstream)
    assert "output_config" not in body
    assert (
        body["tools"][-1]["name"] == "json_response" and body["tools"][-1]["input_schema"] == CITY
    )
    assert body["tool_choice"] == {"type": "tool", "name": "json_response"}


def test_the_local_model_answers_valid_json_for_the_schema(client: Any) -> None:
    answer = client.chat.completions.create(
        model="local",
        messages=[{"role": "user", "content": "What is 2 + 3?"}],
        response_format=CITY_FORMAT,
    )
    value = json.loads(answer.choices[0].message.content)
    jsonschema.validate(value, CITY)
    assert "2 + 3 = 5" in value["city"]  # strings carry the local model's answer


class Step(BaseModel):
    explanation: str
    output: str


class Solution(BaseModel):
    steps: list[Step] = Field(min_length=1)
    final_answer: int = Field(ge=3, le=10)
    verdict: Literal["right", "wrong"]


def test_the_local_model_answers_a_pydantic_schema_through_parse(client: Any) -> None:
    parsed = client.chat.completions.parse(
        model="local",
        messages=[{"role": "user", "content": "Solve 8x + 7 = -23"}],
        response_format=Solution,
    )
    solution = parsed.choices[0].message.parsed
    assert isinstance(solution, Solution) and len(solution.steps) == 1
    # A number the answer states, when the schema's bounds (3-10) allow it; else their least.
    assert 3 <= solution.final_answer <= 10 and solution.verdict == "right"


def test_json_object_answers_a_json_object(client: Any, upstream: FakeAnthropic) -> None:
    local = client.chat.completions.create(
        model="local",
        messages=[{"role": "user", "content": "hi"}],
        response_format={"type": "json_object"},
    )
    assert isinstance(json.loads(local.choices[0].message.content), dict)
    upstream.enqueue(Answer.tool_use("json_response", {"greeting": "hi"}))
    remote = client.chat.completions.create(
        model="anthropic",
        messages=[{"role": "user", "content": "hi"}],
        response_format={"type": "json_object"},
    )
    assert json.loads(remote.choices[0].message.content) == {"greeting": "hi"}
    assert sent(upstream)["tools"][-1]["input_schema"] == {"type": "object"}


# -- model names and /v1/models --------------------------------------------------------------


def test_an_openai_style_id_reaches_its_route_by_alias(client: Any) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "What is 2 + 2?"}]
    )
    assert raw.headers["x-gateway-route"] == "local"
    assert raw.parse().model == "gpt-4o-mini"


def test_models_list_in_openai_shape(client: Any, gateway: ServedGateway) -> None:
    models = {model.id: model for model in client.models.list()}
    assert {"anthropic", "local", "default"} <= set(models)
    assert models["local"].object == "model" and models["local"].owned_by == "local"
    assert models["anthropic"].owned_by == "anthropic" and models["local"].created == 0
    assert client.models.retrieve("gpt-4o-mini").owned_by == "local"
    page = gateway.http().get("/v1/models", headers={"authorization": f"Bearer {GATEWAY_KEY}"})
    assert page.json()["object"] == "list" and "has_more" in page.json()  # Anthropic's too
