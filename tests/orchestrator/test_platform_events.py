"""Platform events carrying tasks to the orchestrator (platform_events.py, deliveries.py): an
SQS batch and an EventBridge event through Lambda, Pub/Sub push and Pub/Sub through Eventarc.
Each message is acknowledged when done or refused for good, left for redelivery when it could
not run, and run once however often it comes."""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Any

import pytest

from functions.orchestrator.deliveries import Outcome
from functions.orchestrator.model import ModelReply
from functions.orchestrator.platform_events import (
    PUBSUB_PUBLISHED,
    AwsEvents,
    NotDelivered,
)
from functions.orchestrator.service import REPLAYED_HEADER, OrchestratorService
from shared.aio import AsyncHttp
from shared.context import current_request_id
from shared.errors import BadRequest, UpstreamUnavailable
from shared.http import Call
from shared.lambda_events import NotHttpEvent
from shared.lambda_http import DEADLINE_MARGIN_S, LambdaHandler
from tests.orchestrator.fakes import FakeAgents, FakeEndpoint, ScriptedModel, failure, text
from tests.orchestrator.test_service import service

pytestmark = pytest.mark.anyio

QUEUE = "arn:aws:sqs:eu-west-1:123456789012:tasks"
SUBSCRIPTION = "projects/demo/subscriptions/tasks-push"


def sqs_record(body: str, message_id: str, queue: str = QUEUE) -> dict[str, Any]:
    """One record of an SQS batch, as Lambda's event source mapping sends it."""
    return {
        "messageId": message_id,
        "receiptHandle": f"handle-{message_id}",
        "body": body,
        "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": "1796673600000"},
        "messageAttributes": {},
        "md5OfBody": "",
        "eventSource": "aws:sqs",
        "eventSourceARN": queue,
        "awsRegion": "eu-west-1",
    }


def batch(*records: dict[str, Any]) -> dict[str, Any]:
    return {"Records": list(records)}


def task(text_: str = "say hi") -> str:
    return json.dumps({"task": text_})


def eventbridge(detail: Any, event_id: str = "eb-1") -> dict[str, Any]:
    return {
        "version": "0",
        "id": event_id,
        "detail-type": "agentorch.task",
        "source": "com.example.tasks",
        "account": "123456789012",
        "time": "2026-12-07T20:00:00Z",
        "region": "eu-west-1",
        "resources": [],
        "detail": detail,
    }


def envelope(data: bytes | str, message_id: str = "pubsub-1") -> dict[str, Any]:
    encoded = data if isinstance(data, str) else base64.b64encode(data).decode()
    return {
        "message": {
            "data": encoded,
            "messageId": message_id,
            "message_id": message_id,
            "publishTime": "2026-12-07T20:00:00Z",
            "attributes": {"origin": "tests"},
        },
        "subscription": SUBSCRIPTION,
    }


def push(body: Any) -> Call:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return Call("POST", "/pubsub", {"content-type": "application/json"}, raw, "req-1")


def eventarc(body: dict[str, Any], message_id: str = "pubsub-1") -> Call:
    headers = {
        "content-type": "application/json",
        "ce-specversion": "1.0",
        "ce-id": message_id,
        "ce-source": "//pubsub.googleapis.com/projects/demo/topics/tasks",
        "ce-type": PUBSUB_PUBLISHED,
    }
    return Call("POST", "/", headers, json.dumps(body).encode(), "req-1")


def orchestrator(
    fakes: FakeAgents, http: AsyncHttp, model: ScriptedModel, sink: FakeEndpoint | None = None
) -> OrchestratorService:
    return service(fakes, http, model, sink)


# -- SQS ----------------------------------------------------------------------------------------


async def test_an_sqs_batch_reports_only_its_bad_message(
    fake_agents: FakeAgents, http: AsyncHttp, sink: FakeEndpoint
) -> None:
    model = ScriptedModel().enqueue(text("hi one"), text("hi two"))
    events = AwsEvents(orchestrator(fake_agents, http, model, sink))
    answer = await events(
        batch(
            sqs_record(task(), "m-1"), sqs_record("{not json", "m-bad"), sqs_record(task(), "m-2")
        )
    )
    assert answer == {"batchItemFailures": [{"itemIdentifier": "m-bad"}]}
    delivered = await sink.wait_for(2)
    assert sorted(event.body["data"]["answer"] for event in delivered) == ["hi one", "hi two"]


