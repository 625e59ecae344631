"""Runs that outlive a request (``checkpoints.py``): every step is in the shared store as it
finishes, so ``GET /runs/{id}`` answers from another instance while the run goes and after;
``Prefer: respond-async`` (or ``"async": true``) answers 202 at once and the run goes on."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from functions.orchestrator.checkpoints import LeaseLost, RunHeld, RunJournal
from functions.orchestrator.config import OrchestratorConfig
from functions.orchestrator.model import ModelReply
from functions.orchestrator.run_routes import APPROVAL_EVENT as APPROVAL
from functions.orchestrator.run_store import StoreRuns
from functions.orchestrator.runs import event_run_id
from functions.orchestrator.service import OrchestratorService, run_registry
from functions.orchestrator.sink import EventSink
from shared.aio import AsyncHttp
from shared.errors import BadRequest, Conflict, NotFound, StoreUnavailable
from shared.http import Call, Reply
from shared.store import open_store
from shared.store.guard import GuardedStore
from tests.orchestrator.fakes import (
    CALCULATOR,
    FakeAgents,
    FakeEndpoint,
    calculate,
    directory,
    text,
    tool_use,
)

pytestmark = pytest.mark.anyio

CONFIG = OrchestratorConfig.model_validate({"gateway": {"url": "http://gateway.invalid"}})


@dataclass
class GatedModel:
    """Scripted replies; the call numbered ``hold_at`` waits until the test lets it go."""

    replies: list[ModelReply]
    hold_at: int = 1
    held: asyncio.Event = field(default_factory=asyncio.Event)
    release: asyncio.Event = field(default_factory=asyncio.Event)
    calls: int = 0
    route: str = "default"

    async def create(self, request: dict[str, Any], *, timeout_s: float) -> ModelReply:
        number, self.calls = self.calls, self.calls + 1
        if number == self.hold_at:
            self.held.set()
            await self.release.wait()
        return self.replies[number]


@pytest.fixture
async def stores(tmp_path: Path) -> AsyncIterator[list[GuardedStore]]:
    """Two instances' stores on one SQLite file: what two processes of the emulator share."""
    url = f"sqlite:///{tmp_path}/state.db"
    opened = [open_store(url), open_store(url)]
    yield opened
    for store in opened:
        await store.aclose()


def instance(
    fakes: FakeAgents,
    http: AsyncHttp,
    model: Any,
    store: GuardedStore,
    sink: EventSink | None = None,
    config: OrchestratorConfig = CONFIG,
) -> OrchestratorService:
    agents = directory(fakes, http)
    runs = run_registry(config, store)
    return OrchestratorService(config, model, agents, sink, runs, store=store)


def task_call(body: dict[str, Any], **headers: str) -> Call:
    sent = {"content-type": "application/json", **headers}
    return Call("POST", "/", sent, json.dumps(body).encode(), "req-1")


async def get_run(service: OrchestratorService, run_id: str) -> dict[str, Any]:
    reply = await service.get_run(Call("GET", f"/runs/{run_id}", {}, b"", "req-2"))
    assert reply.status == 200
    return dict(reply.body)


def two_step_model() -> GatedModel:
    """Asks the calculator, then (held until released) answers."""
    return GatedModel([tool_use(("calculator", {"expression": "6*7"})), text("42")])


async def test_each_step_is_seen_from_another_instance_as_it_finishes(
    fake_agents: FakeAgents, http: AsyncHttp, stores: list[GuardedStore]
) -> None:
    fake_agents.add("calculator", calculate, CALCULATOR.schema())
    model = two_step_model()
    first = instance(fake_agents, http, model, stores[0])
    other = instance(fake_agents, http, None, stores[1])
    event = {"ce-specversion": "1.0", "ce-id": "e-1", "ce-source": "/t", "ce-type": "task"}
    running = asyncio.ensure_future(first.submit(task_call({"task": "6 times 7?"}, **event)))
    await model.held.wait()

    run_id = event_run_id("/t", "e-1")
    midway = await get_run(other, run_id)
    assert midway["status"] == "running"
    assert [(s["kind"], s["name"]) for s in midway["steps"]] == [
        ("model", "default"),
        ("agent", "calculator"),
    ]
    called = midway["steps"][1]
    assert called["outcome"]["result"]["value"] == 42 and "resume" not in called

    model.release.set()
    answer = (await running).body
    assert await get_run(other, run_id) == answer
    assert answer["status"] == "completed" and len(answer["steps"]) == 3


