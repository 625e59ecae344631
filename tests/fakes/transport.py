"""A scripted ``shared.transport.Transport``: for logic tests that need no socket.

    fake = FakeTransport()
    fake.enqueue(Answer(529, {}, b"{}"), TransportError("cannot connect"), Answer(200, {}, b"{}"))
    provider = AnthropicProvider(environ, transport=fake)

Each request takes the next scripted item: an ``Answer`` is answered (its body read whole, in
pieces by ``chunks()``), an exception is raised as the transport would raise it. Every request
is recorded (``requests``). The wire itself is tested against real servers, both transports
alike, in ``tests/shared/test_transport.py``.
"""

from __future__ import annotations

from collections import deque
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass

from shared.errors import AnswerTooLarge
from shared.transport import MAX_BODY_BYTES, Answer, answer_of


@dataclass(frozen=True)
class SentRequest:
    method: str
    url: str
    headers: dict[str, str]
    body: bytes


class FakeResponse:
    def __init__(self, answer: Answer) -> None:
        self.status = answer.status
        self.headers = dict(answer.headers)
        self._body = answer.body
        self.closed = False

    async def read(self, limit: int = MAX_BODY_BYTES) -> bytes:
        if len(self._body) > limit:
            raise AnswerTooLarge(f"the upstream's answer exceeds {limit} bytes")
        return self._body

    async def prefix(self, limit: int) -> bytes:
        return self._body[:limit]

    async def chunks(self, idle_timeout_s: float | None = None) -> AsyncIterator[bytes]:
        for line in self._body.splitlines(keepends=True):
            yield line

    def close(self) -> None:
        self.closed = True


class FakeTransport:
    def __init__(self) -> None:
        self.requests: list[SentRequest] = []
        self._script: deque[Answer | BaseException] = deque()
        self.closed = False

    def enqueue(self, *items: Answer | BaseException) -> None:
        self._script.extend(items)

    async def request(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        body: bytes = b"",
        *,
        connect_timeout_s: float = 10.0,
    ) -> FakeResponse:
        self.requests.append(SentRequest(method, url, dict(headers), body))
        item = self._script.popleft() if self._script else Answer(200, {}, b"{}")
        if isinstance(item, BaseException):
            raise item
        return FakeResponse(item)

    async def exchange(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        body: bytes = b"",
        *,
        connect_timeout_s: float = 10.0,
        limit: int = MAX_BODY_BYTES,
    ) -> Answer:
        return await answer_of(await self.request(method, url, headers, body), limit)

    async def close(self) -> None:
        self.closed = True
