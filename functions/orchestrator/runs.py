"""Runs by CloudEvent identity, so that a redelivered event is not run twice.

Event delivery is at least once: a broker may send the same event again while the first run
is still going or after it ended. A run started for an event is kept here (in this instance)
until ``ttl_s`` after it finished; the same ``source`` and ``id`` again gets that run's result
instead of a new run. A run that could not start (the gateway was down) is forgotten at once,
so the broker's redelivery is a real retry.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from functions.orchestrator.trace import RunResult


def event_run_id(source: str | None, event_id: str) -> str:
    digest = hashlib.sha256(f"{source or ''}\n{event_id}".encode()).hexdigest()
    return f"run_{digest[:24]}"


@dataclass
class _Entry:
    run: asyncio.Future[RunResult]
    finished_at: float | None = None


class RunRegistry:
    def __init__(
        self,
        ttl_s: float,
        *,
        max_entries: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._ttl_s = ttl_s
        self._max_entries = max_entries
        self._clock = clock
        self._entries: OrderedDict[str, _Entry] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    async def run_once(
        self, run_id: str, start: Callable[[], Awaitable[RunResult]]
    ) -> tuple[RunResult, bool]:
        """The result of the run ``run_id``, started by ``start()`` unless it is known; the
        flag says whether it was known (a redelivery)."""
        self._expire()
        entry = self._entries.get(run_id)
        if entry is not None:
            return await asyncio.shield(entry.run), True
        entry = _Entry(asyncio.ensure_future(start()))
        self._entries[run_id] = entry
        entry.run.add_done_callback(lambda done: self._finished(run_id, entry, done))
        # shield: the first caller going away must not cancel a run others may wait on.
        return await asyncio.shield(entry.run), False

    def _finished(self, run_id: str, entry: _Entry, done: asyncio.Future[RunResult]) -> None:
        entry.finished_at = self._clock()
        failed_to_start = done.cancelled() or done.exception() is not None
        if not failed_to_start and done.result().unavailable and done.result().nothing_done:
            failed_to_start = True
        if failed_to_start and self._entries.get(run_id) is entry:
            del self._entries[run_id]

    def _expire(self) -> None:
        now = self._clock()
        for run_id, entry in list(self._entries.items()):
            finished = entry.finished_at
            expired = finished is not None and now - finished >= self._ttl_s
            if expired or (len(self._entries) > self._max_entries and finished is not None):
                del self._entries[run_id]
