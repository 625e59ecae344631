"""``Idempotency-Key`` for an agent's ``POST /``: a call sent again with the key of one already
answered gets that answer, without the agent running again.

The orchestrator sends ``Idempotency-Key: <run_id>:<step>`` on every agent call, and a run
resumed on another instance after its owner died makes the call that was in flight again with
the same key (functions/orchestrator/resume.py). An agent with side effects must not do them
twice: this keeps, in the agent's instance, each key's answer (and the hash of the body it
answered) for ``ttl_s``; a call with a key under way waits for that one's answer. The same
key with another body is refused (422): a client's bug, not a retry. What is kept is bounded
(``max_keys``, the oldest go first). An agent that runs as several instances keeps its keys
per instance: one with side effects that must hold across them keeps them in a shared store.
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

HEADER = "idempotency-key"
MAX_KEY_CHARS = 256
DEFAULT_TTL_S = 3600.0
DEFAULT_MAX_KEYS = 10_000


class KeyReused(BadRequest):
    status_code = 422


@dataclass
class _Kept:
    digest: str
    answer: asyncio.Future[Any]
    at: float


@dataclass
class IdempotentCalls:
    ttl_s: float = DEFAULT_TTL_S
    max_keys: int = DEFAULT_MAX_KEYS
    clock: Callable[[], float] = time.monotonic
    _kept: OrderedDict[str, _Kept] = field(default_factory=OrderedDict)

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
        self._kept[key] = _Kept(digest, answer, self.clock())
        while len(self._kept) > self.max_keys:
            self._kept.popitem(last=False)
        try:
            return await asyncio.shield(answer), False
        except BaseException:
            held = self._kept.get(key)
            if held is not None and held.answer is answer and answer.done():
                del self._kept[key]  # it failed: a retry must run it again
            raise

    def _expire(self) -> None:
        horizon = self.clock() - self.ttl_s
        while self._kept:
            oldest = next(iter(self._kept.values()))
            if oldest.at > horizon:
                return
            self._kept.popitem(last=False)
