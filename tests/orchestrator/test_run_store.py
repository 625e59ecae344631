"""CloudEvent runs in a shared store (``run_store.StoreRuns``): a redelivery that reaches
another instance is answered with the first run's result, never run again; the store being
down refuses the event rather than run it with no record."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from functions.orchestrator.config import OrchestratorConfig
from functions.orchestrator.deliveries import Message, Outcome, deliver
from functions.orchestrator.model import ModelReply
from functions.orchestrator.run_store import RunInProgress, StoreRuns
from functions.orchestrator.service import REPLAYED_HEADER, OrchestratorService, run_registry
from shared.aio import AsyncHttp
from shared.errors import StoreUnavailable, UpstreamUnavailable
from shared.http import Call
from shared.store import open_store
from shared.store.guard import GuardedStore
from tests.orchestrator.fakes import FakeAgents, ScriptedModel, directory, failure, text
from tests.served import refused_url

pytestmark = pytest.mark.anyio

CONFIG = OrchestratorConfig.model_validate({"gateway": {"url": "http://gateway.invalid"}})


def cloudevent(task: str, event_id: str = "evt-1") -> Call:
    headers = {
        "content-type": "application/json",
        "ce-specversion": "1.0",
        "ce-id": event_id,
        "ce-source": "/tests/broker",
        "ce-type": "dev.agentorch.task.requested",
    }
    return Call("POST", "/", headers, json.dumps({"task": task}).encode(), "req-1")


@dataclass
class HeldModel:
    """A model whose answer waits until the test lets it go."""

    release: asyncio.Event = field(default_factory=asyncio.Event)
    called: asyncio.Event = field(default_factory=asyncio.Event)
    route: str = "default"

    async def create(self, request: dict[str, Any], *, timeout_s: float) -> ModelReply:
        self.called.set()
        await self.release.wait()
        return text("held answer")


@pytest.fixture
async def shared_file(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path}/state.db"


@pytest.fixture
async def stores(shared_file: str) -> AsyncIterator[list[GuardedStore]]:
    """Two instances' stores on one file: what two processes of the emulator share."""
    opened = [open_store(shared_file), open_store(shared_file)]
    yield opened
    for store in opened:
        await store.aclose()


def instance(
    fakes: FakeAgents, http: AsyncHttp, model: Any, store: GuardedStore
) -> OrchestratorService:
    runs = run_registry(CONFIG, store)
    assert isinstance(runs, StoreRuns)
    return OrchestratorService(CONFIG, model, directory(fakes, http), None, runs, store=store)


async def test_a_redelivery_to_another_instance_is_a_replay(
    fake_agents: FakeAgents, http: AsyncHttp, stores: list[GuardedStore]
) -> None:
    first_model = ScriptedModel().enqueue(text("ran once"))
    first = instance(fake_agents, http, first_model, stores[0])
    second = instance(fake_agents, http, ScriptedModel(), stores[1])  # never called

    ran = await first.submit(cloudevent("what?"))
    again = await second.submit(cloudevent("what?"))

    assert ran.body["answer"] == "ran once" and "replayed" not in ran.body
    assert again.body == {**ran.body, "replayed": True}
    assert again.headers[REPLAYED_HEADER] == "true"
    assert len(first_model.requests) == 1


async def test_a_redelivery_while_another_instance_runs_it_is_refused_with_409(
    fake_agents: FakeAgents, http: AsyncHttp, stores: list[GuardedStore]
) -> None:
    held = HeldModel()
    first = instance(fake_agents, http, held, stores[0])
    second = instance(fake_agents, http, ScriptedModel(), stores[1])
    running = asyncio.ensure_future(first.submit(cloudevent("slow")))
    await held.called.wait()

    with pytest.raises(RunInProgress, match="under way on another instance") as refused:
        await second.submit(cloudevent("slow"))
    assert refused.value.status_code == 409 and refused.value.headers["retry-after"] == "1"
    joined = asyncio.ensure_future(first.submit(cloudevent("slow")))  # same instance: joins

    held.release.set()
    ran, replay = await running, await joined
    assert replay.body == {**ran.body, "replayed": True}
    after = await second.submit(cloudevent("slow"))
    assert after.body == {**ran.body, "replayed": True}


async def test_a_run_that_could_not_start_is_run_by_its_redelivery_elsewhere(
    fake_agents: FakeAgents, http: AsyncHttp, stores: list[GuardedStore]
) -> None:
    down = ScriptedModel().enqueue(failure(UpstreamUnavailable("refused"), 2))
    first = instance(fake_agents, http, down, stores[0])
    second = instance(fake_agents, http, ScriptedModel().enqueue(text("now")), stores[1])
    with pytest.raises(UpstreamUnavailable):
        await first.submit(cloudevent("x"))
    ran = await second.submit(cloudevent("x"))
    assert ran.body["answer"] == "now" and "replayed" not in ran.body


async def test_a_store_that_is_down_refuses_the_event_and_says_so(
    fake_agents: FakeAgents, http: AsyncHttp
) -> None:
    store = open_store(refused_url().replace("http://", "redis://"), timeout_s=1)
    model = ScriptedModel()  # never called: running without a record could run it twice
    orchestrator = instance(fake_agents, http, model, store)
    try:
        with pytest.raises(StoreUnavailable, match="redis store is unavailable") as refused:
            await orchestrator.submit(cloudevent("x"))
        assert refused.value.status_code == 503
        message = Message("m-1", "queue", "aws:sqs", json.dumps({"task": "x"}).encode())
        delivered = await deliver(orchestrator, message)
        assert delivered.outcome is Outcome.RETRY and not delivered.acknowledged
        health = orchestrator.health()["store"]
        assert health["backend"] == "redis" and health["ok"] is False
        assert health["failures"] == 2 and "put" in health["last_error"]
        assert model.requests == []
    finally:
        await store.aclose()


async def test_a_memory_store_keeps_the_in_process_registry() -> None:
    from functions.orchestrator.runs import RunRegistry

    store = open_store("memory://")
    assert isinstance(run_registry(CONFIG, store), RunRegistry)
