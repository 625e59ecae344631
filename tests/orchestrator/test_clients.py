"""The gateway client and the agent client over real HTTP: what is retried and what is not."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from functions.orchestrator.agent_types import AgentCallError, AgentState
from functions.orchestrator.model import GatewayModel, ModelCallError
from shared.aio import AsyncHttp
from shared.resilience import RetrySettings
from tests.orchestrator.fakes import (
    FakeAgents,
    FakeEndpoint,
    closed_port_url,
    directory,
)

pytestmark = pytest.mark.anyio
MESSAGE = {
    "type": "message",
    "role": "assistant",
    "content": [{"type": "text", "text": "hi"}],
    "stop_reason": "end_turn",
    "usage": {"input_tokens": 3, "output_tokens": 1},
}
REQUEST = {"max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture
async def gateway() -> AsyncIterator[FakeEndpoint]:
    endpoint = FakeEndpoint("/v1/messages")
    await endpoint.start()
    yield endpoint
    await endpoint.close()


def model(http: AsyncHttp, url: str, attempts: int = 3) -> GatewayModel:
    retry = RetrySettings(max_attempts=attempts, base_delay_s=0.0, max_delay_s=0.0)
    return GatewayModel(http, url, "fast", retry, api_key="k1")


async def test_a_call_names_the_route_and_reads_the_provider(
    http: AsyncHttp, gateway: FakeEndpoint
) -> None:
    gateway.enqueue((200, MESSAGE, {"x-gateway-provider": "local"}))
    reply = await model(http, gateway.url).create(REQUEST, timeout_s=5)

    assert reply.provider == "local" and reply.attempts == 1
    assert (reply.input_tokens, reply.output_tokens) == (3, 1)
    [sent] = gateway.received
    assert sent.body["model"] == "fast" and sent.headers["x-api-key"] == "k1"
    assert sent.headers["anthropic-version"] == "2023-06-01"


async def test_5xx_after_the_gateways_own_retries_is_retried(
    http: AsyncHttp, gateway: FakeEndpoint
) -> None:
    gateway.enqueue((503, {"type": "error", "error": {"message": "busy"}}), (200, MESSAGE))
    reply = await model(http, gateway.url).create(REQUEST, timeout_s=5)
    assert reply.attempts == 2 and len(gateway.received) == 2


async def test_the_pause_between_attempts_takes_the_injected_jitter(
    http: AsyncHttp, gateway: FakeEndpoint
) -> None:
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    retry = RetrySettings(max_attempts=2, base_delay_s=0.5, max_delay_s=4.0)
    jittered = GatewayModel(http, gateway.url, "fast", retry, sleep=sleep, rng=lambda lo, hi: hi)
    gateway.enqueue((503, {"type": "error", "error": {"message": "busy"}}), (200, MESSAGE))
    assert (await jittered.create(REQUEST, timeout_s=5)).attempts == 2
    assert slept == [0.5]  # the bound the injected rng chose, not a random point below it


@pytest.mark.parametrize(
    "answer",
    [
        (503, {}, {"x-should-retry": "false"}),
        (400, {"type": "error", "error": {"message": "messages: Field required"}}),
        (429, {}, {"retry-after": "1"}),  # the gateway already waited and retried
    ],
)
async def test_what_is_not_retried(http: AsyncHttp, gateway: FakeEndpoint, answer: Any) -> None:
    gateway.enqueue(answer, (200, MESSAGE))
    with pytest.raises(ModelCallError) as raised:
        await model(http, gateway.url).create(REQUEST, timeout_s=5)
    assert raised.value.attempts == 1 and len(gateway.received) == 1
    assert str(answer[0]) in raised.value.error.message


async def test_an_unreachable_gateway_is_retried_then_reported(http: AsyncHttp) -> None:
    with pytest.raises(ModelCallError, match="unreachable") as raised:
        await model(http, closed_port_url(), attempts=2).create(REQUEST, timeout_s=5)
    assert raised.value.attempts == 2 and raised.value.error.retryable


async def test_an_answer_that_is_no_message_is_a_failure(
    http: AsyncHttp, gateway: FakeEndpoint
) -> None:
    gateway.enqueue((200, {"hello": 1}), (200, {"hello": 1}))
    with pytest.raises(ModelCallError, match="not a message"):
        await model(http, gateway.url, attempts=2).create(REQUEST, timeout_s=5)


async def test_agent_retries_only_what_is_safe(fake_agents: FakeAgents, http: AsyncHttp) -> None:
    answers: dict[str, list[tuple[int, Any] | tuple[int, Any, dict[str, str]]]] = {
        "flaky": [(503, {}), (502, {}), (200, {"result": "ok"})],
        "limited": [(429, {}, {"retry-after": "0"}), (200, {"result": "ok"})],
        "bare429": [(429, {}), (200, {"result": "ok"})],
        "refuses": [(400, {"type": "error", "error": {"message": "bad x"}}), (200, {})],
    }
    for name, queue in answers.items():
        fake_agents.add(name, lambda _args, queue=queue: queue.pop(0))  # type: ignore[misc]
    agents = directory(fake_agents, http)

    assert (await agents.call("flaky", {}, timeout_s=5)).attempts == 3
    assert (await agents.call("limited", {}, timeout_s=5)).attempts == 2
    for name, says in (("bare429", "429"), ("refuses", "400: bad x")):
        with pytest.raises(Exception, match=says) as raised:
            await agents.call(name, {}, timeout_s=5)
        assert getattr(raised.value, "attempts", None) == 1


async def test_an_agent_saying_not_configured_is_not_retried_and_left_out_next(
    fake_agents: FakeAgents, http: AsyncHttp
) -> None:
    # Its schema was fetched while it had a key; then the key went: one call, no retries.
    refusal = {"type": "error", "error": {"type": "not_configured", "message": "set KEY"}}
    fake_agents.add("tavily", lambda _args: (503, refusal))
    agents = directory(fake_agents, http)
    assert (await agents.statuses())["tavily"].reachable

    with pytest.raises(AgentCallError, match="503: set KEY") as raised:
        await agents.call("tavily", {"query": "q"}, timeout_s=5)

    assert raised.value.attempts == 1 and len(fake_agents.calls("tavily")) == 1
    status = (await agents.statuses())["tavily"]  # from the cache: no new schema fetch
    assert status.state is AgentState.NOT_CONFIGURED and status.reason == "set KEY"
    assert fake_agents.schema_requests == 1


async def test_schemas_are_fetched_once_for_concurrent_runs(
    fake_agents: FakeAgents, http: AsyncHttp
) -> None:
    fake_agents.add("calculator", lambda _: (200, {}))
    agents = directory(fake_agents, http)
    results = await asyncio.gather(*(agents.statuses() for _ in range(50)))
    assert all(r["calculator"].reachable for r in results)
    assert fake_agents.schema_requests == 1
    await agents.statuses(refresh=True)
    assert fake_agents.schema_requests == 2