@pytest.mark.parametrize(
    "body",
    [
        "",
        "[1, 2]",
        '"a string"',
        "[" * 200 + "]" * 200,
        "[" * 1_000_000,
        '{"task": "' + "x" * 10**6,
    ],
    ids=["empty", "list", "string", "deep", "huge-deep", "huge-unterminated"],
)
async def test_a_message_that_is_not_a_task_object_is_a_failure(
    fake_agents: FakeAgents, http: AsyncHttp, body: str
) -> None:
    events = AwsEvents(orchestrator(fake_agents, http, ScriptedModel()))
    answer = await events(batch(sqs_record(body, "m-bad")))
    assert answer == {"batchItemFailures": [{"itemIdentifier": "m-bad"}]}


async def test_a_redelivered_sqs_message_runs_once(
    fake_agents: FakeAgents, http: AsyncHttp
) -> None:
    model = ScriptedModel().enqueue(text("once"))
    events = AwsEvents(orchestrator(fake_agents, http, model))
    first = await events(batch(sqs_record(task(), "m-1")))
    again = await events(batch(sqs_record(task(), "m-1")))
    assert first == again == {"batchItemFailures": []}
    assert len(model.requests) == 1


async def test_a_message_that_could_not_start_is_retried_and_then_runs(
    fake_agents: FakeAgents, http: AsyncHttp
) -> None:
    down = failure(UpstreamUnavailable("connection refused"), 2)
    model = ScriptedModel().enqueue(down, text("ran the second time"))
    events = AwsEvents(orchestrator(fake_agents, http, model))
    assert await events(batch(sqs_record(task(), "m-1"))) == {
        "batchItemFailures": [{"itemIdentifier": "m-1"}]
    }
    assert await events(batch(sqs_record(task(), "m-1"))) == {"batchItemFailures": []}
    assert len(model.requests) == 2


async def test_an_invalid_task_is_acknowledged_and_its_error_sent_to_the_sink(
    fake_agents: FakeAgents, http: AsyncHttp, sink: FakeEndpoint
) -> None:
    events = AwsEvents(orchestrator(fake_agents, http, ScriptedModel(), sink))
    answer = await events(batch(sqs_record(json.dumps({"task": "x", "max_steps": 0}), "m-1")))
    assert answer == {"batchItemFailures": []}
    (delivered,) = await sink.wait_for(1)
    assert delivered.body["type"].endswith(".rejected")
    assert delivered.body["data"]["message_id"] == "m-1"
    assert "max_steps" in delivered.body["data"]["error"]


async def test_a_fifo_batch_stops_at_its_first_failure(
    fake_agents: FakeAgents, http: AsyncHttp
) -> None:
    model = ScriptedModel().enqueue(text("first"))
    events = AwsEvents(orchestrator(fake_agents, http, model))
    fifo = QUEUE + ".fifo"
    answer = await events(
        batch(
            sqs_record(task(), "m-1", fifo),
            sqs_record("oops", "m-2", fifo),
            sqs_record(task(), "m-3", fifo),
        )
    )
    assert answer == {"batchItemFailures": [{"itemIdentifier": "m-2"}, {"itemIdentifier": "m-3"}]}
    assert len(model.requests) == 1  # m-3 did not overtake m-2


async def test_an_sqs_record_without_a_message_id_fails_the_batch_clearly(
    fake_agents: FakeAgents, http: AsyncHttp
) -> None:
    record = sqs_record(task(), "m-1")
    del record["messageId"]
    with pytest.raises(BadRequest, match="messageId"):
        await AwsEvents(orchestrator(fake_agents, http, ScriptedModel()))(batch(record))


class BrokenSink:
    """An event sink whose ``submit`` fails for a rejected task's event."""

    def submit(self, event: dict[str, Any]) -> None:
        if event.get("status") == "rejected":
            raise RuntimeError("the sink's queue is broken")

    async def settle(self, run_id: str) -> None:
        pass


