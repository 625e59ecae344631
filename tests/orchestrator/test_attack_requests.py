"""Hostile task requests: every one is a 400 that names what is wrong, quoting at most a short
piece of what was sent (an error must not echo kilobytes back, nor a whole hostile value)."""

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
from tests.orchestrator.fakes import FakeAgents, ScriptedModel, directory

pytestmark = pytest.mark.anyio

LONG = "x" * 10_000


def orchestrator(fakes: FakeAgents, http: AsyncHttp) -> OrchestratorService:
    config = OrchestratorConfig.model_validate({"gateway": {"url": "http://gateway.invalid"}})
    runs = RunRegistry(config.dedupe_ttl_s)
    return OrchestratorService(config, ScriptedModel(), directory(fakes, http), None, runs)


def post(body: Any) -> Call:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return Call("POST", "/", {"content-type": "application/json"}, raw, "req-1")


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ({"task": "a", "agents": [LONG + str(n) for n in range(64)]}, "agents: unknown"),
        ({"task": "a", "session_id": LONG}, "session_id"),
        ({"task": "a", "max_steps": int("9" * 4000)}, "max_steps"),
        ({"task": "a", "output_schema": {"$ref": "#/$defs/" + LONG}}, "output_schema"),
        ({"task": "a", "output_schema": {"pattern": "(" + LONG}}, "output_schema"),
    ],
    ids=["agents", "session-id", "max-steps", "ref", "pattern"],
)
async def test_a_hostile_value_is_named_not_echoed(
    fake_agents: FakeAgents, http: AsyncHttp, body: dict[str, Any], says: str
) -> None:
    with pytest.raises(BadRequest, match=says) as refused:
        await orchestrator(fake_agents, http).submit(post(body))
    assert refused.value.status_code == 400 and len(refused.value.message) < 1000