async def test_respond_async_answers_202_and_the_run_goes_on(
    fake_agents: FakeAgents, http: AsyncHttp, stores: list[GuardedStore], sink: FakeEndpoint
) -> None:
    fake_agents.add("calculator", calculate, CALCULATOR.schema())
    model = two_step_model()
    model.release.set()
    first = instance(fake_agents, http, model, stores[0], EventSink(http, sink.url, CONFIG.sink))
    other = instance(fake_agents, http, None, stores[1])

    accepted = await first.submit(task_call({"task": "6*7?"}, prefer="respond-async, wait=1"))

    assert accepted.status == 202 and model.calls == 0
    run_id = accepted.body["run_id"]
    assert accepted.headers["location"] == accepted.body["location"] == f"/runs/{run_id}"
    # The run starts beside the answer: read at once, it may have begun already.
    assert (await get_run(other, run_id))["status"] in ("accepted", "running")
    await _finish(accepted)
    done = await get_run(other, run_id)
    assert done["status"] == "completed" and done["answer"] == "42"
    [delivered] = sink.received
    assert delivered.body["data"]["run_id"] == run_id and delivered.body["data"]["answer"] == "42"


async def test_async_in_the_body_and_hostile_requests(
    fake_agents: FakeAgents, http: AsyncHttp, stores: list[GuardedStore]
) -> None:
    service = instance(fake_agents, http, GatedModel([text("done")], hold_at=-1), stores[0])
    accepted = await service.submit(task_call({"task": "x", "async": True}))
    assert accepted.status == 202
    await _finish(accepted)
    assert (await get_run(service, accepted.body["run_id"]))["answer"] == "done"

    with pytest.raises(BadRequest, match="async"):
        await service.submit(task_call({"task": "x", "async": "yes"}))
    with pytest.raises(BadRequest, match="choose one"):
        await service.submit(task_call({"task": "x", "stream": True}, prefer="respond-async"))
    with pytest.raises(BadRequest, match="24 hex"):
        await get_run(service, "../../etc")
    with pytest.raises(NotFound, match="no run"):
        await get_run(service, "run_" + "0" * 24)


async def _finish(accepted: Reply) -> None:
    assert accepted.after is not None
    await accepted.after()


# -- resume: on another instance, from the last checkpoint -------------------------------------


def killing_agent(fakes: FakeAgents, name: str) -> list[Any]:
    """An agent whose first call kills the run that makes it (its task cancelled, as a
    SIGKILL would leave it: the call made, its answer never recorded); later calls answer."""
    victims: list[Any] = []

    async def respond(arguments: Any) -> tuple[int, Any]:
        if len(fakes.calls(name)) == 1:
            for victim in victims:
                victim.cancel()
        return 200, {"result": "slow done", "meta": {}}

    fakes.add(name, respond)
    return victims


