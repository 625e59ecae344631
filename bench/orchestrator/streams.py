"""HTTP/1.1 on asyncio streams, for the fakes and the load client: answers and requests are
encoded once and scanned, not parsed, so that what stands for other machines costs the cores
it shares with the orchestrator little."""

from __future__ import annotations

import asyncio
import json
from typing import Any


def content_length(head: bytes) -> int:
    at = head.lower().find(b"\r\ncontent-length:")
    if at < 0:
        return 0
    return int(head[at + 17 : head.find(b"\r\n", at + 2)])


def response(payload: Any, status: bytes = b"200 OK") -> bytes:
    body = json.dumps(payload).encode()
    return (
        b"HTTP/1.1 %s\r\ncontent-type: application/json\r\nx-gateway-provider: fake\r\n"
        b"content-length: %d\r\n\r\n%s" % (status, len(body), body)
    )


def request(method: str, path: str, payload: Any = None) -> bytes:
    body = b"" if payload is None else json.dumps(payload).encode()
    head = f"{method} {path} HTTP/1.1\r\nhost: bench\r\ncontent-type: application/json\r\n"
    return f"{head}content-length: {len(body)}\r\n\r\n".encode() + body


class Client:
    """One keep-alive connection to the orchestrator. Only the status and ``content-length`` of
    an answer are read before its body: the load client must not be what is measured."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader, self._writer = reader, writer

    @classmethod
    async def connect(cls, url: str) -> Client:
        host, port = url.removeprefix("http://").split(":")
        reader, writer = await asyncio.open_connection(host, int(port), limit=1 << 22)
        return cls(reader, writer)

    async def send(self, raw: bytes) -> tuple[int, bytes]:
        self._writer.write(raw)
        head = await self._reader.readuntil(b"\r\n\r\n")
        return int(head[9:12]), await self._reader.readexactly(content_length(head))

    def close(self) -> None:
        self._writer.close()
