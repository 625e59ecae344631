"""With ``ORCHESTRATOR_API_KEYS`` set, the keys are one gate, not identities: every key holder
reads every run and session. Two ways that lets one client read another's work, kept here as
strict xfails until runs and sessions have owners (a design change, reported, not made here):

- a CloudEvent run's id is derived from its ``source`` and ``id`` (``runs.event_run_id``), which
  are rarely secret (Pub/Sub message ids, a broker's counters): ``GET /runs/{id}`` needs no guess;
- a session id is chosen by the client (``alice``, ``chat-1``): ``GET /sessions/{id}`` reads it,
  ``DELETE`` forgets it, and a task with it writes into that conversation.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from functions.orchestrator.config import OrchestratorConfig
from functions.orchestrator.runs import RunRegistry, event_run_id
from functions.orchestrator.service import OrchestratorService
from shared.aio import AsyncHttp
from shared.api_keys import ApiKeys
from shared.errors import NotFound
from shared.http import Call
from tests.orchestrator.fakes import FakeAgents, ScriptedModel, directory, text

pytestmark = pytest.mark.anyio

ALICE = {"x-api-key": "alice-key"}
MALLORY = {"x-api-key": "mallory-key"}
NO_OWNERS = "runs and sessions have no owner: any key holder reads them (design, reported)"


def orchestrator(fakes: FakeAgents, http: AsyncHttp) -> OrchestratorService:
    config = OrchestratorConfig.model_validate({"gateway": {"url": "http://gateway.invalid"}})
    model = ScriptedModel().enqueue(text("alice's secret answer"))
    runs = RunRegistry(config.dedupe_ttl_s)
    keys = ApiKeys(("alice-key", "mallory-key"), "orchestrator")
    return OrchestratorService(config, model, directory(fakes, http), None, runs, keys=keys)


def call(method: str, path: str, headers: dict[str, str], body: Any = None) -> Call:
    raw = b"" if body is None else json.dumps(body).encode()
    return Call(method, path, {"content-type": "application/json", **headers}, raw, "r")


@pytest.mark.xfail(strict=True, reason=NO_OWNERS)
async def test_an_event_run_is_not_read_by_another_key(
    fake_agents: FakeAgents, http: AsyncHttp
) -> None:
    service = orchestrator(fake_agents, http)
    event = {"ce-specversion": "1.0", "ce-id": "17", "ce-source": "/orders", "ce-type": "t"}
    await service.submit(call("POST", "/", {**ALICE, **event}, {"task": "what is secret?"}))
    derived = event_run_id("/orders", "17")  # no guess: the pair is all it takes
    with pytest.raises(NotFound):
        await service.get_run(call("GET", f"/runs/{derived}", MALLORY))


@pytest.mark.xfail(strict=True, reason=NO_OWNERS)
async def test_a_session_is_not_read_by_another_key(
    fake_agents: FakeAgents, http: AsyncHttp
) -> None:
    service = orchestrator(fake_agents, http)
    await service.submit(call("POST", "/", ALICE, {"task": "hello", "session_id": "alice"}))
    with pytest.raises(NotFound):
        await service.get_session(call("GET", "/sessions/alice", MALLORY))