async def test_a_run_whose_owner_died_is_resumed_elsewhere_without_repeating_calls(
    fake_agents: FakeAgents, http: AsyncHttp, stores: list[GuardedStore]
) -> None:
    fake_agents.add("calculator", calculate, CALCULATOR.schema())
    victims = killing_agent(fake_agents, "slow")
    turns = [tool_use(("calculator", {"expression": "6*7"})), tool_use(("slow", {}))]
    first = instance(fake_agents, http, GatedModel(turns, hold_at=-1), stores[0])
    model = GatedModel([text("both done")], hold_at=-1)
    other = instance(fake_agents, http, model, stores[1])
    victims.append(asyncio.ensure_future(first.submit(task_call({"task": "calc, then slow"}))))
    with pytest.raises(asyncio.CancelledError):
        await victims[0]
    [key] = {h.get("idempotency-key", "") for h in fake_agents.agents["slow"].headers} - {""}
    run_id, step = key.split(":")
    assert step == "3" and fake_agents.agents["calculator"].headers[-1]["idempotency-key"] == (
        f"{run_id}:1"
    )
    assert (await get_run(other, run_id))["status"] == "running"

    with pytest.raises(RunHeld, match="held by a live instance") as held:
        await other.resume_run(resume_call(run_id))  # its lease has not expired
    assert held.value.status_code == 409
    await stores[1].delete(f"runlease:{run_id}")  # what its expiry does

    resumed = (await other.resume_run(resume_call(run_id))).body
    assert resumed["status"] == "completed" and resumed["answer"] == "both done"
    assert [s["name"] for s in resumed["steps"]] == [
        "default",
        "calculator",
        "default",
        "slow",
        "default",
    ]
    assert len(fake_agents.calls("calculator")) == 1  # finished: never made again
    sent = [h.get("idempotency-key") for h in fake_agents.agents["slow"].headers]
    assert [k for k in sent if k] == [key, key]  # the call in flight, again: the same key
    assert resumed["usage"]["model_calls"] == 3
    assert await get_run(first, run_id) == resumed
    again = await first.resume_run(resume_call(run_id))  # it ended: its result, not a run
    assert again.body == {**resumed, "replayed": True} and model.calls == 1


@dataclass
class KillsAll:
    """Cancels every event run an instance has under way (as its process dying would)."""

    runs: StoreRuns

    def cancel(self) -> None:
        for run in list(self.runs._running.values()):
            run.cancel()


def resume_call(run_id: str) -> Call:
    return Call("POST", f"/runs/{run_id}/resume", {}, b"", "req-3")


async def test_a_redelivered_event_takes_over_a_run_whose_owner_died(
    fake_agents: FakeAgents, http: AsyncHttp, stores: list[GuardedStore]
) -> None:
    fake_agents.add("calculator", calculate, CALCULATOR.schema())
    victims = killing_agent(fake_agents, "slow")
    turns = [tool_use(("calculator", {"expression": "6*7"})), tool_use(("slow", {}))]
    first = instance(fake_agents, http, GatedModel(turns, hold_at=-1), stores[0])
    other = instance(fake_agents, http, GatedModel([text("done")], hold_at=-1), stores[1])
    event = {"ce-specversion": "1.0", "ce-id": "e-2", "ce-source": "/t", "ce-type": "task"}
    delivery = task_call({"task": "calc, then slow"}, **event)
    run_id = event_run_id("/t", "e-2")
    runs = first.runs
    assert isinstance(runs, StoreRuns)
    running = asyncio.ensure_future(first.submit(delivery))
    victims.append(running)  # and the run itself, which a caller's going away does not end:
    victims.append(KillsAll(runs))
    with pytest.raises(asyncio.CancelledError):
        await running

    with pytest.raises(Conflict) as busy:  # its owner's lease is alive: not a second copy
        await other.submit(delivery)
    assert busy.value.status_code == 409
    await stores[1].delete(f"runlease:{run_id}")  # what its expiry does

    taken_over = (await other.submit(delivery)).body
    assert taken_over["status"] == "completed" and "replayed" not in taken_over
    assert len(fake_agents.calls("calculator")) == 1 and len(fake_agents.calls("slow")) == 2
    replay = (await first.submit(delivery)).body
    assert replay == {**taken_over, "replayed": True}


async def test_a_lease_is_renewed_while_its_run_goes_and_given_back_at_its_end() -> None:
    store = open_store("memory://")
    beats = asyncio.Semaphore(0)

    async def beat(seconds: float) -> None:
        assert seconds == 10.0  # a third of the lease
        beats.release()
        await asyncio.sleep(0)

    run_id = "run_" + "1" * 24
    async with RunJournal(store, ttl_s=60, sleep=beat).held(run_id):
        with pytest.raises(RunHeld, match="held by a live instance"):
            async with RunJournal(store, ttl_s=60).held(run_id):
                pass
        for _ in range(3):
            await beats.acquire()
        lease = await store.get(f"runlease:{run_id}")
        assert lease is not None and lease.version >= 3  # taken, then renewed
    assert await store.get(f"runlease:{run_id}") is None


