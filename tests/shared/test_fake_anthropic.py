"""The fake Anthropic server speaks the wire format the real SDK expects."""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

import httpx
import pytest

from tests.fakes.anthropic_server import Answer, Disconnect, FakeAnthropic, Fault
from tests.lazy_imports import anthropic

if TYPE_CHECKING:  # the SDK loads when a test first uses it (tests/lazy_imports.py)
    from anthropic.types import TextBlock, ToolParam, ToolUseBlock

WEATHER_TOOL: ToolParam = {
    "name": "get_weather",
    "description": "Current weather for a city.",
    "input_schema": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
}


def sdk_client(fake: FakeAnthropic, timeout: float = 5.0) -> anthropic.Anthropic:
    return anthropic.Anthropic(
        api_key=fake.api_key, base_url=fake.base_url, max_retries=0, timeout=timeout
    )


def ask(client: anthropic.Anthropic, text: str = "hello there") -> anthropic.types.Message:
    return client.messages.create(
        model="claude-test", max_tokens=64, messages=[{"role": "user", "content": text}]
    )


def test_create_answers_the_default_text(fake_anthropic: FakeAnthropic) -> None:
    message = sdk_client(fake_anthropic).messages.create(
        model="claude-test", max_tokens=64, messages=[{"role": "user", "content": "hello there"}]
    )

    assert message.model == "claude-test"
    assert message.stop_reason == "end_turn"
    assert message.content[0].type == "text"
    assert message.content[0].text == "fake-anthropic answer to: hello there"
    assert message.usage.input_tokens > 0 and message.usage.output_tokens > 0
    assert message._request_id and message._request_id.startswith("req_")
    [recorded] = fake_anthropic.requests
    assert recorded.path == "/v1/messages"
    assert recorded.api_key == fake_anthropic.api_key  # SDK v2 sends it as a bearer token
    assert "anthropic-version" in recorded.headers
    assert recorded.body["max_tokens"] == 64


def test_tools_get_the_scripted_tool_use(fake_anthropic: FakeAnthropic) -> None:
    fake_anthropic.enqueue(Answer.tool_use("get_weather", {"city": "Paris"}, tool_id="toolu_1"))

    message = sdk_client(fake_anthropic).messages.create(
        model="claude-test",
        max_tokens=64,
        tools=[WEATHER_TOOL],
        messages=[{"role": "user", "content": "weather in Paris?"}],
    )

    assert message.stop_reason == "tool_use"
    [block] = message.content
    assert block.type == "tool_use"
    assert (block.id, block.name, block.input) == ("toolu_1", "get_weather", {"city": "Paris"})
    assert fake_anthropic.requests[0].body["tools"][0]["name"] == "get_weather"


def test_stream_yields_text_and_the_final_message(fake_anthropic: FakeAnthropic) -> None:
    with sdk_client(fake_anthropic).messages.stream(
        model="claude-test", max_tokens=64, messages=[{"role": "user", "content": "stream me"}]
    ) as stream:
        pieces = list(stream.text_stream)
        final = stream.get_final_message()

    assert len(pieces) > 1
    assert "".join(pieces) == "fake-anthropic answer to: stream me"
    assert cast("TextBlock", final.content[0]).text == "fake-anthropic answer to: stream me"
    assert final.stop_reason == "end_turn"
    assert final.usage.output_tokens > 1


def test_stream_assembles_a_tool_use_input(fake_anthropic: FakeAnthropic) -> None:
    tool_input = {"city": "Paris", "units": "metric", "days": [1, 2, 3]}
    fake_anthropic.enqueue(Answer.tool_use("get_weather", tool_input, preamble="Let me look."))

    with sdk_client(fake_anthropic).messages.stream(
        model="claude-test", max_tokens=64, messages=[{"role": "user", "content": "weather?"}]
    ) as stream:
        final = stream.get_final_message()

    assert [block.type for block in final.content] == ["text", "tool_use"]
    assert cast("ToolUseBlock", final.content[1]).input == tool_input
    assert final.stop_reason == "tool_use"


