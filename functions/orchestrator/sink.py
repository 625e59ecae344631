"""Results as CloudEvents to ``K_SINK`` (the Knative convention), in structured mode.

Delivery happens beside the run, after its answer: a sink that fails is retried a bounded
number of times with backoff, then logged and dropped. It never fails or delays the run.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
from cloudevents.conversion import to_structured
from cloudevents.http import CloudEvent

from functions.orchestrator.config import SinkSettings
from shared.aio import AsyncHttp, outbound_headers
from shared.logs import get_logger

Sleep = Callable[[float], Awaitable[None]]
log = get_logger("orchestrator.sink")


class EventSink:
    def __init__(
        self,
        http: AsyncHttp,
        url: str,
        settings: SinkSettings,
        *,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self.url = url
        self._http = http
        self._settings = settings
        self._sleep = sleep
        self._pending: set[asyncio.Task[bool]] = set()

    def submit(self, result: dict[str, Any]) -> None:
        """Send ``result`` in the background (the task is kept until it ends)."""
        task = asyncio.ensure_future(self.deliver(result))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def drain(self) -> None:
        """Wait for every delivery under way (tests, shutdown)."""
        while self._pending:
            await asyncio.gather(*list(self._pending), return_exceptions=True)

    def event(self, result: dict[str, Any]) -> CloudEvent:
        attributes = {
            "type": f"{self._settings.event_type_prefix}.{result['status']}",
            "source": self._settings.source,
            "subject": result["run_id"],
            "id": uuid.uuid4().hex,
        }
        return CloudEvent(attributes, result)

    async def deliver(self, result: dict[str, Any]) -> bool:
        """True when the sink took the event (2xx)."""
        headers, body = to_structured(self.event(result))
        settings = self._settings
        problem = ""
        for attempt in range(1, settings.max_attempts + 1):
            problem = await self._post(dict(headers), body)
            if not problem:
                return True
            if attempt < settings.max_attempts:
                ceiling = settings.base_delay_s * 2 ** (attempt - 1)
                await self._sleep(random.uniform(ceiling / 2, ceiling))
        log.warning(
            "sink did not take the result",
            extra={
                "run_id": result["run_id"],
                "sink": self.url,
                "attempts": settings.max_attempts,
                "problem": problem,
            },
        )
        return False

    async def _post(self, headers: dict[str, str], body: bytes) -> str:
        """'' when delivered, else what went wrong."""
        try:
            async with self._http.session().post(
                self.url,
                data=body,
                headers=outbound_headers(headers),
                timeout=aiohttp.ClientTimeout(total=self._settings.timeout_s),
                allow_redirects=False,
            ) as response:
                await response.read()
                return "" if response.status < 300 else f"answered {response.status}"
        except TimeoutError:
            return f"no answer within {self._settings.timeout_s:g} s"
        except aiohttp.ClientError as exc:
            return f"unreachable: {exc}"
