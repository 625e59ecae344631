"""``python -m bench.first_token`` (``make bench-first-token``): how much later a client of a
streamed run sees the model's first words than a client of the gateway alone would.

One process, one event loop, so that one clock times both ends: a fake gateway (asyncio
streams, Anthropic's event sequence, chunked) sends ``message_start`` and the text block's
start, waits ``GAP_S`` (a model thinking), notes the time and sends the first ``text_delta``.
The gateway alone: a client (``shared.aio.AsyncHttp``, the orchestrator's own) reads the stream
until that event has arrived. Through the orchestrator: a streamed task
(``OrchestratorService.submit``, as the ASGI edge calls it), read until its first
``text_delta`` event. Each is the time from the fake's send to the client's receipt; the
figure is the difference of their medians. The orchestrator's HTTP edge in front is left out
(it adds the same framing to every event, not to the first alone).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from typing import Any

from bench.results import write_under_heading
from bench.tools import run
from functions.orchestrator.agents import AgentDirectory
from functions.orchestrator.config import OrchestratorConfig
from functions.orchestrator.model import GatewayModel
from functions.orchestrator.runs import RunRegistry
from functions.orchestrator.service import OrchestratorService
from shared.aio import AsyncHttp
from shared.http import Call, sse_event
from shared.resilience import RetrySettings

HEADING = "## Time to first token through the orchestrator (`make bench-first-token`)"
GAP_S = 0.02
FIRST = "The"


class FakeGateway:
    """Streams one text answer per request; ``sent`` holds when each first text went out."""

    def __init__(self) -> None:
        self.sent: list[float] = []
        self.url = ""

    async def start(self) -> asyncio.Server:
        server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        return server

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
                await reader.readexactly(length)
                await self._answer(writer)
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    async def _answer(self, writer: asyncio.StreamWriter) -> None:
        writer.write(
            b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
            b"x-gateway-provider: fake\r\ntransfer-encoding: chunked\r\n\r\n"
        )
        message: dict[str, Any] = {"id": "m", "type": "message", "role": "assistant"}
        message.update(content=[], usage={"input_tokens": 5, "output_tokens": 1})
        start = {"type": "text", "text": ""}
        self._chunk(writer, "message_start", {"type": "message_start", "message": message})
        self._chunk(writer, "content_block_start", _block("content_block_start", start))
        await writer.drain()
        await asyncio.sleep(GAP_S)
        self.sent.append(time.perf_counter())
        self._chunk(writer, "content_block_delta", _delta(FIRST))
        await writer.drain()
        self._chunk(writer, "content_block_delta", _delta(" answer is 42."))
        self._chunk(writer, "content_block_stop", {"type": "content_block_stop", "index": 0})
        delta = {"type": "message_delta", "delta": {"stop_reason": "end_turn"}}
        self._chunk(writer, "message_delta", {**delta, "usage": {"output_tokens": 5}})
        self._chunk(writer, "message_stop", {"type": "message_stop"})
        writer.write(b"0\r\n\r\n")
        await writer.drain()

    @staticmethod
    def _chunk(writer: asyncio.StreamWriter, name: str, data: dict[str, Any]) -> None:
        event = sse_event(name, data)
        writer.write(b"%x\r\n%s\r\n" % (len(event), event))


def _block(kind: str, block: dict[str, Any]) -> dict[str, Any]:
    return {"type": kind, "index": 0, "content_block": block}


def _delta(text: str) -> dict[str, Any]:
    return {
        "type": "content_block_delta",
        "index": 0,
        "delta": {"type": "text_delta", "text": text},
    }


async def gateway_alone(http: AsyncHttp, fake: FakeGateway) -> float:
    body = {
        "model": "x",
        "max_tokens": 16,
        "stream": True,
        "messages": [{"role": "user", "content": "q"}],
    }
    response = await http.open_stream("POST", fake.url + "/v1/messages", body=body)
    seen = b""
    try:
        async for chunk in response.chunks():
            seen += chunk
            if b"text_delta" in seen:
                return time.perf_counter() - fake.sent[-1]
    finally:
        response.close()
    raise AssertionError("no text_delta")


async def through_orchestrator(orchestrator: OrchestratorService, fake: FakeGateway) -> float:
    body = json.dumps({"task": "What is the answer?", "stream": True}).encode()
    reply = await orchestrator.submit(Call("POST", "/", {}, body, "bench"))
    first: float | None = None
    async for chunk in reply.body:
        if first is None and chunk.startswith(b"event: text_delta"):
            first = time.perf_counter() - fake.sent[-1]
    assert first is not None, "no text_delta event"
    return first


async def measure(runs: int) -> dict[str, float]:
    fake = FakeGateway()
    server = await fake.start()
    http = AsyncHttp()
    config = OrchestratorConfig.model_validate(
        {"gateway": {"url": fake.url}, "log_level": "WARNING"}
    )
    model = GatewayModel(http, fake.url, "default", RetrySettings(max_attempts=1))
    agents = AgentDirectory(http, {}, config.agent_calls)
    orchestrator = OrchestratorService(config, model, agents, None, RunRegistry(60))
    try:
        for _ in range(10):  # warm: connections open
            await gateway_alone(http, fake)
            await through_orchestrator(orchestrator, fake)
        alone = [await gateway_alone(http, fake) for _ in range(runs)]
        relayed = [await through_orchestrator(orchestrator, fake) for _ in range(runs)]
    finally:
        await orchestrator.aclose()
        await http.close()
        server.close()
    return {
        "runs": runs,
        "alone_ms": statistics.median(alone) * 1000,
        "relayed_ms": statistics.median(relayed) * 1000,
    }


def render(m: dict[str, float]) -> str:
    added = m["relayed_ms"] - m["alone_ms"]
    return f"""{HEADING}

Method: `bench/first_token.py`'s docstring; {m["runs"]:.0f} streamed runs each way. Target
(issue 20): the first word at most 5 ms (p50) after the gateway sends it.

| | gateway alone | through the orchestrator | added |
| --- | --- | --- | --- |
| first text_delta after the gateway sent it, p50 | {m["alone_ms"]:.2f} ms \
| {m["relayed_ms"]:.2f} ms | {added:.2f} ms |
"""


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.first_token")
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    section = render(run(measure(args.runs)))
    print(section)
    if not args.no_write:
        write_under_heading(section, HEADING)


if __name__ == "__main__":
    main()
