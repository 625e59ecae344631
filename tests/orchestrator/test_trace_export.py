"""One task, one trace: the orchestrator, the gateway, an agent and the sink, each served on
real sockets, export their spans over OTLP/HTTP (the SDK's exporter, batch processor) to a
receiver that decodes them with opentelemetry-proto; the spans link across all four."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from emulator.traces import ReceivedSpan
from shared import telemetry
from shared.entry import function_app
from tests.fakes.otlp import FakeOtlp
from tests.gateway.support import module_gateway
from tests.orchestrator.fakes import FakeEndpoint
from tests.orchestrator.serving import REPO_ROOT, serve_orchestrator
from tests.served import ServedApp
from tests.waiting import wait_until

pytestmark = pytest.mark.anyio
CALCULATOR_SOURCE = str(REPO_ROOT / "functions/agents/calculator/main.py")


@pytest.fixture
def otlp(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeOtlp]:
    with FakeOtlp() as receiver:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.url)
        monkeypatch.setenv("OTEL_METRICS_EXPORTER", "none")
        telemetry.reset()  # resolved again, from this environment: on
        try:
            yield receiver
        finally:
            telemetry.reset()  # flushes what the batch processor holds


@pytest.fixture
async def stack(
    otlp: FakeOtlp, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[str, FakeEndpoint]]:
    sink = await FakeEndpoint().start()
    calculator = await asyncio.to_thread(ServedApp, function_app(CALCULATOR_SOURCE, "calculator"))
    try:
        with module_gateway(tmp_path) as gateway:
            monkeypatch.setenv("GATEWAY_URL", gateway.url)
            monkeypatch.setenv("CALCULATOR_URL", calculator.url)
            monkeypatch.setenv("K_SINK", sink.url)
            async with serve_orchestrator() as url:
                yield url, sink
    finally:
        await asyncio.to_thread(calculator.stop)
        await sink.close()


def child_of(spans: list[ReceivedSpan], parent: ReceivedSpan, name: str) -> ReceivedSpan:
    found = [s for s in spans if s.parent_span_id == parent.span_id and s.name == name]
    children = [s.name for s in spans if s.parent_span_id == parent.span_id]
    assert len(found) == 1, f"{parent.name} has no one child {name!r}: {children}"
    return found[0]


async def test_a_task_is_one_trace_across_orchestrator_gateway_agent_and_sink(
    stack: tuple[str, FakeEndpoint], otlp: FakeOtlp
) -> None:
    url, sink = stack
    async with httpx.AsyncClient(timeout=30) as client:
        answer = await client.post(url, json={"task": "What is 17*23?", "agents": ["calculator"]})
    result: dict[str, Any] = answer.json()
    assert answer.status_code == 200 and result["status"] == "completed", result
    [delivered] = await sink.wait_for(1)

    def exported() -> list[ReceivedSpan] | None:
        telemetry.flush()  # what the batch processor holds goes out now
        spans = otlp.spans()
        return spans if any(s.name == "send sink" for s in spans) else None

    found = await asyncio.to_thread(wait_until, exported, 5, "the sink's span at the receiver")
    spans: list[ReceivedSpan] = found or []

    trace_id = result["trace_id"]
    assert {s.trace_id for s in spans} == {trace_id}
    [root] = [s for s in spans if not s.parent_span_id]
    assert (root.name, root.kind) == ("POST /", "SERVER")
    run = child_of(spans, root, "invoke_agent orchestrator")
    assert run.attributes["gen_ai.operation.name"] == "invoke_agent"
    # orchestrator -> gateway: the model call's client span is the gateway's caller
    chat = [s for s in spans if s.parent_span_id == run.span_id and s.name == "chat default"]
    assert len(chat) == 2 and {s.kind for s in chat} == {"CLIENT"}
    served = child_of(spans, chat[0], "POST /v1/messages")
    assert served.attributes["agentorch.gateway.route"] == "default"
    attempt = child_of(spans, served, "chat local-rules")
    assert attempt.kind == "CLIENT"
    assert attempt.attributes["gen_ai.provider.name"] == "agentorch.local"
    assert attempt.attributes["gen_ai.usage.output_tokens"] > 0
    # orchestrator -> agent: the tool span is the agent's caller
    tool = child_of(spans, run, "execute_tool calculator")
    agent = child_of(spans, tool, "POST /")
    assert agent.kind == "SERVER" and agent.attributes["http.response.status_code"] == 200
    # orchestrator -> sink: the delivery carries the trace, as a header and in the event
    send = child_of(spans, root, "send sink")
    assert send.kind == "PRODUCER"
    assert delivered.headers["traceparent"].split("-")[1:3] == [trace_id, send.span_id]
    assert delivered.body["traceparent"].split("-")[1] == trace_id
    assert delivered.body["data"]["trace_id"] == trace_id
    assert otlp.requests[0].headers["content-type"] == "application/x-protobuf"
