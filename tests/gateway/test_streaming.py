"""Streams through the gateway: Anthropic SSE from every provider, and breaks reported honestly."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, NamedTuple, cast

import pytest

from functions.gateway.providers.local import MARK
from tests.fakes.anthropic_server import Answer, FakeAnthropic, Fault
from tests.fakes.bedrock import FakeBedrock, anthropic_message
from tests.gateway.support import (
    ANTHROPIC_MODEL,
    CALCULATOR_TOOL,
    ServedGateway,
    StartGateway,
    user,
)
from tests.lazy_imports import anthropic

if TYPE_CHECKING:  # the SDK loads when a test first uses it (tests/lazy_imports.py)
    from anthropic.types import Message, TextBlock

LONG_TEXT = "The circuit breaker pattern stops calls to a failing service for a while. " * 3


class Streamed(NamedTuple):
    """What a client saw of one streamed answer."""

    pieces: list[str]
    final: Message
    text: str
    headers: Mapping[str, str]


def stream_answer(client: anthropic.Anthropic, model: str, text: str) -> Streamed:
    """Stream the answer to ``text`` from ``model`` with the SDK, read to its end."""
    with client.messages.stream(model=model, max_tokens=256, messages=user(text)) as stream:
        pieces = list(stream.text_stream)
        final = stream.get_final_message()
        return Streamed(pieces, final, stream.get_final_text(), stream.response.headers)


def test_anthropic_stream_arrives_in_pieces_and_assembles(
    gateway: ServedGateway, fake_anthropic: FakeAnthropic
) -> None:
    fake_anthropic.enqueue(Answer.text(LONG_TEXT))

    pieces, final, _, headers = stream_answer(gateway.sdk(), "anthropic", "explain")

    assert len(pieces) > 1
    assert "".join(pieces) == LONG_TEXT
    assert cast("TextBlock", final.content[0]).text == LONG_TEXT
    assert final.stop_reason == "end_turn"
    assert final.model == ANTHROPIC_MODEL
    assert headers["x-gateway-provider"] == "anthropic"
    assert headers["content-type"].startswith("text/event-stream")
    [sent] = fake_anthropic.requests
    assert sent.body["stream"] is True and sent.body["model"] == ANTHROPIC_MODEL


def test_bedrock_answer_is_rendered_as_a_stream(
    full_gateway: ServedGateway, fake_bedrock: FakeBedrock
) -> None:
    fake_bedrock.enqueue(anthropic_message(LONG_TEXT, output_tokens=33))

    pieces, final, _, headers = stream_answer(full_gateway.sdk(), "bedrock", "explain")

    assert len(pieces) > 1
    assert "".join(pieces) == LONG_TEXT
    assert final.stop_reason == "end_turn"
    assert final.usage.output_tokens == 33
    assert headers["x-gateway-provider"] == "bedrock"
    assert "stream" not in fake_bedrock.requests[0].body


def test_local_stream_text(start_gateway: StartGateway) -> None:
    _, _, text, headers = stream_answer(start_gateway().sdk(), "default", "hello")

    assert text.startswith(MARK)
    assert headers["x-gateway-provider"] == "local"


def test_local_stream_of_a_tool_call_assembles_its_input(start_gateway: StartGateway) -> None:
    with (
        start_gateway()
        .sdk()
        .messages.stream(
            model="local",
            max_tokens=256,
            messages=user("What is 12*(3+4)?"),
            tools=[CALCULATOR_TOOL],
        ) as stream
    ):
        final = stream.get_final_message()

    assert final.stop_reason == "tool_use"
    [tool_use] = [b for b in final.content if b.type == "tool_use"]
    assert (tool_use.name, tool_use.input) == ("calculator", {"expression": "12*(3+4)"})


def test_stream_cut_after_the_first_byte_ends_with_an_error_event(
    start_gateway: StartGateway, anthropic_env: FakeAnthropic
) -> None:
    gateway = start_gateway()
    anthropic_env.enqueue(Answer.text(LONG_TEXT, cut_after_events=4))

    with (
        gateway.sdk().messages.stream(
            model="anthropic-then-local", max_tokens=256, messages=user("explain")
        ) as stream,
        pytest.raises(anthropic.APIStatusError) as caught,
    ):
        for _ in stream:
            pass

    assert stream.response.headers["x-gateway-provider"] == "anthropic"
    assert caught.value.body["error"]["type"] == "api_error"  # type: ignore[index]
    assert "anthropic stream broke" in caught.value.message
    # No fallback mid-stream: local never answered, anthropic was asked once.
    assert len(anthropic_env.requests) == 1
    assert gateway.deployment("local:local-rules")["successes"] == 0
    # And the gateway is fine afterwards.
    after = gateway.sdk().messages.create(model="anthropic", max_tokens=64, messages=user("again"))
    assert cast("TextBlock", after.content[0]).text == "fake-anthropic answer to: again"


def test_stream_cut_is_an_error_event_on_the_wire(
    start_gateway: StartGateway, anthropic_env: FakeAnthropic
) -> None:
    gateway = start_gateway()
    anthropic_env.enqueue(Answer.text(LONG_TEXT, cut_after_events=4))

    response, raw = gateway.stream("anthropic")

    events = [block for block in raw.split("\n\n") if block.strip()]
    assert events[0].startswith("event: message_start")
    assert events[-1].startswith("event: error")
    assert "event: message_stop" not in raw
    error = json.loads(events[-1].split("data: ", 1)[1])
    assert error["type"] == "error" and error["error"]["type"] == "api_error"


def test_stream_cut_mid_line_is_an_api_error_to_the_sdk(
    start_gateway: StartGateway, anthropic_env: FakeAnthropic
) -> None:
    # Upstream sends `data: {..."text":"The circ` and resets: the SDK must see the gateway's
    # error event, not that half line glued to it (json.JSONDecodeError before).
    gateway = start_gateway()
    anthropic_env.enqueue(Answer.text(LONG_TEXT, cut_after_events=4, cut_mid_line=True))
    pieces: list[str] = []

    with (
        gateway.sdk().messages.stream(
            model="anthropic", max_tokens=256, messages=user("explain")
        ) as stream,
        pytest.raises(anthropic.APIStatusError) as caught,
    ):
        pieces.extend(stream.text_stream)

    assert caught.value.body["error"]["type"] == "api_error"  # type: ignore[index]
    assert "anthropic stream broke" in caught.value.message
    assert pieces and LONG_TEXT.startswith("".join(pieces))  # whole deltas only, in order


def test_stream_cut_mid_line_sends_only_whole_events(
    start_gateway: StartGateway, anthropic_env: FakeAnthropic
) -> None:
    gateway = start_gateway()
    anthropic_env.enqueue(Answer.text(LONG_TEXT, cut_after_events=4, cut_mid_line=True))

    response, raw = gateway.stream("anthropic")

    assert raw.endswith("\n\n")
    events = raw.removesuffix("\n\n").split("\n\n")
    names = [event.split("\n")[0] for event in events]
    assert names == [
        "event: message_start",
        "event: ping",
        "event: content_block_start",
        "event: content_block_delta",  # the fourth, whole; the fifth was cut and is not sent
        "event: error",
    ]
    for event in events:
        [_, data] = event.split("\n")
        json.loads(data.removeprefix("data: "))  # every data line is whole JSON


def test_stream_that_fails_before_the_first_byte_falls_back(
    gateway: ServedGateway, fake_anthropic: FakeAnthropic
) -> None:
    fake_anthropic.enqueue(Fault(529), Fault(529))

    _, _, text, headers = stream_answer(gateway.sdk(), "anthropic-then-local", "hello")

    assert text.startswith(MARK)
    assert headers["x-gateway-provider"] == "local"
    assert (headers["x-gateway-attempts"], headers["x-gateway-fallbacks"]) == ("3", "1")
    assert len(fake_anthropic.requests) == 2


def test_stream_dropped_before_any_event_is_retried(
    gateway: ServedGateway, fake_anthropic: FakeAnthropic
) -> None:
    # Headers arrive, then the connection drops with no event: nothing reached the client
    # yet, so another attempt is still possible.
    fake_anthropic.enqueue(Answer.text("lost", cut_after_events=0), Answer.text("second try"))

    _, _, text, headers = stream_answer(gateway.sdk(), "anthropic-then-local", "hello")

    assert text == "second try"
    assert (headers["x-gateway-provider"], headers["x-gateway-attempts"]) == ("anthropic", "2")
