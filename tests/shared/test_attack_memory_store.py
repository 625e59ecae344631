"""``memory://`` against a hostile client: what it holds (runs' checkpoints for a day, sessions'
turns) is bounded in bytes as well as in keys, the oldest written going first, so that many
runs with large steps cannot take the instance's memory."""

from __future__ import annotations

import pytest

from shared.store.memory import DEFAULT_MAX_BYTES, MemoryStore

pytestmark = pytest.mark.anyio

MIB = b"x" * (1024 * 1024)  # one object, written many times: the test itself holds 1 MiB


async def test_values_and_lists_are_bounded_in_bytes() -> None:
    store = MemoryStore()
    many = DEFAULT_MAX_BYTES // len(MIB) + 10
    for n in range(many):
        await store.put(f"runstate:{n}", MIB, ttl_s=86_400)
        await store.append(f"runsteps:{n}", MIB, ttl_s=86_400)
    assert store.held_bytes() <= DEFAULT_MAX_BYTES
    assert await store.get("runstate:0") is None  # the oldest went first
    assert (await store.get(f"runstate:{many - 1}")) is not None
    assert await store.items(f"runsteps:{many - 1}") == [MIB]
    assert await store.delete(f"runsteps:{many - 1}")
    await store.put(f"runstate:{many - 1}", b"small")
    assert store.held_bytes() == sum(
        len(h.value) if isinstance(h.value, bytes) else sum(map(len, h.value))
        for h in store._held.values()
    )
