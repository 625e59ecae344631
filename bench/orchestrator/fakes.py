"""The fake gateway and calculator agent, on one port, run in a process of their own as
``python -m bench.orchestrator fakes PORT DELAY``."""

from __future__ import annotations

import asyncio
from typing import Any

from bench.orchestrator.streams import content_length, response

CALCULATOR_SCHEMA = {
    "name": "calculator",
    "description": "Arithmetic.",
    "input_schema": {
        "type": "object",
        "properties": {"expression": {"type": "string", "minLength": 1}},
        "required": ["expression"],
        "additionalProperties": False,
    },
}


def _message(content: list[dict[str, Any]], stop: str) -> dict[str, Any]:
    return {
        "id": "msg_bench",
        "type": "message",
        "role": "assistant",
        "model": "bench",
        "content": content,
        "stop_reason": stop,
        "stop_sequence": None,
        "usage": {"input_tokens": 20, "output_tokens": 10},
    }


TOOL_TURN = _message(
    [{"type": "tool_use", "id": "toolu_1", "name": "calculator", "input": {"expression": "6*7"}}],
    "tool_use",
)
ANSWER_TURN = _message([{"type": "text", "text": "6*7 = 42"}], "end_turn")


class Fakes:
    """The gateway (``POST /v1/messages`` after ``delay_s``: a calculator call, or the answer
    once a tool result is in the conversation) and the calculator (``GET /calculator/schema``,
    ``POST /calculator/``) on one port. Requests are scanned, not parsed."""

    ROUTES = {
        (b"GET", b"/calculator/schema"): response(CALCULATOR_SCHEMA),
        (b"POST", b"/calculator/"): response({"result": {"expression": "6*7", "value": 42}}),
    }
    NOT_FOUND = response({"error": {"type": "not_found", "message": "no route"}}, b"404 X")
    TOOL_TURN, ANSWER_TURN = response(TOOL_TURN), response(ANSWER_TURN)

    def __init__(self, delay_s: float) -> None:
        self.delay_s = delay_s

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                body = await reader.readexactly(content_length(head))
                method, path, _ = head.split(b" ", 2)
                if (method, path) == (b"POST", b"/v1/messages"):
                    if self.delay_s:
                        await asyncio.sleep(self.delay_s)
                    writer.write(self.ANSWER_TURN if b'"tool_result"' in body else self.TOOL_TURN)
                else:
                    writer.write(self.ROUTES.get((method, path), self.NOT_FOUND))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
            pass
        finally:
            writer.close()


async def serve_fakes(port: int, delay_s: float) -> None:
    fakes = Fakes(delay_s)
    server = await asyncio.start_server(fakes.serve, "127.0.0.1", port, backlog=4096, limit=1 << 22)
    async with server:
        await server.serve_forever()
