"""``Idempotency-Key`` for an agent's ``POST /``: a call sent again with the key of one already
answered gets that answer, without the agent running again.

The orchestrator sends ``Idempotency-Key: <run_id>:<step>`` on every agent call, and a run
resumed on another instance after its owner died makes the call that was in flight again with
the same key (functions/orchestrator/resume.py). An agent with side effects must not do them
twice: this keeps, in the agent's instance, each key's answer (and the hash of the body it
answered) for ``ttl_s``; a call with a key under way waits for that one's answer. The same
key with another body is refused (422): a client's bug, not a retry. What is kept is bounded
in keys (``max_keys``) and in bytes (``max_bytes``, each answer counted at the size of its
JSON), the oldest going first: fresh keys with large answers cannot hold the agent's memory.
An agent that runs as several instances keeps its keys per instance: one with side effects
that must hold across them keeps them in a shared store.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from shared.errors import BadRequest
from shared.http import json_text

HEADER = "idempotency-key"
MAX_KEY_CHARS = 256
DEFAULT_TTL_S = 3600.0
DEFAULT_MAX_KEYS = 10_000
DEFAULT_MAX_BYTES = 32 * 1024 * 1024


class KeyReused(BadRequest):
    status_code = 422


@dataclass
class _Kept:
    digest: str
    answer: asyncio.Future[Any]
    at: float
    size: int = 0
    """Its answer's JSON in bytes, once it is there."""


@dataclass
class IdempotentCalls:
    ttl_s: float = DEFAULT_TTL_S
    max_keys: int = DEFAULT_MAX_KEYS
    max_bytes: int = DEFAULT_MAX_BYTES
    clock: Callable[[], float] = time.monotonic
    _kept: OrderedDict[str, _Kept] = field(default_factory=OrderedDict)
    _bytes: int = 0

    def kept_bytes(self) -> int:
        """What the kept answers weigh (their JSON, in bytes)."""
        return self._bytes

    async def once(
        self, key: str | None, body: bytes, run: Callable[[], Awaitable[Any]]
    ) -> tuple[Any, bool]:
        """``run()``'s answer, or the answer kept for ``key`` (the flag: it was kept). Without
        a key, ``run()`` every time. A call that raised keeps nothing: its retry runs again."""
        if key is None:
            return await run(), False
        if len(key) > MAX_KEY_CHARS:
            raise BadRequest(f"{HEADER}: at most {MAX_KEY_CHARS} characters")
        digest = hashlib.sha256(body).hexdigest()
        self._expire()
        kept = self._kept.get(key)
        if kept is not None:
            if kept.digest != digest:
                raise KeyReused(f"{HEADER} {key[:80]!r} was used for another request")
            return await asyncio.shield(kept.answer), True
        answer: asyncio.Future[Any] = asyncio.ensure_future(run())
        entry = self._kept[key] = _Kept(digest, answer, self.clock())
        while len(self._kept) > self.max_keys:
            self._drop_oldest()
        try:
            value = await asyncio.shield(answer)
        except BaseException:
            held = self._kept.get(key)
            if held is not None and held.answer is answer and answer.done():
                del self._kept[key]  # it failed: a retry must run it again
            raise
        if self._kept.get(key) is entry and not entry.size:
            entry.size = len(json_text(value).encode("utf-8", "surrogatepass"))
            self._bytes += entry.size
            while self._bytes > self.max_bytes and self._kept:
                self._drop_oldest()
        return value, False

    def _drop_oldest(self) -> None:
        _, dropped = self._kept.popitem(last=False)
        self._bytes -= dropped.size

    def _expire(self) -> None:
        horizon = self.clock() - self.ttl_s
        while self._kept:
            oldest = next(iter(self._kept.values()))
            if oldest.at > horizon:
                return
            self._drop_oldest()
