"""The orchestrator's routes, called with a ``Call`` as the ASGI edge makes it: bad input,
streaming, the sink, CloudEvents and their redelivery, ``GET /agents``."""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

import pytest

from functions.orchestrator.config import OrchestratorConfig
from functions.orchestrator.runs import RunRegistry
from functions.orchestrator.service import REPLAYED_HEADER, OrchestratorService
from functions.orchestrator.sink import EventSink
from functions.orchestrator.tools import MAX_TASK_DEPTH
from shared.aio import AsyncHttp
from shared.errors import BadRequest, UpstreamUnavailable
from shared.http import Call, Reply, compact_json
from tests.orchestrator.fakes import (
    CALCULATOR,
    FakeAgents,
    FakeEndpoint,
    ScriptedModel,
    calculate,
    directory,
    failure,
    text,
    tool_use,
)

pytestmark = pytest.mark.anyio


def config(**overrides: Any) -> OrchestratorConfig:
    data: dict[str, Any] = {"gateway": {"url": "http://gateway.invalid"}}
    data.update(overrides)
    return OrchestratorConfig.model_validate(data)


def service(
    fakes: FakeAgents,
    http: AsyncHttp,
    model: ScriptedModel,
    sink: FakeEndpoint | None = None,
    **overrides: Any,
) -> OrchestratorService:
    fakes.add("calculator", calculate, CALCULATOR.schema())
    settings = config(**overrides)
    event_sink = None
    if sink is not None:
        sink_settings = settings.sink.model_copy(update={"base_delay_s": 0.0})
        event_sink = EventSink(http, sink.url, sink_settings)
    return OrchestratorService(
        settings, model, directory(fakes, http), event_sink, RunRegistry(settings.dedupe_ttl_s)
    )


def post(body: Any, headers: dict[str, str] | None = None) -> Call:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return Call("POST", "/", {"content-type": "application/json", **(headers or {})}, raw, "req-1")


def cloudevent(task: Any, event_id: str = "evt-1", source: str = "/tests/broker") -> Call:
    headers = {
        "ce-specversion": "1.0",
        "ce-id": event_id,
        "ce-source": source,
        "ce-type": "dev.agentorch.task.requested",
    }
    return post(task, headers)


def structured(task: Any, event_id: Any = "evt-1", source: Any = "/tests/broker") -> Call:
    event = {
        "specversion": "1.0",
        "id": event_id,
        "source": source,
        "type": "dev.agentorch.task.requested",
        "datacontenttype": "application/json",
        "data": task,
    }
    return post(event, {"content-type": "application/cloudevents+json"})


async def read_events(reply: Reply) -> list[tuple[str, Any]]:
    raw = b"".join([chunk async for chunk in reply.body])
    events = []
    for block in raw.decode().split("\n\n"):
        if block:
            event_line, data_line = block.split("\n")
            events.append((event_line.removeprefix("event: "), json.loads(data_line[6:])))
    return events


async def test_answers_a_task(fake_agents: FakeAgents, http: AsyncHttp) -> None:
    model = ScriptedModel().enqueue(tool_use(("calculator", {"expression": "2+2"})), text("4"))
    reply = await service(fake_agents, http, model).submit(post({"task": "2+2?"}))

    assert reply.status == 200
    body = reply.body
    assert body["status"] == "completed" and body["answer"] == "4"
    assert body["run_id"].startswith("run_") and body["duration_ms"] > 0
    assert set(body) >= {"run_id", "status", "answer", "stop_reason", "steps", "usage"}
    assert [s["kind"] for s in body["steps"]] == ["model", "agent", "model"]


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ({}, "task: Field required"),
        ({"task": ""}, "task"),
        ({"task": "   "}, "task: is blank"),
        ({"task": 5}, "task: Input should be a valid string"),
        ({"task": "x", "max_steps": "3"}, "max_steps"),
        ({"task": "x", "max_steps": 0}, "max_steps"),
        ({"task": "x", "max_steps": 33}, "max_steps: 33 is above the limit of 32"),
        ({"task": "x", "timeout_s": 301}, "timeout_s: 301.0 is above the limit of 300"),
        ({"task": "x", "timeout_s": -1}, "timeout_s"),
        ({"task": "x", "timeout_s": "10"}, "timeout_s"),
        ({"task": "x", "max_tokens": 10**9}, "max_tokens"),
        ({"task": "x", "agents": ["calculator", "oracle"]}, "agents: unknown 'oracle'"),
        ({"task": "x", "agents": "calculator"}, "agents"),
        ({"task": "x", "data": 3}, "data"),
        ({"task": "x", "stream": "yes"}, "stream"),
        ([1, 2], "must be a JSON object"),
    ],
)
async def test_bad_input_is_a_400_naming_the_problem(
    fake_agents: FakeAgents, http: AsyncHttp, body: Any, says: str
) -> None:
    orchestrator = service(fake_agents, http, ScriptedModel())
    with pytest.raises(BadRequest, match=says) as raised:
        await orchestrator.submit(post(body))
    assert raised.value.status_code == 400


