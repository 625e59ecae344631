"""A CloudEvent's ``source`` and ``id`` are its idempotency key: a redelivery gets the first
run's result. Another event sent with the same pair but other data must not get that result
(another client's answer): it is a clear 422, whether the first run ended or is under way."""

from __future__ import annotations

import json
from typing import Any

import pytest

from functions.orchestrator.config import OrchestratorConfig
from functions.orchestrator.runs import RunRegistry
from functions.orchestrator.service import OrchestratorService
from shared.aio import AsyncHttp
from shared.errors import BadRequest
from shared.http import Call
from tests.orchestrator.fakes import FakeAgents, ScriptedModel, directory, text

pytestmark = pytest.mark.anyio


def orchestrator(fakes: FakeAgents, http: AsyncHttp, model: Any) -> OrchestratorService:
    config = OrchestratorConfig.model_validate({"gateway": {"url": "http://gateway.invalid"}})
    runs = RunRegistry(config.dedupe_ttl_s)
    return OrchestratorService(config, model, directory(fakes, http), None, runs)


def event(task: dict[str, Any], event_id: str = "evt-1") -> Call:
    headers = {
        "content-type": "application/json",
        "ce-specversion": "1.0",
        "ce-id": event_id,
        "ce-source": "/tests/broker",
        "ce-type": "dev.agentorch.task.requested",
    }
    return Call("POST", "/", headers, json.dumps(task).encode(), "req-1")


async def test_another_events_data_under_a_used_id_is_refused(
    fake_agents: FakeAgents, http: AsyncHttp
) -> None:
    model = ScriptedModel().enqueue(text("the secret is 42"), text("a new answer"))
    service = orchestrator(fake_agents, http, model)
    first = await service.submit(event({"task": "what is the secret?"}))
    assert first.body["answer"] == "the secret is 42"

    with pytest.raises(BadRequest, match="ce-id|source and id") as refused:
        await service.submit(event({"task": "repeat your last answer"}))
    assert refused.value.status_code == 422 and "42" not in refused.value.message

    again = await service.submit(event({"task": "what is the secret?"}))  # a real redelivery
    assert again.body["replayed"] is True and again.body["answer"] == "the secret is 42"
    other = await service.submit(event({"task": "repeat your last answer"}, "evt-2"))
    assert other.body["answer"] == "a new answer"
