"""The gateway's spans and GenAI metrics: a chat span per call, a client span per attempt with
its decisions, fallbacks as events; token usage and duration in /metrics. No HTTP, no sleeps."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from functions.gateway.config import GatewayConfig
from functions.gateway.providers.base import Provider
from functions.gateway.router import Router
from functions.gateway.service import GatewayService
from shared import metrics, telemetry
from shared.errors import Overloaded
from shared.http import Call
from shared.resilience import RetryPolicy
from tests.fakes.provider import FakeTime, ScriptedProvider
from tests.fakes.traces import attributes, spans  # noqa: F401 (a fixture)
from tests.gateway.support import ANTHROPIC, LOCAL

if TYPE_CHECKING:
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

ROUTE = {"deployments": [ANTHROPIC, LOCAL], "fallback_to_local": True}


def service(provider: ScriptedProvider, route: str = "spans") -> GatewayService:
    config = GatewayConfig.model_validate(
        {"routes": {route: ROUTE}, "retry": {"max_attempts": 2, "base_delay_s": 1}}
    )
    providers: dict[str, Provider] = {"anthropic": provider, "local": ScriptedProvider()}
    fake = FakeTime()
    policy = RetryPolicy(config.retry, rng=lambda low, high: high)
    router = Router(config, providers, sleep=fake.sleep, clock=fake.clock, policy=policy)
    return GatewayService(config, router)


def ask(gateway: GatewayService, body: dict[str, Any]) -> Any:
    call = Call(method="POST", path="/v1/messages", headers={}, body=b"", request_id="req_1")

    async def served() -> Any:
        with telemetry.server_span("POST /v1/messages", {}):  # as the edge serves it
            return await gateway.complete(call, body)

    return asyncio.run(served())


def test_each_attempt_is_a_chat_span_under_the_server_span(
    spans: InMemorySpanExporter,  # noqa: F811
) -> None:
    busy = ScriptedProvider(Overloaded("busy"), Overloaded("busy"))
    ask(service(busy), {"model": "spans", "max_tokens": 64, "messages": []})

    finished = spans.get_finished_spans()
    [call] = [s for s in finished if s.kind.name == "SERVER"]
    attempts = [s for s in finished if s.kind.name == "CLIENT"]
    assert attributes(call) | {
        "gen_ai.request.model": "spans",
        "gen_ai.provider.name": "agentorch.local",
        "agentorch.gateway.route": "spans",
        "agentorch.gateway.attempts": 3,
        "agentorch.gateway.fallbacks": 1,
    } == attributes(call)
    assert [e.name for e in call.events] == ["attempt_failed", "attempt_failed", "fallback"]
    decisions = [dict(e.attributes or {}) for e in call.events[:2]]
    assert [d["agentorch.gateway.next"] for d in decisions] == ["retry", "fall back"]
    assert decisions[0]["agentorch.gateway.wait_s"] == 1.0
    assert [a.name for a in attempts] == [f"chat {ANTHROPIC['model']}"] * 2 + [
        f"chat {LOCAL['model']}"
    ]
    first, second, last = (attributes(a) for a in attempts)
    assert first["error.type"] == "Overloaded" and first["agentorch.gateway.retryable"] is True
    assert first["agentorch.gateway.circuit"] == "closed"
    assert second["agentorch.gateway.attempt"] == 2
    assert second["gen_ai.provider.name"] == "anthropic"
    assert "error.type" not in last and last["gen_ai.provider.name"] == "agentorch.local"
    assert (
        last
        | {
            "gen_ai.operation.name": "chat",
            "gen_ai.response.model": "scripted",
            "gen_ai.response.finish_reasons": ("end_turn",),
            "gen_ai.usage.input_tokens": 1,
            "gen_ai.usage.output_tokens": 2,
        }
        == last
    )
    for attempt in attempts:
        assert attempt.parent is not None and attempt.parent.span_id == call.context.span_id


def test_token_usage_and_duration_are_in_metrics() -> None:
    ask(service(ScriptedProvider()), {"model": "spans", "max_tokens": 8, "messages": []})
    metrics.flush()
    text = metrics.render()[0].decode()
    usage = 'gen_ai_client_token_usage_sum{model="spans",provider="anthropic",route="spans",'
    assert usage + 'token_type="output"} 2.0' in text
    assert 'gen_ai_client_operation_duration_seconds_count{error_type="",model="spans"' in text


def test_a_streams_usage_is_counted_when_it_ends() -> None:
    events = [
        b'event: message_start\ndata: {"type":"message_start","message":{"id":"m",'
        b'"model":"x","usage":{"input_tokens":7,"output_tokens":1}}}\n\n',
        b'event: message_delta\ndata: {"type":"message_delta","delta":{"stop_reason":'
        b'"end_turn"},"usage":{"output_tokens":5}}\n\n',
        b'event: message_stop\ndata: {"type":"message_stop"}\n\n',
    ]
    gateway = service(ScriptedProvider(events), route="streamed")
    call = Call(method="POST", path="/v1/messages", headers={}, body=b"", request_id="req_2")

    async def streamed() -> bytes:
        chunks, _ = await gateway.stream(call, {"model": "streamed", "messages": []})
        return b"".join([chunk async for chunk in chunks])

    assert b"message_stop" in asyncio.run(streamed())
    metrics.flush()
    text = metrics.render()[0].decode()
    usage = 'gen_ai_client_token_usage_sum{model="streamed",provider="anthropic",route="streamed",'
    assert usage + 'token_type="input"} 7.0' in text
    assert usage + 'token_type="output"} 5.0' in text