async def test_gateway_down_is_a_503(fake_agents: FakeAgents, http: AsyncHttp) -> None:
    model = ScriptedModel().enqueue(failure(UpstreamUnavailable("connection refused"), 2))
    with pytest.raises(UpstreamUnavailable, match="model gateway is unavailable") as raised:
        await service(fake_agents, http, model).submit(post({"task": "2+2?"}))
    assert raised.value.status_code == 503


async def test_agents_restricts_the_tools(fake_agents: FakeAgents, http: AsyncHttp) -> None:
    model = ScriptedModel().enqueue(text("none needed"))
    orchestrator = service(fake_agents, http, model)
    fake_agents.add("search", calculate)
    orchestrator = OrchestratorService(
        orchestrator.config, model, directory(fake_agents, http), None, orchestrator.runs
    )
    await orchestrator.submit(post({"task": "hi", "agents": ["search"]}))
    assert [t["name"] for t in model.requests[0]["tools"]] == ["search"]


async def test_stream_sends_each_step_then_the_result(
    fake_agents: FakeAgents, http: AsyncHttp
) -> None:
    model = ScriptedModel().enqueue(tool_use(("calculator", {"expression": "2+2"})), text("4"))
    reply = await service(fake_agents, http, model).submit(post({"task": "2+2?", "stream": True}))

    assert reply.content_type.startswith("text/event-stream")
    events = await read_events(reply)
    names = [name for name, _ in events]
    assert names == ["step_started", "step_finished"] * 3 + ["result"]
    result = events[-1][1]
    assert result["status"] == "completed"
    assert [data for name, data in events if name == "step_finished"] == result["steps"]
    assert events[0][1] == {
        "index": 0,
        "kind": "model",
        "name": "default",
        "input": events[0][1]["input"],
    }


async def test_accept_header_asks_for_a_stream(fake_agents: FakeAgents, http: AsyncHttp) -> None:
    model = ScriptedModel().enqueue(text("hello"))
    reply = await service(fake_agents, http, model).submit(
        post({"task": "hi"}, {"accept": "text/event-stream"})
    )
    assert [name for name, _ in await read_events(reply)][-1] == "result"


async def test_stream_that_fails_ends_with_a_failed_result(
    fake_agents: FakeAgents, http: AsyncHttp
) -> None:
    model = ScriptedModel().enqueue(
        tool_use(("calculator", {"expression": "2+2"})),
        failure(UpstreamUnavailable("the model gateway answered 503")),
    )
    reply = await service(fake_agents, http, model).submit(post({"task": "2+2?", "stream": True}))
    events = await read_events(reply)
    name, result = events[-1]
    assert name == "result" and result["status"] == "failed"
    assert result["stop_reason"] == "gateway_error" and len(result["steps"]) == 3


async def test_result_goes_to_the_sink_as_a_cloudevent(
    fake_agents: FakeAgents, http: AsyncHttp, sink: FakeEndpoint
) -> None:
    model = ScriptedModel().enqueue(text("hello"))
    reply = await service(fake_agents, http, model, sink).submit(post({"task": "hi"}))

    [received] = await sink.wait_for(1)
    assert received.headers["content-type"] == "application/cloudevents+json"
    event = received.body
    assert event["type"] == "dev.agentorch.task.completed"
    assert event["source"] == "/agentorch/orchestrator"
    assert event["subject"] == reply.body["run_id"] and event["id"]
    assert event["data"]["answer"] == "hello"


async def test_a_failing_sink_is_retried_and_does_not_fail_the_run(
    fake_agents: FakeAgents, http: AsyncHttp, sink: FakeEndpoint
) -> None:
    sink.enqueue((500, {}), (503, {}), (500, {}))
    model = ScriptedModel().enqueue(text("hello"))
    orchestrator = service(fake_agents, http, model, sink)
    reply = await orchestrator.submit(post({"task": "hi"}))
    assert reply.status == 200 and reply.body["status"] == "completed"

    assert orchestrator.sink is not None
    await orchestrator.sink.drain()
    assert len(sink.received) == 3  # max_attempts, then logged and dropped
    assert len({r.body["id"] for r in sink.received}) == 1  # the same event each time


