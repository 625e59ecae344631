"""What ``/v1/responses`` answers, validated against the OpenAI SDK's own pydantic types
(the SDK itself builds them without validation, so a missing required field would pass it
unnoticed): the Response object and every streamed event, completed and failed."""

from __future__ import annotations

import asyncio
import functools
import json
from collections.abc import AsyncIterator, Iterable
from typing import Any

from pydantic import TypeAdapter

from functions.gateway.openai.responses_input import translate_request
from functions.gateway.openai.responses_output import response_object
from functions.gateway.openai.responses_stream import response_events
from functions.gateway.streaming import error_event, message_to_events
from shared.errors import Overloaded


@functools.cache
def event_adapter() -> TypeAdapter[Any]:
    """The SDK's own type of a streamed event (openai imported here: 1.5 s a collecting worker
    would pay, tests/lazy_imports.py)."""
    from openai.types.responses import ResponseStreamEvent

    return TypeAdapter(ResponseStreamEvent)


MESSAGE: dict[str, Any] = {
    "id": "msg_1",
    "type": "message",
    "role": "assistant",
    "model": "claude-test",
    "content": [
        {"type": "thinking", "thinking": "hmm", "signature": "sig"},
        {"type": "text", "text": "Let me look that up for you."},
        {"type": "tool_use", "id": "toolu_1", "name": "lookup", "input": {"q": "x"}},
    ],
    "stop_reason": "tool_use",
    "stop_sequence": None,
    "usage": {"input_tokens": 3, "output_tokens": 4, "cache_read_input_tokens": 2},
}
REQUEST = translate_request(
    {
        "model": "default",
        "input": "hi",
        "tools": [{"type": "function", "name": "lookup", "parameters": {"type": "object"}}],
        "text": {"format": {"type": "json_schema", "name": "n", "schema": {"type": "object"}}},
    },
    lambda model: frozenset({"anthropic"}),
)


def streamed(chunks: Iterable[bytes]) -> list[dict[str, Any]]:
    async def source() -> AsyncIterator[bytes]:
        for chunk in chunks:
            yield chunk

    async def collect() -> bytes:
        return b"".join([out async for out in response_events(source(), REQUEST, "resp_1", 1)])

    text = asyncio.run(collect()).decode()
    return [json.loads(block.split("data: ", 1)[1]) for block in text.split("\n\n") if block]


def test_a_response_object_is_valid_for_the_sdk() -> None:
    from openai.types.responses import Response

    response = Response.model_validate(response_object(MESSAGE, REQUEST, "resp_1", 1))
    assert response.usage is not None and response.usage.input_tokens == 5
    assert response.usage.input_tokens_details.cached_tokens == 2
    assert [item.type for item in response.output] == ["message", "function_call"]


def test_every_streamed_event_is_valid_for_the_sdk() -> None:
    events = streamed(message_to_events(MESSAGE))
    for event in events:
        event_adapter().validate_python(event)
    assert events[-1]["type"] == "response.completed"


def test_a_failed_stream_is_valid_for_the_sdk() -> None:
    first = next(iter(message_to_events(MESSAGE)))
    events = streamed([first, error_event(Overloaded("upstream overloaded"))])
    for event in events:
        event_adapter().validate_python(event)
    assert [e["type"] for e in events[-2:]] == ["error", "response.failed"]
    assert events[-1]["response"]["error"]["message"] == "upstream overloaded"


def test_a_stream_that_just_ends_is_failed_not_complete() -> None:
    events = streamed(list(message_to_events(MESSAGE))[:4])
    assert events[-1]["type"] == "response.failed"


def test_events_split_anywhere_translate_the_same() -> None:
    whole = b"".join(message_to_events(MESSAGE))
    in_bytes = streamed(whole[n : n + 1] for n in range(len(whole)))
    assert in_bytes == streamed([whole])
