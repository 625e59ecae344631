"""A conversation answered by two orchestrator instances that share a real Redis: the first
turn on one, the follow-up on the other, by the offline local model and the real calculator's
core. And a Redis that is down: the session's task is a 503 naming the store."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from functions.orchestrator.config import OrchestratorConfig
from functions.orchestrator.service import OrchestratorService, run_registry
from shared.aio import AsyncHttp
from shared.errors import StoreUnavailable
from shared.http import Call
from shared.store import open_store
from shared.store.guard import GuardedStore
from tests.fakes.redis_server import RedisServer, redis_server
from tests.orchestrator.fakes import CALCULATOR, FakeAgents, OfflineModel, calculate, directory

pytestmark = [pytest.mark.anyio, pytest.mark.processes]  # redis-server


@pytest.fixture(scope="module")
def redis() -> Iterator[RedisServer]:
    with redis_server() as server:
        yield server


@pytest.fixture
async def stores(redis: RedisServer) -> AsyncIterator[list[GuardedStore]]:
    opened = [open_store(redis.url), open_store(redis.url)]
    yield opened
    for store in opened:
        await store.aclose()


def instance(fakes: FakeAgents, http: AsyncHttp, store: GuardedStore) -> OrchestratorService:
    fakes.add("calculator", calculate, CALCULATOR.schema())
    config = OrchestratorConfig.model_validate({"gateway": {"url": "http://gateway.invalid"}})
    runs = run_registry(config, store)
    agents = directory(fakes, http)
    return OrchestratorService(config, OfflineModel(), agents, None, runs, store=store)


def ask(task: str, session_id: str) -> Call:
    body = f'{{"task": "{task}", "session_id": "{session_id}"}}'.encode()
    return Call("POST", "/", {"content-type": "application/json"}, body, "req-1")


async def test_two_instances_answer_one_conversation(
    fake_agents: FakeAgents, http: AsyncHttp, stores: list[GuardedStore]
) -> None:
    first, second = (instance(fake_agents, http, store) for store in stores)
    try:
        asked = await first.submit(ask("What is 6 * 7?", "two-instances"))
        followed = await second.submit(ask("now add 8 to that", "two-instances"))
        assert asked.body["answer"].endswith("6 * 7 = 42.")
        assert followed.body["answer"].endswith("42 + 8 = 50.")
        assert [call["expression"] for call in fake_agents.calls("calculator")] == [
            "6 * 7",
            "42 + 8",
        ]
        history = await first.sessions.history("two-instances")
        assert [turn["task"] for turn in history["turns"]] == [
            "What is 6 * 7?",
            "now add 8 to that",
        ]
    finally:
        await first.sessions.forget("two-instances")


async def test_a_session_task_with_the_store_down_is_a_503(
    fake_agents: FakeAgents, http: AsyncHttp, redis: RedisServer
) -> None:
    store = open_store(redis.url, timeout_s=1)
    service = instance(fake_agents, http, store)
    redis.stop()
    try:
        with pytest.raises(StoreUnavailable) as refused:
            await service.submit(ask("What is 1 + 1?", "down"))
        assert refused.value.status_code == 503
        assert service.health()["store"]["ok"] is False
    finally:
        redis.start()
        await store.aclose()