@pytest.mark.parametrize("queue", [QUEUE, QUEUE + ".fifo"])
async def test_a_delivery_that_raises_fails_its_message_not_the_batch(
    fake_agents: FakeAgents, http: AsyncHttp, queue: str
) -> None:
    service_ = orchestrator(fake_agents, http, ScriptedModel().enqueue(text("hi")))
    service_.sink = BrokenSink()  # type: ignore[assignment]
    rejected = json.dumps({"task": "x", "max_steps": 0})
    answer = await AwsEvents(service_)(
        batch(sqs_record(task(), "m-1", queue), sqs_record(rejected, "m-2", queue))
    )
    assert answer == {"batchItemFailures": [{"itemIdentifier": "m-2"}]}


@pytest.mark.parametrize("event", [{"Records": []}, {"Records": [{"eventSource": "aws:s3"}]}, {}])
async def test_an_event_the_orchestrator_does_not_take_raises_naming_it(
    fake_agents: FakeAgents, http: AsyncHttp, event: dict[str, Any]
) -> None:
    with pytest.raises(NotHttpEvent, match="not an event the orchestrator takes"):
        await AwsEvents(orchestrator(fake_agents, http, ScriptedModel()))(event)


# -- EventBridge ----------------------------------------------------------------------------------


async def test_an_eventbridge_event_runs_its_detail_once(
    fake_agents: FakeAgents, http: AsyncHttp
) -> None:
    model = ScriptedModel().enqueue(text("bridged"))
    events = AwsEvents(orchestrator(fake_agents, http, model))
    first = await events(eventbridge({"task": "say hi"}))
    again = await events(eventbridge({"task": "say hi"}))
    assert first["answer"] == "bridged" and first["status"] == "completed"
    assert again["run_id"] == first["run_id"] and len(model.requests) == 1


async def test_an_eventbridge_event_that_could_not_run_raises_for_lambda_to_retry(
    fake_agents: FakeAgents, http: AsyncHttp
) -> None:
    model = ScriptedModel().enqueue(failure(UpstreamUnavailable("connection refused"), 2))
    events = AwsEvents(orchestrator(fake_agents, http, model))
    with pytest.raises(NotDelivered, match="eb-1 was not delivered \\(retry\\)"):
        await events(eventbridge({"task": "say hi"}))
    with pytest.raises(NotDelivered, match="malformed"):
        await events(eventbridge(["not", "an", "object"], event_id="eb-2"))


async def test_the_lambda_handler_passes_non_http_events_to_the_orchestrator(
    fake_agents: FakeAgents, http: AsyncHttp
) -> None:
    events = AwsEvents(orchestrator(fake_agents, http, ScriptedModel().enqueue(text("hi"))))
    handler = LambdaHandler("unused", "unused", events=events)
    answer = await handler.invoke(
        batch(sqs_record("bad", "m-9"), sqs_record(task(), "m-1")), request_id="lambda-req-1"
    )
    assert answer == {"batchItemFailures": [{"itemIdentifier": "m-9"}]}
    assert current_request_id() is None  # bound for the event only


class HangingModel(ScriptedModel):
    """Answers "done" at once, but holds a task that says "hang" until ``release``."""

    def __init__(self) -> None:
        super().__init__()
        self.release = asyncio.Event()

    async def create(self, request: dict[str, Any], *, timeout_s: float) -> ModelReply:
        self.requests.append(request)
        if "hang" in json.dumps(request["messages"][0]):
            await self.release.wait()
        return text("done")


@pytest.mark.parametrize("queue", [QUEUE, QUEUE + ".fifo"])
async def test_near_the_deadline_a_batch_answers_for_what_finished(
    fake_agents: FakeAgents, http: AsyncHttp, queue: str
) -> None:
    model = HangingModel()
    handler = LambdaHandler(
        "unused", "unused", events=AwsEvents(orchestrator(fake_agents, http, model))
    )
    records = [sqs_record(task(), "m-1", queue), sqs_record(task("hang"), "m-2", queue)]
    records.append(sqs_record(task("after"), "m-3", queue))
    async with asyncio.timeout(10):  # not Lambda killing the whole batch: an answer in time
        answer = await handler.invoke(batch(*records), time_left_s=DEADLINE_MARGIN_S + 0.2)
    late = ["m-2", "m-3"] if queue.endswith(".fifo") else ["m-2"]
    assert answer == {"batchItemFailures": [{"itemIdentifier": m} for m in late]}

    model.release.set()  # the run went on: its redelivery gets its result, not a second run
    again = await handler.invoke(batch(*records[1:]), time_left_s=60)
    assert again == {"batchItemFailures": []}
    assert sum("hang" in json.dumps(r["messages"][0]) for r in model.requests) == 1