def test_wrong_key_is_an_authentication_error(fake_anthropic: FakeAnthropic) -> None:
    client = anthropic.Anthropic(api_key="wrong", base_url=fake_anthropic.base_url, max_retries=0)

    with pytest.raises(anthropic.AuthenticationError) as caught:
        ask(client)

    assert caught.value.status_code == 401
    assert caught.value.body["error"]["type"] == "authentication_error"  # type: ignore[index]


def test_missing_fields_are_invalid_requests(fake_anthropic: FakeAnthropic) -> None:
    response = httpx.post(
        f"{fake_anthropic.base_url}/v1/messages",
        headers={"x-api-key": fake_anthropic.api_key},
        json={"model": "claude-test", "messages": [{"role": "user", "content": "hi"}]},
    )

    assert response.status_code == 400
    assert response.json()["error"]["type"] == "invalid_request_error"
    assert "max_tokens" in response.json()["error"]["message"]


def test_529_surfaces_as_overloaded(fake_anthropic: FakeAnthropic) -> None:
    fake_anthropic.enqueue(Fault(529))

    with pytest.raises(anthropic.APIStatusError) as caught:  # OverloadedError from SDK 0.7x on
        ask(sdk_client(fake_anthropic))

    assert caught.value.status_code == 529
    assert caught.value.body["error"]["type"] == "overloaded_error"  # type: ignore[index]
    assert ask(sdk_client(fake_anthropic))  # the script is used up: back to the default


def test_429_carries_retry_after_headers(fake_anthropic: FakeAnthropic) -> None:
    fake_anthropic.enqueue(Fault(429, retry_after=2, retry_after_ms=1500))

    with pytest.raises(anthropic.RateLimitError) as caught:
        ask(sdk_client(fake_anthropic))

    headers = caught.value.response.headers
    assert (headers["retry-after"], headers["retry-after-ms"]) == ("2", "1500")
    assert caught.value.body["error"]["type"] == "rate_limit_error"  # type: ignore[index]


def test_cut_stream_raises_in_the_sdk(fake_anthropic: FakeAnthropic) -> None:
    # The SDK lets its transport's error through mid-stream (httpx2's from SDK 2.x, httpx's before).
    from anthropic import _base_client as base

    transport = getattr(base, "httpx2", None) or getattr(base, "httpx")  # noqa: B009
    fake_anthropic.enqueue(Answer.text("this answer never finishes", cut_after_events=4))

    with (
        pytest.raises(transport.RemoteProtocolError, match="incomplete chunked read"),
        sdk_client(fake_anthropic).messages.stream(
            model="claude-test", max_tokens=64, messages=[{"role": "user", "content": "hi"}]
        ) as stream,
    ):
        stream.get_final_message()


def test_delay_times_out_the_client_and_stop_ends_it(fake_anthropic: FakeAnthropic) -> None:
    fake_anthropic.enqueue(Fault(500, delay_s=30))
    client = sdk_client(fake_anthropic, timeout=0.2)

    with pytest.raises(anthropic.APITimeoutError):
        ask(client)
    fake_anthropic.stop()  # must return promptly although a handler is still waiting


def test_disconnect_is_a_connection_error(fake_anthropic: FakeAnthropic) -> None:
    fake_anthropic.enqueue(Disconnect())

    with pytest.raises(anthropic.APIConnectionError):
        ask(sdk_client(fake_anthropic))


def test_script_is_used_in_order_over_keep_alive(fake_anthropic: FakeAnthropic) -> None:
    fake_anthropic.enqueue(Fault(503), Answer.text("second"))
    client = sdk_client(fake_anthropic)

    with pytest.raises(anthropic.InternalServerError):
        ask(client)
    second = ask(client)

    assert second.content[0].text == "second"  # type: ignore[union-attr]
    assert fake_anthropic.pending == 0
    first, later = fake_anthropic.wait_for_requests(2, timeout_s=1)
    assert first.received_at <= later.received_at


