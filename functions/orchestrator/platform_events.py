"""Platform events that carry the orchestrator's tasks, read into ``deliveries.Message``s and
answered as each platform acknowledges (``deliveries`` says which outcome is acknowledged).

- **Pub/Sub push** (``POST /pubsub``): the envelope ``{"message": {"data": BASE64, "messageId",
  "attributes"}, "subscription"}``; a 2xx answer acknowledges, any other asks for redelivery.
- **Pub/Sub through Eventarc**: a CloudEvent of type ``PUBSUB_PUBLISHED`` whose data is that
  same envelope, to ``POST /``; answered as a push.
- **SQS through Lambda**: a batch of ``Records``; the answer is a partial batch response,
  ``{"batchItemFailures": [{"itemIdentifier": MESSAGE_ID}]}`` naming only the messages not
  acknowledged (the event source mapping needs ``ReportBatchItemFailures``). A FIFO queue's
  batch runs in order, and stops at its first failure: the rest are failures too, so that
  nothing overtakes it. Near Lambda's deadline the batch is answered for what finished: the
  messages still running are failures, redelivered later (their runs go on, and a
  redelivery to this container gets their result), not the whole batch with the invocation.
- **EventBridge through Lambda**: one event, its ``detail`` the task. Lambda retries an
  asynchronous invocation that raised, so a message not acknowledged raises ``NotDelivered``.

An envelope that is not what the platform sends (no message id, data not base64) is not a
delivery: a ``BadRequest`` (a 400 over HTTP) naming what is wrong.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
from typing import TYPE_CHECKING, Any

from functions.orchestrator.deliveries import Delivery, Message, Outcome, deliver
from shared.errors import BadRequest
from shared.http import compact_json
from shared.inbound import require_object
from shared.lambda_events import NotHttpEvent
from shared.lambda_http import time_left
from shared.logs import get_logger

if TYPE_CHECKING:
    from functions.orchestrator.service import OrchestratorService

PUBSUB_PUBLISHED = "google.cloud.pubsub.topic.v1.messagePublished"
PUBSUB_TYPE = "pubsub.message"
SQS_TYPE = "aws.sqs.message"
EVENTBRIDGE_TYPE = "aws.events.event"
MAX_ID_CHARS = 512
log = get_logger("orchestrator.platform_events")


class NotDelivered(RuntimeError):
    """An EventBridge event was not acknowledged: Lambda is to retry the invocation."""


def pubsub_message(envelope: Any, source: str | None = None) -> Message:
    """The message in a Pub/Sub push envelope; ``source`` names the subscription when the
    envelope does not (an Eventarc event's ``source``)."""
    envelope = require_object(envelope)
    message = envelope.get("message")
    if not isinstance(message, dict):
        raise BadRequest("Pub/Sub envelope: 'message' must be an object")
    message_id = message.get("messageId", message.get("message_id"))
    data = message.get("data", "")
    if not isinstance(data, str):
        raise BadRequest("Pub/Sub envelope: message.data must be a base64 string")
    try:
        body = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise BadRequest(f"Pub/Sub envelope: message.data is not base64: {exc}") from exc
    subscription = envelope.get("subscription")
    where = subscription if isinstance(subscription, str) and subscription else source
    return Message(
        id=_id(message_id, "Pub/Sub envelope: message.messageId"),
        source=where or "pubsub",
        type=PUBSUB_TYPE,
        body=body,
    )


class AwsEvents:
    """The orchestrator's Lambda events that are not HTTP: an SQS batch, an EventBridge event
    (``shared.lambda_http.LambdaHandler``'s ``events``)."""

    def __init__(self, service: OrchestratorService) -> None:
        self.service = service

    async def __call__(self, event: dict[str, Any]) -> Any:
        records = event.get("Records")
        if isinstance(records, list) and all(_is_sqs(record) for record in records) and records:
            return await self.sqs_batch(records)
        if "detail-type" in event and "detail" in event:
            return await self.eventbridge(event)
        keys = ", ".join(sorted(map(str, event))[:8]) or "none"
        raise NotHttpEvent(
            "not an event the orchestrator takes (HTTP, an SQS batch, an EventBridge event): "
            f"its keys are {keys}"
        )

    async def sqs_batch(self, records: list[dict[str, Any]]) -> dict[str, Any]:
        messages = [_sqs_message(record) for record in records]
        if any(message.source.endswith(".fifo") for message in messages):
            acknowledged = await self._in_order(messages)
        else:
            acknowledged = await self._together(messages)
        failed = [m.id for m in messages if m.id not in acknowledged]
        return {"batchItemFailures": [{"itemIdentifier": message_id} for message_id in failed]}

    async def _together(self, messages: list[Message]) -> set[str]:
        """The ids of the messages acknowledged, of those delivered at once before the
        deadline."""
        tasks = [asyncio.ensure_future(self._deliver(m)) for m in messages]
        done, late = await asyncio.wait(tasks, timeout=time_left())
        for task in late:
            task.cancel()
        if late:
            await asyncio.wait(late)
        return {
            message.id
            for message, task in zip(messages, tasks, strict=True)
            if task in done and task.result().acknowledged
        }

    async def _in_order(self, messages: list[Message]) -> set[str]:
        """The ids acknowledged, in order, up to the first failure (or the deadline)."""
        acknowledged: set[str] = set()
        try:
            async with asyncio.timeout(time_left()):
                for message in messages:  # nothing overtakes a failure
                    if not (await self._deliver(message)).acknowledged:
                        break
                    acknowledged.add(message.id)
        except TimeoutError:
            pass
        return acknowledged

    async def _deliver(self, message: Message) -> Delivery:
        """``deliver``; one that raised is left for redelivery, logged, and fails its
        message alone, not the batch."""
        try:
            return await deliver(self.service, message)
        except Exception:
            log.exception(
                "delivery failed unexpectedly: left for redelivery",
                extra={"message_id": message.id, "source": message.source},
            )
            return Delivery(message, Outcome.RETRY, {})

    async def eventbridge(self, event: dict[str, Any]) -> dict[str, Any]:
        source = event.get("source")
        message = Message(
            id=_id(event.get("id"), "EventBridge event: id"),
            source=source if isinstance(source, str) and source else "eventbridge",
            type=EVENTBRIDGE_TYPE,
            body=compact_json(event["detail"]).encode(),
        )
        delivery = await deliver(self.service, message)
        if not delivery.acknowledged:
            raise NotDelivered(
                f"EventBridge event {message.id} was not delivered ({delivery.outcome.value}): "
                f"{compact_json(delivery.answer)[:500]}"
            )
        return delivery.answer


def _is_sqs(record: Any) -> bool:
    return isinstance(record, dict) and record.get("eventSource") == "aws:sqs"


def _sqs_message(record: dict[str, Any]) -> Message:
    body = record.get("body")
    if not isinstance(body, str):
        body = ""  # malformed: reported as a failure by its id
    source = record.get("eventSourceARN")
    return Message(
        id=_id(record.get("messageId"), "SQS record: messageId"),
        source=source if isinstance(source, str) and source else "sqs",
        type=SQS_TYPE,
        body=body.encode("utf-8", "surrogatepass"),
    )


def _id(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value or len(value) > MAX_ID_CHARS:
        raise BadRequest(f"{where} must be a non-empty string of at most {MAX_ID_CHARS} chars")
    return value