# -- Pub/Sub push and Eventarc ----------------------------------------------------------------


async def test_a_pubsub_push_is_acknowledged_with_a_2xx_and_runs_once(
    fake_agents: FakeAgents, http: AsyncHttp
) -> None:
    model = ScriptedModel().enqueue(text("pushed"))
    orchestrator_ = orchestrator(fake_agents, http, model)
    first = await orchestrator_.pubsub_push(push(envelope(task().encode())))
    again = await orchestrator_.pubsub_push(push(envelope(task().encode())))
    assert first.status == again.status == 200
    assert first.body["answer"] == "pushed" and again.body["run_id"] == first.body["run_id"]
    assert len(model.requests) == 1


@pytest.mark.parametrize(
    ("data", "status", "outcome"),
    [
        (b"not json", 400, Outcome.MALFORMED),
        (json.dumps({"task": ""}).encode(), 200, Outcome.REJECTED),
    ],
)
async def test_a_pushed_message_is_nacked_only_when_it_is_not_a_task(
    fake_agents: FakeAgents, http: AsyncHttp, data: bytes, status: int, outcome: Outcome
) -> None:
    reply = await orchestrator(fake_agents, http, ScriptedModel()).pubsub_push(push(envelope(data)))
    assert reply.status == status
    if outcome is Outcome.MALFORMED:
        assert "not valid JSON" in reply.body["error"]["message"]
    else:
        assert reply.body["status"] == "rejected" and "task" in reply.body["error"]


async def test_a_push_when_the_gateway_is_down_is_a_503_to_be_redelivered(
    fake_agents: FakeAgents, http: AsyncHttp
) -> None:
    model = ScriptedModel().enqueue(failure(UpstreamUnavailable("connection refused"), 2))
    reply = await orchestrator(fake_agents, http, model).pubsub_push(
        push(envelope(task().encode()))
    )
    assert reply.status == 503


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ({"subscription": SUBSCRIPTION}, "'message' must be an object"),
        ({"message": "hi"}, "'message' must be an object"),
        (envelope("!!not base64!!"), "not base64"),
        (envelope(task().encode(), message_id=""), "messageId"),
        ({"message": {"data": 5, "messageId": "1"}}, "base64 string"),
        ({"message": {"data": "", "messageId": "x" * 600}}, "messageId"),
        ([1], "must be a JSON object"),
        (b"{" * 5 + b"}" * 5, "not valid JSON"),
        (b'{"message": {"attributes": {"a": ' + b"[" * 200 + b"]" * 200 + b"}}}", "too deeply"),
    ],
)
async def test_a_malformed_push_envelope_is_a_400_naming_what_is_wrong(
    fake_agents: FakeAgents, http: AsyncHttp, body: Any, says: str
) -> None:
    with pytest.raises(BadRequest, match=says):
        await orchestrator(fake_agents, http, ScriptedModel()).pubsub_push(push(body))


async def test_pubsub_through_eventarc_runs_the_envelopes_task_once(
    fake_agents: FakeAgents, http: AsyncHttp
) -> None:
    model = ScriptedModel().enqueue(text("via eventarc"))
    orchestrator_ = orchestrator(fake_agents, http, model)
    first = await orchestrator_.submit(eventarc(envelope(task().encode())))
    again = await orchestrator_.submit(eventarc(envelope(task().encode())))
    assert first.status == again.status == 200
    assert first.body["answer"] == "via eventarc" and again.body["run_id"] == first.body["run_id"]
    assert len(model.requests) == 1 and REPLAYED_HEADER not in first.headers


async def test_an_eventarc_envelope_with_bad_data_is_a_400(
    fake_agents: FakeAgents, http: AsyncHttp
) -> None:
    with pytest.raises(BadRequest, match="not base64"):
        await orchestrator(fake_agents, http, ScriptedModel()).submit(eventarc(envelope("%%")))
