"""Races on one run: an approval and a refusal at once, the same approval twice at once, two
resumes at once. One wins; the others get a 409 (or the run as it is), the agent's call is made
at most once, and what ran is what the winner asked for."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest

from functions.orchestrator.config import OrchestratorConfig
from functions.orchestrator.service import OrchestratorService, run_registry
from shared.aio import AsyncHttp
from shared.errors import Conflict
from shared.http import Call
from shared.store import open_store
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

APPROVING = OrchestratorConfig.model_validate(
    {"gateway": {"url": "http://gateway.invalid"}, "approval_required": ["calculator"]}
)


def instance(fakes: FakeAgents, http: AsyncHttp, model: Any, url: str) -> OrchestratorService:
    store = open_store(url)
    agents = directory(fakes, http)
    return OrchestratorService(
        APPROVING, model, agents, None, run_registry(APPROVING, store), store=store
    )


def call(path: str, body: Any) -> Call:
    headers = {"content-type": "application/json"}
    return Call("POST", path, headers, json.dumps(body).encode(), "r")


async def outcome(coro: Any) -> Any:
    try:
        return (await coro).body
    except Conflict as exc:
        return exc


@pytest.mark.parametrize("decisions", [(True, False), (True, True), (False, True)])
async def test_two_answers_to_one_approval_at_once(
    fake_agents: FakeAgents, http: AsyncHttp, tmp_path: Any, decisions: tuple[bool, bool]
) -> None:
    fake_agents.add("calculator", calculate, CALCULATOR.schema())
    url = f"sqlite:///{tmp_path}/state.db"
    model = ScriptedModel().enqueue(tool_use(("calculator", {"expression": "6*7"})))
    first = instance(fake_agents, http, model, url)
    paused = (await first.submit(call("/", {"task": "6*7?"}))).body
    run_id = paused["run_id"]
    answers = [text("approved: 42"), text("refused"), text("again")]
    a = instance(fake_agents, http, ScriptedModel().enqueue(*answers), url)
    b = instance(fake_agents, http, ScriptedModel().enqueue(*answers), url)
    results = await asyncio.gather(
        *(
            outcome(svc.approve_run(call(f"/runs/{run_id}/approval", {"approve": yes})))
            for svc, yes in zip((a, b), decisions, strict=True)
        )
    )
    won = [r for r in results if isinstance(r, dict)]
    assert len(won) == 1 and all(isinstance(r, Conflict) for r in results if r not in won)
    winner = decisions[results.index(won[0])]
    assert won[0]["status"] == "completed"
    assert len(fake_agents.calls("calculator")) == (1 if winner else 0)
    made = won[0]["steps"][1]
    assert (made["error"] is None) == winner
    for svc in (first, a, b):
        await svc.aclose()


async def test_resumes_at_once_do_not_run_a_call_waiting_for_approval(
    fake_agents: FakeAgents, http: AsyncHttp, tmp_path: Any
) -> None:
    fake_agents.add("calculator", calculate, CALCULATOR.schema())
    url = f"sqlite:///{tmp_path}/state.db"
    model = ScriptedModel().enqueue(tool_use(("calculator", {"expression": "6*7"})))
    first = instance(fake_agents, http, model, url)
    run_id = (await first.submit(call("/", {"task": "6*7?"}))).body["run_id"]
    others = [instance(fake_agents, http, ScriptedModel(), url) for _ in range(3)]
    results = await asyncio.gather(
        *(outcome(svc.resume_run(call(f"/runs/{run_id}/resume", {}))) for svc in others)
    )
    assert all(r["status"] == "waiting_approval" and r["replayed"] for r in results)
    assert fake_agents.calls("calculator") == []
    for svc in (first, *others):
        await svc.aclose()


async def test_a_stream_never_read_does_not_hold_its_session(
    fake_agents: FakeAgents, http: AsyncHttp, tmp_path: Any
) -> None:
    """A client gone before the stream's first byte (the server could not even send its head)
    must not leave its session busy until the lease ends (the task's timeout and 30 s)."""
    model = ScriptedModel().enqueue(text("first"), text("second"))
    service = instance(fake_agents, http, model, f"sqlite:///{tmp_path}/state.db")
    streamed = await service.submit(call("/", {"task": "hi", "session_id": "s1", "stream": True}))
    await streamed.body.aclose()  # never read: what the server does when the client is gone
    deadline = time.monotonic() + 10  # the orphaned run ends on its own, on the loop
    while await service.store.get("session:s1:busy") is not None and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    reply = await service.submit(call("/", {"task": "again", "session_id": "s1"}))
    assert reply.body["status"] == "completed"
    await service.aclose()


async def test_an_async_answer_never_sent_does_not_hold_its_session(
    fake_agents: FakeAgents, http: AsyncHttp, tmp_path: Any
) -> None:
    """The 202 could not be sent (the client left): the server never runs what comes after
    the answer. The run goes on all the same, and its session is free once it ended."""
    model = ScriptedModel().enqueue(text("first"), text("second"))
    service = instance(fake_agents, http, model, f"sqlite:///{tmp_path}/state.db")
    accepted = await service.submit(call("/", {"task": "hi", "session_id": "s2", "async": True}))
    assert accepted.status == 202  # and its ``after`` is never run
    deadline = time.monotonic() + 10
    while await service.store.get("session:s2:busy") is not None and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    reply = await service.submit(call("/", {"task": "again", "session_id": "s2"}))
    assert reply.body["status"] == "completed"
    run = await service.get_run(Call("GET", accepted.headers["location"], {}, b"", "r"))
    assert run.body["status"] == "completed" and run.body["answer"] == "first"
    await service.aclose()
