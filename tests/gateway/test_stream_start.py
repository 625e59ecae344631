"""What counts as a stream having begun: failover before it, an honest ending after it."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

from functions.gateway.config import GatewayConfig
from functions.gateway.providers.local import MARK, LocalProvider
from functions.gateway.router import Outcome, Router
from functions.gateway.streaming import MAX_HELD_BYTES, WholeEvents, guarded
from shared.errors import UpstreamUnavailable
from shared.http import sse_event
from tests.fakes.provider import FakeTime, ScriptedProvider, chunks_of
from tests.gateway.support import ANTHROPIC, LOCAL

OVERLOADED_EVENT = sse_event(
    "error", {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
)


def router_with(primary: ScriptedProvider) -> Router:
    config = GatewayConfig.model_validate(
        {
            "routes": {
                "r": {
                    "deployments": [{**ANTHROPIC, "max_attempts": 1}, LOCAL],
                    "fallback_to_local": True,
                }
            }
        }
    )
    fake = FakeTime()
    return Router(config, {"anthropic": primary, "local": LocalProvider()}, sleep=fake.sleep)


async def joined(chunks: AsyncIterator[bytes]) -> bytes:
    return b"".join([chunk async for chunk in chunks])


def stream(router: Router) -> tuple[bytes, Outcome]:
    async def run() -> tuple[bytes, Outcome]:
        chunks, outcome = await router.stream("r", BODY)
        return await joined(chunks), outcome

    return asyncio.run(run())


BODY = {"model": "r", "max_tokens": 64, "messages": [{"role": "user", "content": "hi"}]}


def test_a_stream_opening_with_an_error_event_falls_over_to_the_next_deployment() -> None:
    primary = ScriptedProvider([OVERLOADED_EVENT])

    raw, outcome = stream(router_with(primary))
    text = raw.decode()

    assert (outcome.provider, outcome.fallbacks) == ("local", 1)
    assert MARK in text and "overloaded_error" not in text
    assert len(primary.calls) == 1


def test_an_empty_stream_falls_over_too() -> None:
    raw, outcome = stream(router_with(ScriptedProvider([])))

    assert outcome.provider == "local"
    assert b"event: message_stop" in raw


def test_an_upstream_error_event_mid_stream_is_passed_on_once() -> None:
    start = sse_event("message_start", {"type": "message_start", "message": {}})

    events = asyncio.run(joined(guarded(start, chunks_of([OVERLOADED_EVENT]), "anthropic")))

    assert events.decode().count("event: error") == 1


def test_message_stop_inside_a_text_delta_does_not_hide_a_truncated_stream() -> None:
    start = sse_event("message_start", {"type": "message_start", "message": {}})
    sly = sse_event(
        "content_block_delta",
        {"type": "content_block_delta", "delta": {"text": "\nevent: message_stop\n\n"}},
    )
    # Split inside the delta, so that no chunk boundary helps.
    chunks = [sly[:30], sly[30:]]

    events = asyncio.run(joined(guarded(start, chunks_of(chunks), "anthropic"))).decode()

    assert events.endswith(
        sse_event(
            "error",
            {
                "type": "error",
                "error": {
                    "type": "api_error",
                    "message": "the anthropic stream ended before message_stop",
                },
            },
        ).decode()
    )


def test_a_complete_stream_split_anywhere_gets_no_error_event() -> None:
    start = sse_event("message_start", {"type": "message_start", "message": {}})
    stop = sse_event("message_stop", {"type": "message_stop"})
    for cut in range(1, len(stop)):
        chunks = [stop[:cut], stop[cut:]]
        events = asyncio.run(joined(guarded(start, chunks_of(chunks), "anthropic"))).decode()
        assert "event: error" not in events, cut


def test_a_break_mid_stream_ends_with_one_error_event() -> None:
    start = sse_event("message_start", {"type": "message_start", "message": {}})

    breaking = chunks_of([b"event: ping\ndata: {}\n\n", UpstreamUnavailable("connection reset")])

    events = asyncio.run(joined(guarded(start, breaking, "anthropic"))).decode()
    last = events.strip().split("\n\n")[-1]

    assert last.startswith("event: error")
    assert "connection reset" in json.loads(last.split("data: ", 1)[1])["error"]["message"]


def test_a_break_mid_line_drops_the_partial_event_before_the_error_event() -> None:
    start = sse_event("message_start", {"type": "message_start", "message": {}})
    delta = sse_event("content_block_delta", {"type": "content_block_delta", "text": "half"})
    broken = delta[: delta.index(b"half") + 2]  # ... "text":"ha

    breaking = chunks_of([broken, UpstreamUnavailable("connection reset")])
    events = asyncio.run(joined(guarded(start, breaking, "anthropic"))).decode()

    assert events.startswith(start.decode())
    [error] = events.removeprefix(start.decode()).removesuffix("\n\n").split("\n\n")
    assert error.startswith("event: error\ndata: {")
    assert "connection reset" in json.loads(error.split("data: ", 1)[1])["error"]["message"]


def test_whole_events_pass_at_their_blank_line_whatever_the_line_endings() -> None:
    for ending in ("\n", "\r\n", "\r"):
        one = f"event: ping{ending}data: {{}}{ending}{ending}".encode()
        stream = one * 3
        for cut in range(1, len(stream)):
            whole = WholeEvents()
            passed = [whole.feed(stream[:cut]), whole.feed(stream[cut:])]
            assert passed[0] == one * (passed[0].count(b"ping")), (ending, cut)
            assert b"".join(passed) == stream, (ending, cut)
            assert whole.before_error() == b""


def test_an_event_longer_than_the_hold_is_passed_on_and_its_line_closed_before_an_error() -> None:
    whole = WholeEvents()

    assert whole.feed(b"event: content_block_start\ndata: {") == b""
    long = b"x" * MAX_HELD_BYTES
    assert whole.feed(long).endswith(long)  # no longer held
    assert whole.before_error() == b"\n"  # the open line is closed; the event is named error
    assert whole.feed(b'"}\n\n') == b'"}\n\n'
    assert whole.before_error() == b""
