"""Sessions (``sessions.py``): a task with ``session_id`` runs with the session's earlier turns
(tool calls and results included), bounded by a token budget; its turn is kept;
``GET``/``DELETE /sessions/{id}``; expiry; one task at a time per session (409)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from functions.orchestrator.config import OrchestratorConfig
from functions.orchestrator.model import ModelReply
from functions.orchestrator.runs import RunRegistry
from functions.orchestrator.service import OrchestratorService, build_app
from functions.orchestrator.sessions import Turn, closed, recent
from functions.orchestrator.trace import RunResult, Status, StopReason, Usage
from shared.aio import AsyncHttp
from shared.store.guard import GuardedStore
from shared.store.memory import MemoryStore
from tests.orchestrator.fakes import (
    CALCULATOR,
    FakeAgents,
    ScriptedModel,
    calculate,
    directory,
    text,
    tool_use,
)

pytestmark = pytest.mark.anyio


def config(**sessions: Any) -> OrchestratorConfig:
    return OrchestratorConfig.model_validate(
        {"gateway": {"url": "http://gateway.invalid"}, "sessions": sessions}
    )


def orchestrator(
    fakes: FakeAgents,
    http: AsyncHttp,
    model: Any,
    store: GuardedStore | None = None,
    **sessions: Any,
) -> OrchestratorService:
    fakes.add("calculator", calculate, CALCULATOR.schema())
    settings = config(**sessions)
    agents, runs = directory(fakes, http), RunRegistry(settings.dedupe_ttl_s)
    if store is None:
        return OrchestratorService(settings, model, agents, None, runs)
    return OrchestratorService(settings, model, agents, None, runs, store=store)


class LosingAppends(MemoryStore):
    """A store whose appends fail (a Redis gone between a turn's start and its end)."""

    async def append(self, key: str, item: bytes, *, ttl_s: float | None = None) -> int:
        raise ConnectionError("connection reset")


@pytest.fixture
async def client_of() -> AsyncIterator[Any]:
    """``client_of(service)``: an HTTP client on the service's routes, in this loop."""
    clients: list[httpx.AsyncClient] = []

    def make(service: OrchestratorService) -> httpx.AsyncClient:
        app = build_app(service)

        async def endpoint(request: Request) -> Response:
            return await app(request)

        methods = ["GET", "POST", "DELETE"]
        asgi = Starlette(routes=[Route("/{path:path}", endpoint, methods=methods)])
        client = httpx.AsyncClient(transport=httpx.ASGITransport(asgi), base_url="http://o")
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.aclose()


def turn(index: int, chars: int) -> Turn:
    messages = (
        {"role": "user", "content": f"task {index} " + "x" * chars},
        {"role": "assistant", "content": [{"type": "text", "text": f"answer {index}"}]},
    )
    return Turn(f"run_{index}", f"task {index}", f"answer {index}", "completed", 0.0, messages)


# ---- what the model is shown ----------------------------------------------------------------


def test_the_oldest_whole_turns_go_first_past_the_token_budget() -> None:
    turns = [turn(i, 400) for i in range(5)]  # ~130 tokens each
    kept = recent(turns, max_tokens=300)
    assert [m["content"][:6] for m in kept if m["role"] == "user"] == ["task 3", "task 4"]
    assert len(kept) == 4  # whole turns: never a user message without its answer
    assert recent(turns, max_tokens=10) == []


def test_a_turn_never_ends_on_a_tool_call_without_its_result() -> None:
    call = {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "c"}]}
    stopped = closed([{"role": "user", "content": "task"}, call], "Stopped: steps ran out.")
    assert stopped == (
        {"role": "user", "content": "task"},
        {"role": "assistant", "content": [{"type": "text", "text": "Stopped: steps ran out."}]},
    )
    result = {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1"}]}
    ended = closed([{"role": "user", "content": "task"}, call, result], "4")
    assert ended[:3] == ({"role": "user", "content": "task"}, call, result)
    assert ended[3]["role"] == "assistant"


# ---- through the service --------------------------------------------------------------------


async def test_a_follow_up_sees_the_earlier_turn_with_its_tool_calls(
    fake_agents: FakeAgents, http: AsyncHttp, client_of: Any
) -> None:
    model = ScriptedModel().enqueue(
        tool_use(("calculator", {"expression": "6 * 7"})), text("42"), text("50")
    )
    client = client_of(orchestrator(fake_agents, http, model))

    first = await client.post("/", json={"task": "What is 6 * 7?", "session_id": "chat-1"})
    second = await client.post("/", json={"task": "now add 8 to that", "session_id": "chat-1"})

    assert first.json()["answer"] == "42" and second.json()["answer"] == "50"
    assert first.json()["session"] == {"id": "chat-1", "saved": True}
    shown = model.requests[2]["messages"]
    assert [m["role"] for m in shown] == ["user", "assistant", "user", "assistant", "user"]
    assert "What is 6 * 7?" in shown[0]["content"] and "now add 8" in shown[4]["content"]
    assert "tool_use" in [block["type"] for block in shown[1]["content"]]
    assert [block["type"] for block in shown[2]["content"]] == ["tool_result"]
    assert shown[3]["content"] == [{"type": "text", "text": "42"}]

    history = (await client.get("/sessions/chat-1")).json()
    assert [t["task"] for t in history["turns"]] == ["What is 6 * 7?", "now add 8 to that"]
    assert [t["answer"] for t in history["turns"]] == ["42", "50"]
    assert history["turns"][0]["run_id"] == first.json()["run_id"]


async def test_a_task_without_a_session_keeps_nothing(
    fake_agents: FakeAgents, http: AsyncHttp, client_of: Any
) -> None:
    model = ScriptedModel().enqueue(text("one"), text("two"))
    client = client_of(orchestrator(fake_agents, http, model))
    await client.post("/", json={"task": "a"})
    await client.post("/", json={"task": "b"})
    assert len(model.requests[1]["messages"]) == 1


async def test_delete_forgets_a_session(
    fake_agents: FakeAgents, http: AsyncHttp, client_of: Any
) -> None:
    model = ScriptedModel().enqueue(text("one"), text("fresh"))
    client = client_of(orchestrator(fake_agents, http, model))
    await client.post("/", json={"task": "a", "session_id": "s"})

    deleted = await client.delete("/sessions/s")
    assert deleted.status_code == 200 and deleted.json() == {"session_id": "s", "deleted": True}
    assert (await client.get("/sessions/s")).status_code == 404
    assert (await client.delete("/sessions/s")).status_code == 404
    await client.post("/", json={"task": "b", "session_id": "s"})
    assert len(model.requests[1]["messages"]) == 1  # it starts again


async def test_a_session_expires_after_its_ttl(
    fake_agents: FakeAgents, http: AsyncHttp, client_of: Any
) -> None:
    model = ScriptedModel().enqueue(text("one"))
    client = client_of(orchestrator(fake_agents, http, model, ttl_s=0.05))
    await client.post("/", json={"task": "a", "session_id": "brief"})
    deadline = asyncio.get_running_loop().time() + 5
    while (await client.get("/sessions/brief")).status_code != 404:
        assert asyncio.get_running_loop().time() < deadline, "the session did not expire"
        await asyncio.sleep(0.01)


async def test_bad_session_ids_are_refused_naming_the_rule(
    fake_agents: FakeAgents, http: AsyncHttp, client_of: Any
) -> None:
    client = client_of(orchestrator(fake_agents, http, ScriptedModel()))
    for bad in ("../x", "a b", "", "x" * 129, 7):
        answer = await client.post("/", json={"task": "a", "session_id": bad})
        assert answer.status_code == 400, bad
        assert "session_id" in answer.json()["error"]["message"]
    assert (await client.get("/sessions/a%20b")).status_code == 400
    assert (await client.get("/sessions/")).status_code == 404  # no id: no such route


async def test_a_second_task_on_a_busy_session_is_refused_with_409(
    fake_agents: FakeAgents, http: AsyncHttp, client_of: Any
) -> None:
    release, called = asyncio.Event(), asyncio.Event()

    class Held(ScriptedModel):
        async def create(self, request: dict[str, Any], *, timeout_s: float) -> ModelReply:
            called.set()
            await release.wait()
            return await super().create(request, timeout_s=timeout_s)

    model = Held().enqueue(text("first"), text("after"), text("elsewhere"))
    client = client_of(orchestrator(fake_agents, http, model))
    first = asyncio.ensure_future(client.post("/", json={"task": "a", "session_id": "one"}))
    await called.wait()  # the first task holds the session now

    busy = await client.post("/", json={"task": "b", "session_id": "one"})
    streamed = await client.post("/", json={"task": "b", "session_id": "one", "stream": True})
    other = asyncio.ensure_future(client.post("/", json={"task": "c", "session_id": "two"}))
    release.set()
    assert busy.status_code == streamed.status_code == 409
    assert busy.json()["error"]["type"] == "conflict_error"
    assert "under way" in busy.json()["error"]["message"]
    assert busy.headers["retry-after"] == "1"
    assert (await first).status_code == (await other).status_code == 200
    after = await client.post("/", json={"task": "b", "session_id": "one"})
    assert after.status_code == 200  # released when the first answered


async def test_a_streamed_task_keeps_its_turn(
    fake_agents: FakeAgents, http: AsyncHttp, client_of: Any
) -> None:
    model = ScriptedModel().enqueue(text("streamed"), text("next"))
    service = orchestrator(fake_agents, http, model)
    client = client_of(service)
    streamed = await client.post("/", json={"task": "a", "session_id": "s", "stream": True})
    assert "event: result" in streamed.text
    await client.post("/", json={"task": "b", "session_id": "s"})
    assert len(model.requests[1]["messages"]) == 3


async def test_a_turn_the_store_could_not_keep_is_said_in_the_answer(
    fake_agents: FakeAgents, http: AsyncHttp, client_of: Any
) -> None:
    store = GuardedStore(LosingAppends(), 1)
    model = ScriptedModel().enqueue(text("done"))
    client = client_of(orchestrator(fake_agents, http, model, store))
    answer = await client.post("/", json={"task": "a", "session_id": "s"})
    assert answer.status_code == 200 and answer.json()["answer"] == "done"
    session = answer.json()["session"]
    assert session["saved"] is False and "connection reset" in session["error"]
    health = store.health()
    assert health["failures"] == 1 and health["last_error"].startswith("append")


async def test_a_failed_run_adds_no_turn(fake_agents: FakeAgents, http: AsyncHttp) -> None:
    service = orchestrator(fake_agents, http, ScriptedModel())
    turn = await service.sessions.claim("s", 10)
    failed = RunResult("run_1", Status.FAILED, "x", StopReason.INTERNAL_ERROR, [], Usage(), 0)
    await turn.record("task", failed)
    await turn.release()
    assert await service.sessions.turns("s") == []
    await service.sessions.claim("s", 10)  # released: free to claim again