async def test_stopped_run_is_a_stopped_event(
    fake_agents: FakeAgents, http: AsyncHttp, sink: FakeEndpoint
) -> None:
    model = ScriptedModel().enqueue(tool_use(("calculator", {"expression": "2+2"})))
    await service(fake_agents, http, model, sink).submit(post({"task": "x", "max_steps": 1}))
    [received] = await sink.wait_for(1)
    assert received.body["type"] == "dev.agentorch.task.stopped"


async def test_a_redelivered_cloudevent_is_not_run_twice(
    fake_agents: FakeAgents, http: AsyncHttp
) -> None:
    model = ScriptedModel().enqueue(tool_use(("calculator", {"expression": "2+2"})), text("4"))
    orchestrator = service(fake_agents, http, model)
    first, second = await asyncio.gather(
        orchestrator.submit(cloudevent({"task": "2+2?"})),
        orchestrator.submit(cloudevent({"task": "2+2?"})),
    )
    later = await orchestrator.submit(cloudevent({"task": "2+2?"}))

    assert {**first.body, "replayed": True} == second.body == later.body
    assert len(model.requests) == 2 and len(fake_agents.calls("calculator")) == 1
    assert first.body["status"] == "completed"
    # Each answer says whether it is a replay of an earlier delivery, in its body and a header.
    assert "replayed" not in first.body and REPLAYED_HEADER not in first.headers
    assert second.headers[REPLAYED_HEADER] == later.headers[REPLAYED_HEADER] == "true"

    model.enqueue(text("another"))
    other = await orchestrator.submit(cloudevent({"task": "2+2?"}, event_id="evt-2"))
    assert other.body["run_id"] != first.body["run_id"] and other.body["answer"] == "another"


async def test_a_streamed_redelivery_says_it_is_a_replay(
    fake_agents: FakeAgents, http: AsyncHttp
) -> None:
    model = ScriptedModel().enqueue(text("4"))
    orchestrator = service(fake_agents, http, model)
    first = await read_events(
        await orchestrator.submit(cloudevent({"task": "2+2?", "stream": True}))
    )
    again = await read_events(
        await orchestrator.submit(cloudevent({"task": "2+2?", "stream": True}))
    )

    assert [name for name, _ in again] == ["result"]  # no steps: nothing ran
    assert again[0][1] == {**first[-1][1], "replayed": True} and len(model.requests) == 1


async def test_a_cloudevent_whose_run_could_not_start_is_run_again(
    fake_agents: FakeAgents, http: AsyncHttp
) -> None:
    model = ScriptedModel().enqueue(failure(UpstreamUnavailable("refused")), text("fine now"))
    orchestrator = service(fake_agents, http, model)
    with pytest.raises(UpstreamUnavailable):
        await orchestrator.submit(cloudevent({"task": "hi"}))
    retried = await orchestrator.submit(cloudevent({"task": "hi"}))
    assert retried.body["answer"] == "fine now"


async def test_structured_cloudevent(fake_agents: FakeAgents, http: AsyncHttp) -> None:
    model = ScriptedModel().enqueue(text("hello"))
    reply = await service(fake_agents, http, model).submit(structured({"task": "hi"}, "evt-9"))
    assert reply.body["answer"] == "hello"


@pytest.mark.parametrize("make", [cloudevent, structured], ids=["binary", "structured"])
async def test_events_whose_source_and_id_join_alike_run_separately(
    fake_agents: FakeAgents, http: AsyncHttp, make: Any
) -> None:
    # Joined with "\n" these two were one run: the second sender got the first one's trace.
    model = ScriptedModel().enqueue(text("for tenant a, x"), text("for tenant a"))
    orchestrator = service(fake_agents, http, model)

    first = await orchestrator.submit(make({"task": "hi"}, event_id="42", source="tenant-a\nx"))
    second = await orchestrator.submit(make({"task": "hi"}, event_id="x\n42", source="tenant-a"))

    assert (first.body["answer"], second.body["answer"]) == ("for tenant a, x", "for tenant a")
    assert first.body["run_id"] != second.body["run_id"] and len(model.requests) == 2
    assert "replayed" not in second.body


@pytest.mark.parametrize(
    ("call", "says"),
    [
        (cloudevent({"task": "hi"}, event_id=""), "'id' (header ce-id) must be a non-empty"),
        (cloudevent({"task": "hi"}, source=""), "'source' (header ce-source) must be a non-"),
        (structured({"task": "hi"}, event_id=42), "'id' must be a non-empty string, got a int"),
        (structured({"task": "hi"}, event_id=""), "'id' must be a non-empty string, got empty"),
    ],
    ids=["empty-ce-id", "empty-ce-source", "integer-id", "empty-id"],
)
async def test_an_event_without_a_usable_identity_is_refused(
    fake_agents: FakeAgents, http: AsyncHttp, call: Call, says: str
) -> None:
    # An integer id named the same run as the string of its digits; every empty-id event of a
    # source was one run. The CloudEvents spec makes both non-empty strings.
    model = ScriptedModel()
    with pytest.raises(BadRequest, match=re.escape(says)):
        await service(fake_agents, http, model).submit(call)
    assert model.requests == []


