"""Results as CloudEvents to ``K_SINK`` (the Knative convention), in structured mode.

Delivery happens beside the run, after its answer: a sink that fails is retried a bounded
number of times with backoff, then logged and dropped. It never fails or delays the run.

The sink's answer is untrusted: only its status matters, so at most ``ANSWER_KEPT_BYTES`` of its
body are read (for the log line), nothing is decompressed (``accept-encoding: identity``, and
no transport decodes), and the rest is never read: a sink answering 202 with a gzip
bomb or a 1 GiB body costs a few KiB.

A delivery belongs to the request that ran the task: the request's answer goes out first, then
the request waits for its delivery (``settle``). So a worker told to stop (SIGTERM) stops taking
requests and waits for these as for any request in flight, up to its grace period
(``SHUTDOWN_GRACE_S``, ``shared.server``); a delivery still under way then is cancelled, and
each one is logged at ERROR with its run id.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from cloudevents.conversion import to_structured
from cloudevents.http import CloudEvent

from functions.orchestrator.config import SinkSettings
from shared import telemetry
from shared.aio import AsyncHttp
from shared.errors import BadGateway, UpstreamTimeout, UpstreamUnavailable
from shared.logs import get_logger
from shared.resilience import AttemptFailed, GaveUp, RetryPolicy, RetrySettings, Sleep, retrying

log = get_logger("orchestrator.sink")
ANSWER_KEPT_BYTES = 2048
"""What is read of a sink's answer, at most: enough to quote a refusal in the log."""
QUOTED_CHARS = 200
"""What a log line quotes of a refusal."""


TRACING_EXTENSION = ("traceparent", "tracestate")
"""The CloudEvents distributed-tracing extension's attributes."""


class EventSink:
    def __init__(
        self,
        http: AsyncHttp,
        url: str,
        settings: SinkSettings,
        *,
        sleep: Sleep = asyncio.sleep,
        rng: Callable[[float, float], float] = random.uniform,
    ) -> None:
        """``sleep`` and ``rng`` (the jitter of the pause between attempts) are injected so
        tests drive time."""
        self.url = url
        self._shown_url = shown_url(url)
        self._http = http
        self._settings = settings
        self._sleep = sleep
        # Backoff doubles from base_delay_s with no cap (max_attempts is at most 10).
        ceiling = settings.base_delay_s * 2 ** (settings.max_attempts - 1)
        retry = RetrySettings(
            max_attempts=settings.max_attempts,
            base_delay_s=settings.base_delay_s,
            max_delay_s=ceiling,
        )
        self._policy = RetryPolicy(retry, rng)
        self._pending: dict[str, list[asyncio.Task[bool]]] = {}
        """Deliveries under way, by run id."""

    @property
    def pending(self) -> int:
        """Deliveries under way."""
        return sum(len(tasks) for tasks in self._pending.values())

    def submit(self, result: dict[str, Any]) -> None:
        """Send ``result`` in the background (the task is kept until it ends)."""
        run_id = result["run_id"]
        task = asyncio.ensure_future(self.deliver(result))
        self._pending.setdefault(run_id, []).append(task)
        task.add_done_callback(lambda done: self._forget(run_id, done))

    async def settle(self, run_id: str) -> None:
        """Wait for the deliveries of ``run_id`` under way. Cancelling the caller cancels
        them (a stopping worker's grace ran out): each is then logged as lost."""
        for task in list(self._pending.get(run_id, ())):
            try:
                await task
            except asyncio.CancelledError:
                current = asyncio.current_task()
                if current is not None and current.cancelling():
                    raise  # the caller is cancelled, not only the delivery
                # else the delivery alone was cancelled (and logged): nothing to wait for

    async def drain(self) -> None:
        """Wait for every delivery under way (tests, shutdown)."""
        while self._pending:
            tasks = [task for tasks in self._pending.values() for task in tasks]
            await asyncio.gather(*tasks, return_exceptions=True)

    def _forget(self, run_id: str, task: asyncio.Task[bool]) -> None:
        tasks = self._pending.get(run_id)
        if tasks is not None:
            tasks.remove(task)
            if not tasks:
                del self._pending[run_id]

    def event(self, result: dict[str, Any]) -> CloudEvent:
        """The result as a CloudEvent; it carries the current trace context in the
        distributed-tracing extension (``traceparent``, ``tracestate``) when there is one."""
        attributes = {
            "type": f"{self._settings.event_type_prefix}.{_event_name(result['status'])}",
            "source": self._settings.source,
            "subject": result["run_id"],
            "id": uuid.uuid4().hex,
        }
        traced = telemetry.inject({})
        attributes.update({k: v for k, v in traced.items() if k in TRACING_EXTENSION})
        return CloudEvent(attributes, result)

    async def deliver(self, result: dict[str, Any]) -> bool:
        """True when the sink took the event (2xx). Every result it did not take, cancelled
        deliveries included, is one ERROR line naming the run."""
        attributes = {"messaging.operation.type": "send", "agentorch.run_id": result["run_id"]}
        with telemetry.span("send sink", kind="producer", attributes=attributes) as span:
            delivered = await self._deliver(result)
            if not delivered:
                span.fail("undelivered")
            return delivered

    async def _deliver(self, result: dict[str, Any]) -> bool:
        headers, body = to_structured(self.event(result))
        headers = {**headers, "accept-encoding": "identity"}
        attempts = 0

        async def attempt(number: int) -> None:
            nonlocal attempts
            attempts = number
            await self._post(headers, body)

        try:
            await retrying(attempt, self._policy, sleep=self._sleep)
        except GaveUp as exc:
            self._lost(result, exc.error.message, exc.attempts)
            return False
        except asyncio.CancelledError:
            self._lost(result, "the worker stopped before the sink took it", attempts)
            raise
        return True

    def _lost(self, result: dict[str, Any], problem: str, attempts: int) -> None:
        log.error(
            "sink did not take the result",
            extra={
                "run_id": result["run_id"],
                "status": result["status"],
                "sink": self._shown_url,
                "attempts": attempts,
                "problem": problem,
            },
        )

    async def _post(self, headers: dict[str, str], body: bytes) -> None:
        """Raises ``AttemptFailed`` (always retried) saying what went wrong."""
        try:
            answer = await self._http.send(
                "POST",
                self.url,
                body,
                headers=headers,
                timeout_s=self._settings.timeout_s,
                service="the sink",
                keep_bytes=ANSWER_KEPT_BYTES,
            )
        except (UpstreamTimeout, UpstreamUnavailable) as exc:
            raise AttemptFailed(exc, retry=True) from exc
        except ValueError as exc:  # a header or URL that cannot be sent
            raise AttemptFailed(UpstreamUnavailable(str(exc)), retry=True) from exc
        if answer.status < 300:
            return
        quoted = answer.body[:QUOTED_CHARS].decode("utf-8", "replace")
        problem = f"answered {answer.status}: {quoted}" if quoted else f"answered {answer.status}"
        # Whatever the sink said, only its status counts: its retry-after is not honoured.
        raise AttemptFailed(BadGateway(problem, upstream_status=answer.status), retry=True)


def shown_url(url: str) -> str:
    """``url`` for a log line: no user, password or query (where a sink's token would be)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path}"


def _event_name(status: str) -> str:
    """The event's name for a run's status: ``completed``, ``stopped``, ``failed``; a run
    paused for a person's approval is ``approval_requested``."""
    return "approval_requested" if status == "waiting_approval" else status
