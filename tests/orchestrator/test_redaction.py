"""Credentials quoted by the gateway or by an agent reach no run's result, trace or sink
event: scrubbed where the run records an error, even behind an older gateway that leaks."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from functions.orchestrator.config import OrchestratorConfig
from functions.orchestrator.model import GatewayModel
from functions.orchestrator.runs import RunRegistry
from functions.orchestrator.service import OrchestratorService
from functions.orchestrator.sink import EventSink
from shared.aio import AsyncHttp
from shared.http import Call
from shared.redact import MARKER
from tests.fakes.anthropic_server import Answer, FakeAnthropic, Fault
from tests.gateway.support import BASE_CONFIG, ServedGateway, create_gateway_app, merged
from tests.gateway.support import write_config as write_gateway_config
from tests.orchestrator.fakes import CALCULATOR, FakeAgents, FakeEndpoint, calculate, directory

pytestmark = pytest.mark.anyio

SECRET = "gw-upstream-secret-7f3a9c1e5b"
"""A configured credential that looks like no known one."""
SHAPED = "sk-ant-api03-" + "Q7x" * 14
"""An Anthropic key the orchestrator was never given: caught by its shape alone."""
TOOL_TURN = {
    "id": "msg_1",
    "type": "message",
    "role": "assistant",
    "model": "anthropic",
    "content": [{"type": "tool_use", "id": "call_0", "name": "web", "input": {}}],
    "stop_reason": "tool_use",
    "usage": {"input_tokens": 5, "output_tokens": 5},
}


def orchestrator(
    fakes: FakeAgents, http: AsyncHttp, gateway_url: str, sink: FakeEndpoint
) -> OrchestratorService:
    settings = OrchestratorConfig.model_validate(
        {"gateway": {"url": gateway_url, "retry": {"max_attempts": 1}}}
    )
    model = GatewayModel(http, gateway_url, "anthropic", settings.gateway.retry)
    events = EventSink(http, sink.url, settings.sink.model_copy(update={"base_delay_s": 0.0}))
    agents = directory(fakes, http)
    return OrchestratorService(settings, model, agents, events, RunRegistry(60.0))


async def run(service: OrchestratorService, sink: FakeEndpoint) -> tuple[dict[str, Any], str]:
    """The run's answer, and everything that left it (answer and sink event) as one text."""
    reply = await service.submit(
        _post({"task": "what is new on the web?", "agents": list(service.agents.names())})
    )
    [event] = await sink.wait_for(1)
    return reply.body, json.dumps(reply.body) + json.dumps(event.body)


def _post(body: dict[str, Any]) -> Call:
    headers = {"content-type": "application/json"}
    return Call("POST", "/", headers, json.dumps(body).encode(), "req-1")


async def test_a_leaking_gateway_and_agent_leave_no_credential_in_the_run(
    fake_agents: FakeAgents, http: AsyncHttp, sink: FakeEndpoint, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TAVILY_API_KEY", SECRET)
    refusal = {"type": "error", "error": {"type": "api_error", "message": f"bad key {SECRET}"}}
    fake_agents.add("web", lambda arguments: (400, refusal))
    leak = f"anthropic: refused the gateway's own credentials (HTTP 401): invalid {SHAPED}"
    gateway = FakeEndpoint("/v1/messages").enqueue(
        (200, TOOL_TURN),
        (502, {"type": "error", "error": {"type": "api_error", "message": leak}}),
    )
    await gateway.start()
    try:
        body, shown = await run(orchestrator(fake_agents, http, gateway.url, sink), sink)
    finally:
        await gateway.close()

    assert body["status"] == "failed" and len(gateway.received) == 2
    assert SECRET not in shown and SHAPED not in shown and SHAPED[:16] not in shown
    assert body["error"].endswith(f"invalid {MARKER}")
    assert [step["error"] for step in body["steps"][1:]] == [
        f"agent web answered 400: bad key {MARKER}",
        body["error"],
    ]


async def test_a_run_through_the_gateway_keeps_its_provider_key_out(
    fake_agents: FakeAgents,
    http: AsyncHttp,
    sink: FakeEndpoint,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    fake_agents.add("calculator", calculate, CALCULATOR.schema())
    config = merged(BASE_CONFIG, {"retry": {"max_attempts": 1}})
    monkeypatch.setenv("GATEWAY_CONFIG", str(write_gateway_config(tmp_path, config)))
    upstream = FakeAnthropic(api_key=SECRET).start()
    for name, value in upstream.environ().items():
        monkeypatch.setenv(name, value)
    upstream.enqueue(
        Answer.tool_use("calculator", {"expression": "2+2"}, tool_id="call_0"),
        Fault(401, message=f"request with x-api-key {SECRET!r} refused"),
    )
    gateway = ServedGateway(create_gateway_app())
    own = AsyncHttp()
    try:
        body, shown = await run(orchestrator(fake_agents, own, gateway.url, sink), sink)
    finally:
        # No connection left open into the gateway's loop when it stops (uvloop refuses to
        # close around one): its clients and its upstream go first.
        await own.close()
        upstream.stop()
        gateway.stop()

    assert [step["kind"] for step in body["steps"]] == ["model", "agent", "model"]
    assert body["status"] == "failed" and "HTTP 401" in body["error"]
    assert SECRET not in shown and SECRET[:12] not in shown
