"""``Runs`` in the shared store (``shared.store``): a CloudEvent redelivered to *another*
instance still runs once.

The first instance to see an event claims its run in the store (a compare-and-set that only
succeeds on an absent key) with a lease as long as the task may run, runs it, then keeps the
result there for ``ttl_s``. A redelivery that reaches any instance then gets that result,
marked as a replay. One that arrives while the run is still going joins it on the instance
running it (as ``RunRegistry`` does); elsewhere it is refused with 409 (``RunInProgress``),
which event brokers retry and platform deliveries leave unacknowledged (redelivered later,
when the result is there). A run that could not start is forgotten, so that its redelivery is
a real retry; an instance that died mid-run leaves a claim that its lease ends.

A store that is down refuses the event (503, or a delivery left for redelivery) rather than
running it with no record: running twice is what this exists to prevent.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

from functions.orchestrator.trace import RunResult
from shared.errors import Conflict, StoreUnavailable
from shared.http import json_text
from shared.logs import get_logger
from shared.store import Entry, Store

log = get_logger("orchestrator.runs")

DEFAULT_LEASE_S = 900.0
LEASE_MARGIN_S = 30.0
"""Beyond a task's own time budget, for the instance to record its result."""


class RunInProgress(Conflict):
    """The event's run is under way on another instance: its result is not there yet."""


class StoreRuns:
    def __init__(self, store: Store, ttl_s: float) -> None:
        self.store = store
        self._ttl_s = ttl_s
        self._running: dict[str, asyncio.Future[RunResult]] = {}

    async def run_once(
        self,
        run_id: str,
        start: Callable[[], Awaitable[RunResult]],
        *,
        lease_s: float | None = None,
    ) -> tuple[RunResult, bool]:
        here = self._running.get(run_id)
        if here is not None:
            return await asyncio.shield(here), True
        key = f"run:{run_id}"
        lease = (lease_s or DEFAULT_LEASE_S) + LEASE_MARGIN_S
        claim = json_text({"state": "running"}).encode()
        if await self.store.put(key, claim, ttl_s=lease, version=0) is None:
            return self._known(run_id, await self.store.get(key)), True
        run = asyncio.ensure_future(self._run(key, start))
        self._running[run_id] = run
        run.add_done_callback(lambda _: self._running.pop(run_id, None))
        # shield: the first caller going away must not cancel a run others may wait on.
        return await asyncio.shield(run), False

    def _known(self, run_id: str, entry: Entry | None) -> RunResult:
        if entry is None:  # its claim ended between our two calls: the broker sends it again
            raise RunInProgress(f"run {run_id} is being recorded; send the event again")
        record = json.loads(entry.value)
        if record.get("state") != "finished":
            raise RunInProgress(
                f"run {run_id} is under way on another instance; send the event again later",
                headers={"retry-after": "1"},
            )
        return RunResult.from_json(record["result"], unavailable=record.get("unavailable", False))

    async def keep(self, run_id: str, result: RunResult) -> None:
        """Record ``result`` as the event's run (one resumed elsewhere after its owner died),
        so that later redeliveries get it."""
        await self._record(f"run:{run_id}", result)

    async def _run(self, key: str, start: Callable[[], Awaitable[RunResult]]) -> RunResult:
        try:
            result = await start()
        except BaseException:
            await self._forget(key)
            raise
        if result.unavailable and result.nothing_done:
            await self._forget(key)  # it could not start: a redelivery must run it
            return result
        await self._record(key, result)
        return result

    async def _record(self, key: str, result: RunResult) -> None:
        record: dict[str, Any] = {"state": "finished", "result": result.to_json()}
        if result.unavailable:
            record["unavailable"] = True
        try:
            await self.store.put(key, json_text(record).encode(), ttl_s=self._ttl_s)
        except StoreUnavailable:  # it ran; its claim stays until the lease ends
            log.error("run finished but its result could not be kept", extra={"key": key})

    async def _forget(self, key: str) -> None:
        try:
            await self.store.delete(key)
        except StoreUnavailable:
            log.error("run could not start and its claim stays until it ends", extra={"key": key})
