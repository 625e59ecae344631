"""One scripted provider and one fake time for every gateway test that needs no wire.

``ScriptedProvider`` plays a queue of outcomes, one per call: an exception to raise, a
``bytes`` answer, or (for streams) a list of chunks. With the queue empty it answers a
minimal Message. ``FakeTime`` is the router's clock and sleep: sleeping advances the clock
and records the wait, so backoff is visible exactly and no test ever really sleeps.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from functions.gateway.providers.base import ProviderCall

MESSAGE = {
    "id": "msg_scripted",
    "type": "message",
    "role": "assistant",
    "model": "scripted",
    "content": [{"type": "text", "text": "scripted answer"}],
    "stop_reason": "end_turn",
    "stop_sequence": None,
    "usage": {"input_tokens": 1, "output_tokens": 2},
}
Outcome = BaseException | bytes | list[bytes]


class ScriptedProvider:
    def __init__(self, *outcomes: Outcome, name: str = "anthropic", configured: bool = True):
        self.name = name
        self.outcomes: list[Outcome] = list(outcomes)
        self.calls: list[ProviderCall] = []
        self._configured = configured

    @property
    def timeouts(self) -> list[float]:
        return [call.timeout_s for call in self.calls]

    def configured(self) -> bool:
        return self._configured

    def _next(self, call: ProviderCall) -> bytes | list[bytes]:
        self.calls.append(call)
        outcome = self.outcomes.pop(0) if self.outcomes else json.dumps(MESSAGE).encode()
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    async def complete(self, call: ProviderCall) -> bytes:
        outcome = self._next(call)
        return outcome if isinstance(outcome, bytes) else b"".join(outcome)

    async def stream(self, call: ProviderCall) -> AsyncIterator[bytes]:
        outcome = self._next(call)
        return chunks_of([outcome] if isinstance(outcome, bytes) else outcome)

    async def count_tokens(self, call: ProviderCall) -> dict[str, Any]:
        """Scripted like an answer: its bytes are the count's JSON."""
        count: dict[str, Any] = json.loads(await self.complete(call))
        return count

    async def close(self) -> None:
        pass


async def chunks_of(chunks: list[Any]) -> AsyncIterator[bytes]:
    """Yield each chunk; an exception in the list is raised when its turn comes."""
    for chunk in chunks:
        if isinstance(chunk, BaseException):
            raise chunk
        yield chunk


class FakeTime:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds
