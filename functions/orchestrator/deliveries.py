"""Tasks a platform delivers (an SQS or Pub/Sub message, an EventBridge event), run once each,
and what the platform is to be told: acknowledge it, or deliver it again.

Every platform delivers at least once and redelivers what was not acknowledged, so each
message ends in one of four outcomes:

=========  ==============================================  ============  ===================
outcome    when                                            acknowledged  then
=========  ==============================================  ============  ===================
DONE       the task ran (its result, failed or not, went   yes           never again
           to the sink)
REJECTED   a JSON object, but not a valid task (no         yes           its error is logged
           ``task``, an unknown agent): running it again                 and sent to the sink
           would only refuse it again
MALFORMED  not a task at all: not JSON, not an object,     no            the platform's dead
           nested too deeply                                             letter (queue or
                                                                         topic) keeps it
RETRY      it could not start: the model gateway was        no            redelivered, run
           unavailable (or an unexpected error)                          then
=========  ==============================================  ============  ===================

A malformed message is left unacknowledged rather than dropped: it is a producer's bug, and a
dead-letter queue keeps it whole for whoever fixes it, where the sink would only get an error.
Configure one (SQS ``RedrivePolicy.maxReceiveCount``, Pub/Sub ``deadLetterPolicy``), or such
a message comes back until the platform's retention ends.

A message is run under the id of its source and its message id (``runs.event_run_id``), so a
redelivery of one that ran, or is running, gets that run's result instead of a second run.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from functions.orchestrator.runs import event_run_id
from functions.orchestrator.tools import MAX_TASK_DEPTH
from shared.errors import BadRequest
from shared.http import Reply
from shared.inbound import Inbound, parse_json, require_object
from shared.logs import get_logger

if TYPE_CHECKING:
    from functions.orchestrator.service import OrchestratorService

log = get_logger("orchestrator.deliveries")


class Outcome(enum.Enum):
    DONE = "done"
    REJECTED = "rejected"
    MALFORMED = "malformed"
    RETRY = "retry"


ACKNOWLEDGED = frozenset({Outcome.DONE, Outcome.REJECTED})
REPLY_STATUS = {
    Outcome.DONE: 200,
    Outcome.REJECTED: 200,
    Outcome.MALFORMED: 400,
    Outcome.RETRY: 503,
}
"""How a push delivery (Pub/Sub over HTTP, Eventarc) is answered: 2xx acknowledges."""


@dataclass(frozen=True)
class Message:
    """One delivered message, as the platform named it."""

    id: str
    """The platform's message id: SQS ``messageId``, Pub/Sub ``messageId``, EventBridge ``id``."""
    source: str
    """Where it came from: the queue's ARN, the subscription, the event's ``source``."""
    type: str
    """What kind of delivery it was (logs, and the event type the run sees)."""
    body: bytes
    """The task as JSON, as sent."""


@dataclass(frozen=True)
class Delivery:
    """What came of one message."""

    message: Message
    outcome: Outcome
    answer: dict[str, Any]
    """The run's result, or the error that refused the message."""

    @property
    def acknowledged(self) -> bool:
        return self.outcome in ACKNOWLEDGED

    def reply(self) -> Reply:
        return Reply(self.answer, status=REPLY_STATUS[self.outcome])


async def deliver(service: OrchestratorService, message: Message) -> Delivery:
    """Run ``message``'s task once (a redelivery gets the first run's result)."""
    run_id = event_run_id(message.source, message.id)
    try:
        data = require_object(parse_json(message.body, MAX_TASK_DEPTH))
    except BadRequest as exc:
        log.error(
            "malformed message left for redelivery and the dead letter",
            extra={"message_id": message.id, "source": message.source, "problem": exc.message},
        )
        return Delivery(message, Outcome.MALFORMED, exc.body())
    try:
        task, _ = service.parse(data)
    except BadRequest as exc:
        return await _reject(service, message, run_id, exc)
    inbound = Inbound(
        data, event_id=message.id, event_type=message.type, event_source=message.source
    )
    try:
        result = await service.run(task, run_id, inbound, None)
    except Exception:
        log.exception("delivered task failed to run", extra={"message_id": message.id})
        return Delivery(message, Outcome.RETRY, {"run_id": run_id, "status": "retry"})
    finally:
        if service.sink is not None:
            await service.sink.settle(run_id)  # before the platform may freeze the process
    answer = result.to_json()
    if result.unavailable and result.nothing_done:
        return Delivery(message, Outcome.RETRY, answer)  # the registry forgot it: a real retry
    return Delivery(message, Outcome.DONE, answer)


async def _reject(
    service: OrchestratorService, message: Message, run_id: str, problem: BadRequest
) -> Delivery:
    answer = {
        "run_id": run_id,
        "status": Outcome.REJECTED.value,
        "error": problem.message,
        "message_id": message.id,
        "source": message.source,
    }
    log.error(
        "delivered task rejected and acknowledged",
        extra={"run_id": run_id, "message_id": message.id, "problem": problem.message},
    )
    if service.sink is not None:
        service.sink.submit(answer)
        await service.sink.settle(run_id)
    return Delivery(message, Outcome.REJECTED, answer)
