"""Runs by CloudEvent identity, so that a redelivered event is not run twice.

Event delivery is at least once: a broker may send the same event again while the first run
is still going or after it ended. A run started for an event is kept here (in this instance)
until ``ttl_s`` after it finished; the same ``source`` and ``id`` again gets that run's result,
marked as a replay, instead of a new run. A run that could not start (the gateway was down) is
forgotten at once, so the broker's redelivery is a real retry.

Every event passes through here, so its cost must not grow with what is kept: lookups are one
dict access each, and finished runs sit in the order they finished, so expiry and eviction
only ever look at the oldest. What is kept is bounded in entries and in bytes (each result
counted at the size of its JSON); past either bound the oldest finished runs go first. Runs in
flight are never evicted: a redelivery must join them, and the server bounds how many there are.

``Runs`` is the whole interface the service uses: with a store shared between instances
(``STORE_URL`` sqlite:// or redis://), ``run_store.StoreRuns`` takes this registry's place.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from functions.orchestrator.trace import RunResult
from shared.http import json_text

DEFAULT_MAX_ENTRIES = 10_000
DEFAULT_MAX_BYTES = 32 * 1024 * 1024


def event_run_id(source: str, event_id: str) -> str:
    # The pair as JSON, not joined by a separator: with "\n" between them, ("a\nx", "42") and
    # ("a", "x\n42") were one run, and the second sender got the first one's result.
    # json.dumps escapes all but ASCII, so even a lone surrogate in an id encodes.
    digest = hashlib.sha256(json.dumps([source, event_id]).encode()).hexdigest()
    return f"run_{digest[:24]}"


def encoded_size(result: RunResult) -> int:
    """What a kept result counts against the byte budget: the size of its JSON answer."""
    return len(json_text(result.to_json()).encode("utf-8", "surrogatepass"))


class Runs(Protocol):
    async def run_once(
        self,
        run_id: str,
        start: Callable[[], Awaitable[RunResult]],
        *,
        lease_s: float | None = None,
    ) -> tuple[RunResult, bool]:
        """The result of the run ``run_id``, started by ``start()`` unless it is known; the
        flag says whether it was known (a redelivery, answered with a replay). ``lease_s``:
        how long the run may take (a shared registry holds its claim that long)."""
        ...


@dataclass(frozen=True)
class _Finished:
    result: RunResult
    finished_at: float
    size: int


class RunRegistry:
    """``Runs`` in this process's memory."""

    def __init__(
        self,
        ttl_s: float,
        *,
        max_entries: int = DEFAULT_MAX_ENTRIES,
        max_bytes: int = DEFAULT_MAX_BYTES,
        clock: Callable[[], float] = time.monotonic,
        size_of: Callable[[RunResult], int] = encoded_size,
    ) -> None:
        self._ttl_s = ttl_s
        self._max_entries = max_entries
        self._max_bytes = max_bytes
        self._clock = clock
        self._size_of = size_of
        self._running: dict[str, asyncio.Future[RunResult]] = {}
        self._finished: OrderedDict[str, _Finished] = OrderedDict()
        """Oldest first: entries are added when their run finishes, by a monotonic clock."""
        self._bytes = 0

    def __len__(self) -> int:
        return len(self._running) + len(self._finished)

    @property
    def bytes_held(self) -> int:
        """The sizes of the finished results kept, added up."""
        return self._bytes

    async def run_once(
        self,
        run_id: str,
        start: Callable[[], Awaitable[RunResult]],
        *,
        lease_s: float | None = None,
    ) -> tuple[RunResult, bool]:
        self._expire()
        finished = self._finished.get(run_id)
        if finished is not None:
            return finished.result, True
        run = self._running.get(run_id)
        if run is not None:
            return await asyncio.shield(run), True
        run = asyncio.ensure_future(start())
        self._running[run_id] = run
        run.add_done_callback(lambda done: self._finish(run_id, done))
        # shield: the first caller going away must not cancel a run others may wait on.
        return await asyncio.shield(run), False

    def _finish(self, run_id: str, done: asyncio.Future[RunResult]) -> None:
        del self._running[run_id]
        if done.cancelled() or done.exception() is not None:
            return
        result = done.result()
        if result.unavailable and result.nothing_done:
            return  # it could not start: a redelivery must run it
        size = self._size_of(result)
        self._finished[run_id] = _Finished(result, self._clock(), size)
        self._bytes += size
        while self._bytes > self._max_bytes or len(self._finished) > self._max_entries:
            self._drop_oldest()

    def _expire(self) -> None:
        if not self._finished:
            return
        horizon = self._clock() - self._ttl_s
        while self._finished and next(iter(self._finished.values())).finished_at <= horizon:
            self._drop_oldest()

    def _drop_oldest(self) -> None:
        _, dropped = self._finished.popitem(last=False)
        self._bytes -= dropped.size