async def test_an_owner_that_lost_its_lease_stops_at_its_next_step(
    fake_agents: FakeAgents, http: AsyncHttp
) -> None:
    fake_agents.add("calculator", calculate, CALCULATOR.schema())
    model = GatedModel([tool_use(("calculator", {"expression": "6*7"})), text("42")], hold_at=0)
    first = instance(fake_agents, http, model, open_store("memory://"))
    store = first.journal.store
    tick = asyncio.Event()

    async def beat(seconds: float) -> None:  # the heartbeat's wait, driven by the test
        await tick.wait()
        tick.clear()

    first.journal.sleep = beat
    event = {"ce-specversion": "1.0", "ce-id": "e-9", "ce-source": "/t", "ce-type": "task"}
    running = asyncio.ensure_future(first.submit(task_call({"task": "6 times 7?"}, **event)))
    await model.held.wait()  # mid model call: then another instance takes the run over
    key = "runlease:" + event_run_id("/t", "e-9")
    await store.delete(key)
    await store.put(key, b"another-instance", ttl_s=60, version=0)
    tick.set()  # the next renewal finds it taken
    for _ in range(20):
        await asyncio.sleep(0)
    model.release.set()  # the model's turn finishes (and is recorded); the next step is not made

    with pytest.raises(LeaseLost, match="lost its lease") as lost:
        await running
    assert lost.value.status_code == 409
    assert fake_agents.calls("calculator") == []
    run_id = key.removeprefix("runlease:")
    view = await get_run(first, run_id)
    assert view["status"] == "running" and [s["kind"] for s in view["steps"]] == ["model"]
    held = await store.get(key)
    assert held is not None and held.value == b"another-instance"  # not given back by the loser
    await store.aclose()


@dataclass
class Unreachable:
    """A store whose ``put`` fails while ``down``: the network to it cut."""

    inner: GuardedStore
    down: bool = False

    async def put(self, key: str, value: bytes, **options: Any) -> int | None:
        if self.down:
            raise StoreUnavailable("the store is unreachable")
        return await self.inner.put(key, value, **options)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


async def test_a_lease_not_renewed_for_its_whole_length_is_lost() -> None:
    now = [0.0]

    async def beat(seconds: float) -> None:  # no real wait: the clock moves on
        now[0] += seconds
        await asyncio.sleep(0)

    store = Unreachable(open_store("memory://"))
    journal = RunJournal(store, ttl_s=60, lease_s=3, sleep=beat, clock=lambda: now[0])
    run_id = "run_" + "2" * 24
    async with journal.held(run_id) as lease:
        store.down = True  # the store cannot be reached: renewals fail
        for _ in range(100):
            if lease.lost:
                break
            await asyncio.sleep(0)
        assert lease.lost and now[0] >= 3.0
        with pytest.raises(LeaseLost):
            lease.check()
    store.down = False
    assert await store.get(f"runlease:{run_id}") is not None  # left to expire, not deleted
    await store.aclose()


# -- human approval ----------------------------------------------------------------------------

APPROVING = OrchestratorConfig.model_validate(
    {"gateway": {"url": "http://gateway.invalid"}, "approval_required": ["calculator"]}
)


def approval_call(run_id: str, body: Any) -> Call:
    headers = {"content-type": "application/json"}
    return Call("POST", f"/runs/{run_id}/approval", headers, json.dumps(body).encode(), "r")