async def test_a_string_id_of_digits_runs(fake_agents: FakeAgents, http: AsyncHttp) -> None:
    model = ScriptedModel().enqueue(text("ran"))
    reply = await service(fake_agents, http, model).submit(structured({"task": "x"}, "42"))
    assert reply.body["answer"] == "ran" and "replayed" not in reply.body


def nested_data(depth: int) -> str:
    """JSON of rows whose one value nests so that the rows nest ``depth`` levels. Text, not
    ``json.dumps``: 990 levels meet the recursion limit in the test itself."""
    return '[{"k": ' + "[" * (depth - 2) + "]" * (depth - 2) + "}]"


def nested_call(depth: int, kind: str) -> Call:
    """A task (in a plain POST or an event) whose data nests ``depth`` levels: the task one
    more."""
    text = '{"task": "sum the data", "data": ' + nested_data(depth) + "}"
    if kind == "plain":
        return post(text.encode())
    if kind == "binary":
        return cloudevent(text.encode())
    envelope = '{"specversion": "1.0", "id": "e", "source": "s", "type": "t", "data": %s}'
    return post((envelope % text).encode(), {"content-type": "application/cloudevents+json"})


KINDS = ["plain", "binary", "structured"]


@pytest.mark.parametrize("kind", KINDS)
async def test_a_task_at_the_depth_limit_runs(
    fake_agents: FakeAgents, http: AsyncHttp, kind: str
) -> None:
    model = ScriptedModel().enqueue(text("done"))
    reply = await service(fake_agents, http, model).submit(nested_call(MAX_TASK_DEPTH - 1, kind))
    assert reply.status == 200 and reply.body["status"] == "completed"
    assert compact_json(reply.body)  # what failed at 950 levels: encoding the run


@pytest.mark.parametrize("depth", [MAX_TASK_DEPTH, 800, 950, 990])
@pytest.mark.parametrize("kind", KINDS)
async def test_a_task_nested_past_the_limit_is_refused_before_any_work(
    fake_agents: FakeAgents, http: AsyncHttp, kind: str, depth: int
) -> None:
    # 800-990 levels of data answered 200, and at 950 failed encoding the run.
    model = ScriptedModel()
    with pytest.raises(BadRequest, match=f"at most {MAX_TASK_DEPTH} levels"):
        await service(fake_agents, http, model).submit(nested_call(depth, kind))
    assert model.requests == []


async def test_agents_route_lists_tools_and_reachability(
    fake_agents: FakeAgents, http: AsyncHttp
) -> None:
    orchestrator = service(fake_agents, http, ScriptedModel())
    fake_agents.add("tavily", calculate, schema_status=503)
    orchestrator = OrchestratorService(
        orchestrator.config, ScriptedModel(), directory(fake_agents, http), None, orchestrator.runs
    )
    reply = await orchestrator.list_agents(Call("GET", "/agents", {}, b"", "req-2"))
    by_name = {a["name"]: a for a in reply.body["agents"]}
    assert by_name["calculator"]["reachable"] is True
    assert by_name["calculator"]["tool"]["input_schema"]["required"] == ["expression"]
    assert by_name["calculator"]["status"] == "available"
    assert by_name["tavily"]["reachable"] is False and by_name["tavily"]["reason"] == "no key"
    assert by_name["tavily"]["status"] == "not_configured" and by_name["tavily"]["tool"] is None


@pytest.mark.parametrize("depth", [MAX_TASK_DEPTH, 990])
async def test_data_sent_as_json_text_is_bounded_alike(
    fake_agents: FakeAgents, http: AsyncHttp, depth: int
) -> None:
    model = ScriptedModel().enqueue(text("done"))
    orchestrator = service(fake_agents, http, model)
    at_limit = json.dumps({"task": "sum", "data": nested_data(MAX_TASK_DEPTH - 1)})
    assert (await orchestrator.submit(post(at_limit.encode()))).body["status"] == "completed"

    deep = json.dumps({"task": "sum", "data": nested_data(depth)})
    with pytest.raises(
        BadRequest, match=f"data is nested too deeply: at most {MAX_TASK_DEPTH - 1}"
    ):
        await orchestrator.submit(post(deep.encode()))
