"""``stream: true`` on ``/v1/chat/completions`` through the real OpenAI Python SDK: chunks with
the role first, content and tool-call argument deltas, the finish reason, the usage chunk and
``[DONE]``; failover before the first byte and an in-band error after it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from tests.fakes.anthropic_server import Answer, FakeAnthropic, Fault
from tests.gateway.support import ServedGateway, module_gateway
from tests.lazy_imports import openai

CALCULATOR = {
    "type": "function",
    "function": {
        "name": "calculator",
        "parameters": {
            "type": "object",
            "properties": {"expression": {"type": "string"}},
            "required": ["expression"],
        },
    },
}
HI = [{"role": "user", "content": "hello stream"}]


@pytest.fixture(scope="module")
def upstream() -> Iterator[FakeAnthropic]:
    with FakeAnthropic() as fake:
        yield fake


@pytest.fixture(scope="module")
def gateway(upstream: FakeAnthropic, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    with module_gateway(tmp_path_factory.mktemp("stream"), upstream=upstream) as served:
        yield served


@pytest.fixture(scope="module")
def client(gateway: ServedGateway) -> Any:
    return gateway.openai()


def test_text_streams_with_the_role_first_and_usage_last(client: Any) -> None:
    chunks = list(
        client.chat.completions.create(
            model="anthropic", messages=HI, stream=True, stream_options={"include_usage": True}
        )
    )
    assert {c.object for c in chunks} == {"chat.completion.chunk"}
    assert len({c.id for c in chunks}) == 1 and chunks[0].id.startswith("chatcmpl-")
    assert {c.model for c in chunks} == {"anthropic"}
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "fake-anthropic answer to: hello stream"
    assert sum(1 for c in chunks if c.choices and c.choices[0].delta.content) >= 2
    *_, last_choice, usage = chunks
    assert last_choice.choices[0].finish_reason == "stop"
    assert usage.choices == [] and usage.usage.completion_tokens > 0
    assert usage.usage.total_tokens == usage.usage.prompt_tokens + usage.usage.completion_tokens
    assert all(c.usage is None for c in chunks[:-1])


def test_tool_call_arguments_stream_in_pieces(client: Any, upstream: FakeAnthropic) -> None:
    upstream.enqueue(
        Answer.tool_use("calculator", {"expression": "6*7"}, tool_id="toolu_s", preamble="Let me.")
    )
    chunks = list(
        client.chat.completions.create(
            model="anthropic", messages=HI, tools=[CALCULATOR], stream=True
        )
    )
    pieces = [call for c in chunks if c.choices for call in c.choices[0].delta.tool_calls or []]
    assert pieces[0].id == "toolu_s" and pieces[0].function.name == "calculator"
    assert pieces[0].index == 0 and {p.index for p in pieces} == {0}
    assert len(pieces) > 2  # the head, then the arguments in several pieces
    arguments = "".join(p.function.arguments or "" for p in pieces)
    assert json.loads(arguments) == {"expression": "6*7"}
    assert chunks[-1].choices[0].finish_reason == "tool_calls"
    assert "Let me." in "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)


def test_the_sdk_stream_helper_accumulates_tool_calls(client: Any, upstream: FakeAnthropic) -> None:
    upstream.enqueue(Answer.tool_use("calculator", {"expression": "1+1"}, tool_id="toolu_h"))
    with client.chat.completions.stream(
        model="anthropic", messages=HI, tools=[CALCULATOR]
    ) as stream:
        for _ in stream:
            pass
        final = stream.get_final_completion()
    [call] = final.choices[0].message.tool_calls
    assert call.id == "toolu_h" and json.loads(call.function.arguments) == {"expression": "1+1"}


def test_the_local_model_streams(client: Any) -> None:
    chunks = list(
        client.chat.completions.create(
            model="local",
            messages=[{"role": "user", "content": "What is 2 + 3?"}],
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert "2 + 3 = 5" in text
    assert chunks[-1].usage is not None and chunks[-1].usage.prompt_tokens > 0


def test_the_stream_ends_with_done(gateway: ServedGateway) -> None:
    body = {"model": "local", "messages": HI, "stream": True}
    with gateway.http().stream("POST", "/v1/chat/completions", json=body) as response:
        raw = response.read().decode()
    assert response.headers["content-type"].startswith("text/event-stream")
    assert raw.endswith("data: [DONE]\n\n") and "event:" not in raw


def test_failover_happens_before_the_first_byte(client: Any, upstream: FakeAnthropic) -> None:
    upstream.enqueue(Fault(529), Fault(529))  # both attempts at anthropic: then the local model
    stream = client.chat.completions.with_raw_response.create(
        model="anthropic-then-local", messages=HI, stream=True
    )
    assert stream.headers["x-gateway-provider"] == "local"
    text = "".join(c.choices[0].delta.content or "" for c in stream.parse() if c.choices)
    assert "[local rule-based model]" in text


def test_an_error_before_the_stream_is_a_typed_error(client: Any, upstream: FakeAnthropic) -> None:
    upstream.enqueue(Fault(429), Fault(429))
    with pytest.raises(openai.RateLimitError):
        client.chat.completions.create(model="anthropic", messages=HI, stream=True)


def test_a_break_after_the_first_byte_is_an_in_band_error(
    client: Any, upstream: FakeAnthropic
) -> None:
    upstream.enqueue(Answer.text("a long answer cut short", error_after_events=4))
    seen: list[str] = []
    with pytest.raises(openai.APIError) as caught:
        for chunk in client.chat.completions.create(model="anthropic", messages=HI, stream=True):
            seen.extend(c.delta.content or "" for c in chunk.choices)
    assert "".join(seen)  # text arrived before the break
    assert "overloaded" in caught.value.message


def test_a_cut_connection_after_the_first_byte_is_an_in_band_error(
    client: Any, upstream: FakeAnthropic
) -> None:
    upstream.enqueue(Answer.text("an answer whose connection drops", cut_after_events=4))
    with pytest.raises(openai.APIError) as caught:
        for _ in client.chat.completions.create(model="anthropic", messages=HI, stream=True):
            pass
    assert "broke" in caught.value.message or "ended" in caught.value.message


def test_a_forced_json_answer_streams_as_content(client: Any, upstream: FakeAnthropic) -> None:
    upstream.enqueue(Answer.tool_use("json_response", {"city": "Oslo"}, preamble="Sure."))
    schema = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
    chunks = list(
        client.chat.completions.create(
            model="default",  # bedrock in its chain: the answer rides on a forced tool
            messages=HI,
            stream=True,
            response_format={"type": "json_schema", "json_schema": {"name": "c", "schema": schema}},
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert json.loads(text) == {"city": "Oslo"}
    assert not any(c.choices[0].delta.tool_calls for c in chunks if c.choices)
    assert chunks[-1].choices[0].finish_reason == "stop"


def test_parallel_tool_calls_stream_with_their_own_indexes(
    client: Any, upstream: FakeAnthropic
) -> None:
    calls = [
        {
            "type": "tool_use",
            "id": f"toolu_{n}",
            "name": "calculator",
            "input": {"expression": f"{n}+{n}"},
        }
        for n in (1, 2)
    ]
    upstream.enqueue(Answer(content=calls, stop_reason="tool_use"))
    with client.chat.completions.stream(
        model="anthropic", messages=HI, tools=[CALCULATOR]
    ) as stream:
        final = stream.get_final_completion()
    made = final.choices[0].message.tool_calls
    assert [c.id for c in made] == ["toolu_1", "toolu_2"]
    assert [json.loads(c.function.arguments) for c in made] == [
        {"expression": "1+1"},
        {"expression": "2+2"},
    ]
    assert final.choices[0].finish_reason == "tool_calls"