async def test_a_call_needing_approval_pauses_the_run_until_a_person_answers(
    fake_agents: FakeAgents, http: AsyncHttp, stores: list[GuardedStore], sink: FakeEndpoint
) -> None:
    fake_agents.add("calculator", calculate, CALCULATOR.schema())
    asks = [tool_use(("calculator", {"expression": e})) for e in ("6*7", "1/0")]
    events = EventSink(http, sink.url, CONFIG.sink)
    first = instance(fake_agents, http, GatedModel(asks, hold_at=-1), stores[0], events, APPROVING)
    model = GatedModel([text("42"), text("not allowed, then")], hold_at=-1)
    other = instance(fake_agents, http, model, stores[1], config=APPROVING)

    paused = (await first.submit(task_call({"task": "6*7?"}))).body
    run_id = paused["run_id"]
    assert paused["status"] == "waiting_approval" and paused["stop_reason"] == "approval_required"
    assert paused["pending_approval"] == [
        {"step": 1, "tool": "calculator", "arguments": {"expression": "6*7"}}
    ]
    seen = await get_run(other, run_id)
    assert seen.pop("waiting_since") > 0 and seen == paused
    assert fake_agents.calls("calculator") == []
    await events.drain()
    [requested] = sink.received
    assert requested.body["type"] == "dev.agentorch.task.approval_requested"

    with pytest.raises(BadRequest, match="approve: must be true or false"):
        await other.approve_run(approval_call(run_id, {"approve": "yes"}))
    approved = (await other.approve_run(approval_call(run_id, {"approve": True}))).body
    assert approved["status"] == "completed" and approved["answer"] == "42"
    assert len(fake_agents.calls("calculator")) == 1 and approved["steps"][1]["error"] is None
    with pytest.raises(Conflict, match="not waiting for approval"):
        await first.approve_run(approval_call(run_id, {"approve": True}))

    refused_run = (await first.submit(task_call({"task": "1/0?"}))).body["run_id"]
    answer = {"run_id": refused_run, "approve": False, "note": "too risky"}  # as a CloudEvent
    event = {"ce-specversion": "1.0", "ce-id": "a-1", "ce-source": "/ui", "ce-type": APPROVAL}
    refused = (await other.submit(task_call(answer, **event))).body
    assert refused["status"] == "completed" and refused["answer"] == "not allowed, then"
    again = (await first.submit(task_call(answer, **event))).body  # redelivered: acknowledged
    assert again["status"] == "completed" and again["replayed"] is True
    assert refused["steps"][1]["error"] == "a person refused this call: too risky"
    assert len(fake_agents.calls("calculator")) == 1  # the refused call was never made


def test_approval_is_required_by_the_environment_or_an_agent_entry() -> None:
    from functions.orchestrator.budgets import LoopSettings
    from functions.orchestrator.config import load_orchestrator_config

    config = load_orchestrator_config({"APPROVAL_REQUIRED": "calculator, github__create_issue"})
    assert LoopSettings.of(config).approval_required == {"calculator", "github__create_issue"}
    entry = {"url": "http://pay.invalid", "requires_approval": True}
    config = OrchestratorConfig.model_validate({**CONFIG.model_dump(), "agents": {"pay": entry}})
    assert LoopSettings.of(config).approval_required == {"pay"}


async def test_an_approval_not_given_in_time_stops_the_run(
    fake_agents: FakeAgents, http: AsyncHttp, stores: list[GuardedStore]
) -> None:
    fake_agents.add("calculator", calculate, CALCULATOR.schema())
    model = GatedModel([tool_use(("calculator", {"expression": "6*7"}))], hold_at=-1)
    first = instance(fake_agents, http, model, stores[0], config=APPROVING)
    other = instance(fake_agents, http, None, stores[1], config=APPROVING)
    run_id = (await first.submit(task_call({"task": "6*7?"}))).body["run_id"]
    other.journal.clock = lambda: time.time() + APPROVING.runs.approval_timeout_s

    with pytest.raises(Conflict, match="is stopped, not waiting"):
        await other.approve_run(approval_call(run_id, {"approve": True}))
    stopped = await get_run(first, run_id)  # kept so, for every instance
    assert stopped["status"] == "stopped" and stopped["stop_reason"] == "approval_timeout"
    assert fake_agents.calls("calculator") == []
