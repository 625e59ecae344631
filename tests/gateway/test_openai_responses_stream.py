"""``POST /v1/responses`` with ``stream: true`` through the real OpenAI SDK: the Responses
event sequence from the local model and the fake Anthropic upstream, failover before the
first byte, and an in-band failure after it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from functions.gateway.providers.local import MARK
from tests.fakes.anthropic_server import Answer, FakeAnthropic, Fault
from tests.gateway.openai_support import WEATHER_TOOL, gateway_on, openai_client
from tests.lazy_imports import openai

TEXT_EVENTS = [
    "response.created",
    "response.in_progress",
    "response.output_item.added",
    "response.content_part.added",
    "response.output_text.delta",
    "response.output_text.done",
    "response.content_part.done",
    "response.output_item.done",
    "response.completed",
]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, FakeAnthropic]]:
    with gateway_on(tmp_path_factory.mktemp("responses-stream")) as both:
        yield both


@pytest.fixture(scope="module")
def upstream(served: tuple[Any, FakeAnthropic]) -> FakeAnthropic:
    return served[1]


@pytest.fixture(scope="module")
def client(served: tuple[Any, FakeAnthropic]) -> Iterator[openai.OpenAI]:
    with openai_client(served[0]) as sdk:
        yield sdk


def events(client: openai.OpenAI, **request: Any) -> list[Any]:
    return list(client.responses.create(stream=True, **request))


def deduplicated(kinds: list[str]) -> list[str]:
    """The event types in order, each run of one type (the deltas) as one."""
    return [kind for n, kind in enumerate(kinds) if n == 0 or kinds[n - 1] != kind]


def test_a_streamed_local_answer_is_the_whole_event_sequence(client: openai.OpenAI) -> None:
    streamed = events(client, model="local", input="what is 6 * 7?")
    assert deduplicated([event.type for event in streamed]) == TEXT_EVENTS
    assert [event.sequence_number for event in streamed] == list(range(len(streamed)))
    text = "".join(e.delta for e in streamed if e.type == "response.output_text.delta")
    assert text.startswith(MARK) and "= 42" in text
    final = streamed[-1].response
    assert final.status == "completed" and final.output_text == text
    assert final.usage is not None and final.usage.output_tokens > 0
    assert streamed[0].response.status == "in_progress"


def test_the_sdks_stream_helper_assembles_a_tool_call_from_the_upstream(
    client: openai.OpenAI, upstream: FakeAnthropic
) -> None:
    upstream.enqueue(
        Answer.tool_use("get_weather", {"city": "Oslo"}, tool_id="toolu_s1", preamble="Looking.")
    )
    with client.responses.stream(
        model="anthropic", input="Weather in Oslo?", tools=[WEATHER_TOOL]
    ) as stream:
        kinds = [event.type for event in stream]
        final = stream.get_final_response()
    assert "response.function_call_arguments.delta" in kinds
    assert "response.function_call_arguments.done" in kinds
    [message, call] = final.output
    assert message.type == "message" and final.output_text == "Looking."
    assert call.type == "function_call" and call.call_id == "toolu_s1"
    assert json.loads(call.arguments) == {"city": "Oslo"}
    assert upstream.requests[-1].body["stream"] is True


def test_an_upstream_outage_before_the_first_byte_fails_over(
    client: openai.OpenAI, upstream: FakeAnthropic
) -> None:
    upstream.enqueue(Fault(529), Fault(529))
    streamed = events(client, model="anthropic-then-local", input="what is 1 + 1?")
    assert streamed[-1].type == "response.completed"
    assert "= 2" in streamed[-1].response.output_text


def test_a_stream_that_breaks_after_it_began_ends_failed_in_band(
    client: openai.OpenAI, upstream: FakeAnthropic
) -> None:
    upstream.enqueue(Answer.text("partial answer here", error_after_events=4))
    streamed = events(client, model="anthropic", input="hi")
    assert streamed[0].type == "response.created"
    assert [event.type for event in streamed[-2:]] == ["error", "response.failed"]
    assert streamed[-1].response.status == "failed"
    assert streamed[-1].response.error.code == "server_error"


def test_a_stream_cut_at_max_output_tokens_ends_incomplete(
    client: openai.OpenAI, upstream: FakeAnthropic
) -> None:
    upstream.enqueue(Answer.text("A long", stop_reason="max_tokens"))
    streamed = events(client, model="anthropic", input="Go on", max_output_tokens=2)
    assert streamed[-1].type == "response.incomplete"
    assert streamed[-1].response.incomplete_details.reason == "max_output_tokens"


def test_a_refused_stream_is_an_error_before_any_event(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        events(client, model="local", input="hi", previous_response_id="resp_1")
    assert isinstance(caught.value.body, dict)
    assert caught.value.body["param"] == "previous_response_id"


MIXED: list[dict[str, Any]] = [
    {"type": "thinking", "thinking": "The user wants two cities.", "signature": "sig"},
    {"type": "text", "text": "Checking "},
    {"type": "text", "text": "both."},
    {"type": "tool_use", "id": "toolu_m1", "name": "get_weather", "input": {"city": "Oslo"}},
    {"type": "tool_use", "id": "toolu_m2", "name": "get_weather", "input": {"city": "Rome"}},
]


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
def test_mixed_blocks_become_the_same_output_items_whole_or_streamed(
    client: openai.OpenAI, upstream: FakeAnthropic, stream: bool
) -> None:
    upstream.enqueue(Answer(content=MIXED, stop_reason="tool_use"))
    request: dict[str, Any] = {"model": "anthropic", "input": "Oslo and Rome?"}
    if stream:
        final = events(client, tools=[WEATHER_TOOL], **request)[-1].response
    else:
        final = client.responses.create(tools=[WEATHER_TOOL], **request)
    assert [item.type for item in final.output] == ["message", "function_call", "function_call"]
    assert [part.text for part in final.output[0].content] == ["Checking ", "both."]
    assert [(c.call_id, json.loads(c.arguments)) for c in final.output[1:]] == [
        ("toolu_m1", {"city": "Oslo"}),
        ("toolu_m2", {"city": "Rome"}),
    ]
    assert len({item.id for item in final.output}) == 3
    assert final.status == "completed"
