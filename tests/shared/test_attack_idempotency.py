"""``Idempotency-Key`` against a hostile caller: keys are bounded in length, the same key with
another body is a 422, and what is kept is bounded in bytes as well as in keys, so that fresh
keys with large answers cannot hold the agent's memory."""

from __future__ import annotations

from typing import Any

import pytest

from shared.errors import BadRequest
from shared.idempotency import DEFAULT_MAX_BYTES, IdempotentCalls, KeyReused

pytestmark = pytest.mark.anyio

BIG = "x" * (1024 * 1024)


def counting() -> tuple[list[int], Any]:
    runs: list[int] = []

    async def run() -> dict[str, Any]:
        runs.append(1)
        return {"result": BIG, "n": len(runs)}

    return runs, run


async def test_kept_answers_are_bounded_in_bytes() -> None:
    calls = IdempotentCalls()
    runs, run = counting()
    fresh = DEFAULT_MAX_BYTES // len(BIG) + 8
    for n in range(fresh):
        await calls.once(f"k{n}", b"{}", run)
    assert calls.kept_bytes() <= DEFAULT_MAX_BYTES
    answer, kept = await calls.once("k0", b"{}", run)  # the oldest went first: run again
    assert not kept and len(runs) == fresh + 1
    answer, kept = await calls.once(f"k{fresh - 1}", b"{}", run)  # the newest is kept
    assert kept and answer["n"] == fresh


async def test_a_key_too_long_or_reused_for_another_body_is_refused() -> None:
    calls = IdempotentCalls()
    _, run = counting()
    with pytest.raises(BadRequest, match="at most 256"):
        await calls.once("k" * 10_000, b"{}", run)
    await calls.once("run_1:1\x00\n", b'{"a": 1}', run)
    with pytest.raises(KeyReused) as reused:
        await calls.once("run_1:1\x00\n", b'{"a": 2}', run)
    assert reused.value.status_code == 422 and BIG[:100] not in reused.value.message
