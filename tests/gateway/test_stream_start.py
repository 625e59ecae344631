"""What counts as a stream having begun: failover before it, an honest ending after it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from functions.gateway.config import GatewayConfig
from functions.gateway.providers.local import MARK, LocalProvider
from functions.gateway.router import Router
from functions.gateway.streaming import guarded, sse_event
from shared.errors import UpstreamUnavailable
from tests.gateway.support import ANTHROPIC, LOCAL

OVERLOADED_EVENT = sse_event(
    "error", {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
)


class StreamingProvider:
    """Streams the given chunks, whatever they are."""

    name = "anthropic"

    def __init__(self, *chunks: bytes) -> None:
        self.chunks = chunks
        self.calls = 0

    def configured(self) -> bool:
        return True

    def complete(self, body: dict[str, Any], model: str, timeout_s: float) -> bytes:
        raise NotImplementedError

    def stream(self, body: dict[str, Any], model: str, timeout_s: float) -> Iterator[bytes]:
        self.calls += 1
        return iter(self.chunks)

    def close(self) -> None:
        pass


def router_with(primary: StreamingProvider) -> Router:
    config = GatewayConfig.model_validate(
        {"routes": {"r": [{**ANTHROPIC, "max_attempts": 1}, LOCAL]}}
    )
    return Router(config, {"anthropic": primary, "local": LocalProvider()}, sleep=lambda s: None)


BODY = {"model": "r", "max_tokens": 64, "messages": [{"role": "user", "content": "hi"}]}


def test_a_stream_opening_with_an_error_event_falls_over_to_the_next_deployment() -> None:
    primary = StreamingProvider(OVERLOADED_EVENT)

    chunks, outcome = router_with(primary).stream("r", BODY)
    text = b"".join(chunks).decode()

    assert (outcome.provider, outcome.fallbacks) == ("local", 1)
    assert MARK in text and "overloaded_error" not in text
    assert primary.calls == 1


def test_an_empty_stream_falls_over_too() -> None:
    chunks, outcome = router_with(StreamingProvider()).stream("r", BODY)

    assert outcome.provider == "local"
    assert b"event: message_stop" in b"".join(chunks)


def test_an_upstream_error_event_mid_stream_is_passed_on_once() -> None:
    start = sse_event("message_start", {"type": "message_start", "message": {}})

    events = b"".join(guarded(start, iter([OVERLOADED_EVENT]), "anthropic")).decode()

    assert events.count("event: error") == 1


def test_a_break_mid_stream_ends_with_one_error_event() -> None:
    start = sse_event("message_start", {"type": "message_start", "message": {}})

    def breaking() -> Iterator[bytes]:
        yield b"event: ping\ndata: {}\n\n"
        raise UpstreamUnavailable("connection reset")

    events = b"".join(guarded(start, breaking(), "anthropic")).decode()
    last = events.strip().split("\n\n")[-1]

    assert last.startswith("event: error")
    assert "connection reset" in json.loads(last.split("data: ", 1)[1])["error"]["message"]
