"""A fake model upstream on the standard library's asyncio: latency and streams on demand.

``python -m bench.upstream --port P --delay 1.0`` answers ``POST /v1/messages`` (Anthropic) and
``POST /model/{id}/invoke`` (Bedrock's InvokeModel; signatures are not checked) with a fixed
Message after ``--delay`` seconds. With ``"stream": true`` it sends Anthropic's events, the text
in ``--events`` deltas ``--interval`` seconds apart. ``--status 529`` answers every request with
an overloaded error instead. It is an OTLP/HTTP receiver too: ``POST /v1/traces`` and
``/v1/metrics`` are taken (200, an empty protobuf answer) and dropped. HTTP/1.1 keep-alive,
one coroutine per connection: it holds tens of thousands of waiting requests and does about
20k answers a second on one core here.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from typing import Any

from bench.tools import OVERLOADED
from bench.tools import UPSTREAM_MESSAGE as MESSAGE


def event(name: str, data: dict[str, Any]) -> bytes:
    return f"event: {name}\ndata: {json.dumps(data)}\n\n".encode()


OTLP_TAKEN = b"HTTP/1.1 200 OK\r\ncontent-type: application/x-protobuf\r\ncontent-length: 0\r\n\r\n"
"""An OTLP export taken: an empty ``Export...ServiceResponse`` is zero bytes."""


class Upstream:
    def __init__(self, delay: float, events: int, interval: float, status: int) -> None:
        self.delay, self.events, self.interval, self.status = delay, events, interval, status

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":", 1)[1])
                raw = await reader.readexactly(length) if length else b""
                if head.startswith((b"POST /v1/traces ", b"POST /v1/metrics ")):
                    writer.write(OTLP_TAKEN)
                    await writer.drain()
                    continue
                body = json.loads(raw) if raw else {}
                if self.delay:
                    await asyncio.sleep(self.delay)
                if self.status != 200:
                    self._send(writer, self.status, json.dumps(OVERLOADED).encode())
                elif body.get("stream"):
                    await self._stream(writer)
                else:
                    self._send(writer, 200, json.dumps(MESSAGE).encode())
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
            pass
        finally:
            writer.close()

    @staticmethod
    def _send(writer: asyncio.StreamWriter, status: int, payload: bytes) -> None:
        writer.write(
            b"HTTP/1.1 %d X\r\ncontent-type: application/json\r\ncontent-length: %d\r\n"
            b"request-id: req_bench\r\n\r\n%s" % (status, len(payload), payload)
        )

    async def _stream(self, writer: asyncio.StreamWriter) -> None:
        writer.write(
            b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
            b"transfer-encoding: chunked\r\n\r\n"
        )

        def chunk(data: bytes) -> None:
            writer.write(b"%x\r\n%s\r\n" % (len(data), data))

        start = {**MESSAGE, "content": [], "stop_reason": None}
        chunk(event("message_start", {"type": "message_start", "message": start}))
        block = {"type": "text", "text": ""}
        chunk(
            event(
                "content_block_start",
                {"type": "content_block_start", "index": 0, "content_block": block},
            )
        )
        for n in range(self.events):
            await writer.drain()
            await asyncio.sleep(self.interval)
            delta = {"type": "text_delta", "text": f"[{n}]"}
            chunk(
                event(
                    "content_block_delta",
                    {"type": "content_block_delta", "index": 0, "delta": delta},
                )
            )
        chunk(event("content_block_stop", {"type": "content_block_stop", "index": 0}))
        chunk(
            event(
                "message_delta",
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                    "usage": {"output_tokens": self.events},
                },
            )
        )
        chunk(event("message_stop", {"type": "message_stop"}))
        writer.write(b"0\r\n\r\n")


async def main(args: argparse.Namespace) -> None:
    upstream = Upstream(args.delay, args.events, args.interval, args.status)
    server = await asyncio.start_server(
        upstream.serve, "127.0.0.1", args.port, backlog=4096, limit=1 << 20
    )
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--delay", type=float, default=0.0)
    parser.add_argument("--events", type=int, default=20)
    parser.add_argument("--interval", type=float, default=0.5)
    parser.add_argument("--status", type=int, default=200)
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    asyncio.run(main(parser.parse_args()))