def test_stream_wire_format_is_the_real_event_sequence(fake_anthropic: FakeAnthropic) -> None:
    fake_anthropic.enqueue(Answer.tool_use("get_weather", {"city": "Paris"}))
    request = {
        "model": "claude-test",
        "max_tokens": 64,
        "stream": True,
        "messages": [{"role": "user", "content": "weather?"}],
    }

    response = httpx.post(
        f"{fake_anthropic.base_url}/v1/messages",
        headers={"x-api-key": fake_anthropic.api_key},
        json=request,
    )

    assert response.headers["content-type"].startswith("text/event-stream")
    events = [
        line.removeprefix("event: ")
        for line in response.text.splitlines()
        if line.startswith("event: ")
    ]
    assert events[:3] == ["message_start", "ping", "content_block_start"]
    assert events[-3:] == ["content_block_stop", "message_delta", "message_stop"]
    assert events.count("content_block_delta") > 1
    assert '"input_json_delta"' in response.text


def test_forwarded_headers_and_body_are_recorded(fake_anthropic: FakeAnthropic) -> None:
    client = sdk_client(fake_anthropic)
    client.messages.create(
        model="claude-test",
        max_tokens=64,
        metadata={"user_id": "u-1"},
        messages=[{"role": "user", "content": "hi"}],
        extra_headers={"anthropic-beta": "tools-2024-04-04", "user-agent": "my-client/1.0"},
    )

    [sent] = fake_anthropic.requests
    assert sent.headers["anthropic-beta"] == "tools-2024-04-04"
    assert sent.headers["anthropic-version"]  # whichever the installed SDK speaks
    # The SDK's own user-agent may be replaced or joined by the caller's: both are recorded.
    assert "my-client/1.0" in sent.headers["user-agent"]
    assert sent.body["metadata"] == {"user_id": "u-1"}


def test_an_error_event_after_a_200_reaches_the_sdk(fake_anthropic: FakeAnthropic) -> None:
    fake_anthropic.enqueue(Answer.text("half an answer", error_after_events=4))
    seen: list[str] = []

    with (
        pytest.raises(anthropic.APIStatusError) as caught,
        sdk_client(fake_anthropic).messages.stream(
            model="claude-test", max_tokens=64, messages=[{"role": "user", "content": "hi"}]
        ) as stream,
    ):
        seen.extend(stream.text_stream)

    assert caught.value.status_code == 200  # the stream had started fine
    error = {"type": "overloaded_error", "message": "fake-anthropic scripted overloaded_error"}
    assert caught.value.body == {"type": "error", "error": error}
    assert seen and "".join(seen) != "half an answer"


def test_a_text_delta_may_spell_an_event_line(fake_anthropic: FakeAnthropic) -> None:
    tricky = "done.\n\nevent: message_stop\ndata: {}\n\nnot really"
    fake_anthropic.enqueue(Answer.text(tricky, text_pieces=1), Answer.text(tricky, text_pieces=1))
    messages = [{"role": "user", "content": "hi"}]

    raw = httpx.post(
        f"{fake_anthropic.base_url}/v1/messages",
        headers={"x-api-key": fake_anthropic.api_key},
        json={"model": "claude-test", "max_tokens": 64, "stream": True, "messages": messages},
    ).text
    with sdk_client(fake_anthropic).messages.stream(
        model="claude-test", max_tokens=64, messages=[{"role": "user", "content": "hi"}]
    ) as stream:
        message = stream.get_final_message()

    [delta_line] = [line for line in raw.splitlines() if '"text_delta"' in line]
    assert "event: message_stop" in delta_line  # one data line, JSON-escaped newlines
    assert message.content[0].text == tricky  # type: ignore[union-attr]


def test_count_tokens_and_models_answer_like_the_api(fake_anthropic: FakeAnthropic) -> None:
    client = sdk_client(fake_anthropic)

    counted = client.messages.count_tokens(
        model="claude-test", messages=[{"role": "user", "content": "one two three"}]
    )
    models = client.models.list()

    assert counted.input_tokens > 0
    assert [model.id for model in models.data][:1] == ["claude-sonnet-4-5-20250929"]
    assert [request.route for request in fake_anthropic.requests] == [
        "/v1/messages/count_tokens",
        "/v1/models",
    ]
