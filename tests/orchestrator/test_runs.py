"""The registry of CloudEvent runs: one run per event identity, replays of finished runs kept
for a time within a budget of entries and bytes, and lookups that cost the same however full
it is."""

from __future__ import annotations

import gc
import tracemalloc
from typing import Any

import pytest

from functions.orchestrator.runs import RunRegistry, encoded_size, event_run_id
from functions.orchestrator.trace import RunResult, Status, StopReason, Usage

pytestmark = pytest.mark.anyio


def result(index: int, size: int = 100) -> RunResult:
    answer = f"{index:06d}" + "x" * size  # a string of its own per result, as a real run's
    return RunResult(f"run_{index}", Status.COMPLETED, answer, StopReason.END_TURN, [], Usage(), 1)


class Clock:
    """A clock the test moves, whose readings count every comparison and sum made with them."""

    def __init__(self) -> None:
        self.now = 0.0
        self.operations = 0

    def __call__(self) -> Instant:
        return Instant(self.now, self)


class Instant(float):
    clock: Clock

    def __new__(cls, value: float, clock: Clock) -> Instant:
        instant = super().__new__(cls, value)
        instant.clock = clock
        return instant

    def _count(self) -> None:
        self.clock.operations += 1


def _counted(name: str) -> Any:
    def operation(self: Instant, other: Any) -> Any:
        self._count()
        return getattr(float, name)(self, other)

    return operation


for _name in ("__sub__", "__rsub__", "__add__", "__radd__", "__lt__", "__le__", "__gt__", "__ge__"):
    setattr(Instant, _name, _counted(_name))


async def run(registry: RunRegistry, key: str, made: RunResult) -> tuple[RunResult, bool]:
    async def start() -> RunResult:
        return made

    return await registry.run_once(key, start)


def test_event_identity_is_the_pair_not_its_joining() -> None:
    assert event_run_id("tenant-a\nx", "42") != event_run_id("tenant-a", "x\n42")
    assert event_run_id("a", "b") == event_run_id("a", "b") != event_run_id("b", "a")
    assert event_run_id("s", "\ud800").startswith("run_")  # a lone surrogate still encodes


async def test_the_bytes_kept_stay_within_the_budget_oldest_out_first() -> None:
    budget = 256 * 1024
    registry = RunRegistry(600, max_bytes=budget)
    sizes = []
    for index in range(500):
        await run(registry, f"e{index}", result(index, 10_000))
        sizes.append(registry.bytes_held)
    assert max(sizes) <= budget
    kept = budget // encoded_size(result(0, 10_000))
    assert len(registry) == kept

    assert (await run(registry, "e499", result(-1)))[1] is True  # the newest: a replay
    assert (await run(registry, f"e{500 - kept}", result(-1)))[1] is True
    assert (await run(registry, "e0", result(-1)))[1] is False  # the oldest went first


async def test_memory_stays_within_the_byte_budget_under_many_large_results() -> None:
    # Bounded by entries only, 1,000 results of 20 KB held 20 MB for ten minutes.
    budget = 512 * 1024
    registry = RunRegistry(600, max_bytes=budget)
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for index in range(1_000):
            await run(registry, f"e{index}", result(index, 20_000))
        gc.collect()
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert registry.bytes_held <= budget
    assert grown < 2 * budget, f"the registry grew the heap by {grown} bytes"


async def test_a_result_larger_than_the_budget_is_not_kept() -> None:
    registry = RunRegistry(600, max_bytes=1000)
    await run(registry, "big", result(1, 5000))
    assert len(registry) == 0 and registry.bytes_held == 0
    assert (await run(registry, "big", result(2)))[1] is False


async def test_finished_runs_expire_after_the_ttl() -> None:
    clock = Clock()
    registry = RunRegistry(10, clock=clock)
    await run(registry, "a", result(1))
    clock.now = 5
    await run(registry, "b", result(2))

    clock.now = 9.99
    assert (await run(registry, "a", result(-1)))[0].answer.startswith("000001")
    clock.now = 10
    again, replayed = await run(registry, "a", result(3))
    assert not replayed and again.answer.startswith("000003")
    assert (await run(registry, "b", result(-1)))[1] is True  # finished at 5: still kept
    clock.now = 15
    assert (await run(registry, "b", result(4)))[1] is False


async def test_the_entry_bound_drops_the_oldest() -> None:
    registry = RunRegistry(600, max_entries=3)
    for index in range(5):
        await run(registry, f"e{index}", result(index))
    assert len(registry) == 3
    assert (await run(registry, "e4", result(-1)))[1] is True
    assert (await run(registry, "e1", result(-1)))[1] is False


async def test_a_lookup_does_not_touch_every_entry() -> None:
    # It did: a CloudEvent went from 2.8 to 23 ms as 10,000 entries filled the registry.
    clock = Clock()
    registry = RunRegistry(600, clock=clock)
    for index in range(2_000):
        clock.now = index * 0.01
        await run(registry, f"e{index}", result(index, 10))
    assert len(registry) == 2_000

    clock.operations = 0
    for index in range(0, 2_000, 10):
        assert (await run(registry, f"e{index}", result(-1)))[1] is True
        await run(registry, f"new{index}", result(index, 10))
    # A few time operations per lookup, not one per entry held (800,000 before).
    assert clock.operations <= 10 * 400
