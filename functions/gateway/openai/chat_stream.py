"""A Chat Completions stream: the gateway's Anthropic events (already failed over before the
first and guarded after it, ``functions.gateway.router``) as OpenAI's ``chat.completion.chunk``
server-sent events.

The first chunk carries the role; text arrives as ``delta.content``; a tool call as
``delta.tool_calls`` with its index, id and name, then its ``arguments`` piece by piece; the
last choice chunk carries ``finish_reason``; with ``stream_options.include_usage`` a chunk
with no choices and the usage follows; then ``data: [DONE]``. An ``error`` event (a stream
that broke after it began) becomes OpenAI's in-band ``data: {"error": ...}``, on which the
OpenAI SDKs raise, and the stream ends without ``[DONE]``.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING, Any

from functions.gateway.openai import translate as tr
from shared.http import json_bytes
from shared.sse import EventReader

if TYPE_CHECKING:
    from functions.gateway.openai.chat import ChatRequest

DONE = b"data: [DONE]\n\n"


def data_line(value: Any) -> bytes:
    return b"data: " + json_bytes(value) + b"\n\n"


class ChunkWriter:
    """Turns one stream's Anthropic events into OpenAI chunks."""

    def __init__(self, request: ChatRequest) -> None:
        self._request = request
        self._id = "chatcmpl-"
        self._created = int(time.time())
        self._usage: dict[str, Any] = {}
        self._tools: dict[int, int] = {}  # content block index -> tool call index
        self._json_blocks: set[int] = set()  # blocks of the forced JSON tool: content
        self._finish = "stop"

    def chunk(self, delta: dict[str, Any], finish: str | None = None) -> bytes:
        choice = {"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}
        return self._frame([choice])

    def _frame(self, choices: list[dict[str, Any]], usage: Any = None) -> bytes:
        chunk: dict[str, Any] = {
            "id": self._id,
            "object": "chat.completion.chunk",
            "created": self._created,
            "model": self._request.model,
            "choices": choices,
            "system_fingerprint": None,
        }
        if self._request.include_usage:
            chunk["usage"] = usage
        return data_line(chunk)

    def event(self, name: str, data: dict[str, Any]) -> Iterator[bytes]:
        kind = data.get("type", name)
        if kind == "message_start":
            message = tr.obj(data.get("message"))
            self._id = tr.answer_id(message, "chatcmpl-")
            self._usage.update(tr.obj(message.get("usage")))
            yield self.chunk({"role": "assistant", "content": ""})
        elif kind == "content_block_start":
            yield from self._block_start(_index(data), tr.obj(data.get("content_block")))
        elif kind == "content_block_delta":
            yield from self._delta(_index(data), tr.obj(data.get("delta")))
        elif kind == "message_delta":
            self._usage.update({k: v for k, v in tr.obj(data.get("usage")).items() if v})
            reason = tr.obj(data.get("delta")).get("stop_reason")
            self._finish = tr.finish_reason(reason)
            if self._finish == "tool_calls" and not self._tools:
                self._finish = "stop"  # the forced JSON tool answered
        elif kind == "message_stop":
            yield self.chunk({}, self._finish)
            if self._request.include_usage:
                yield self._frame([], tr.usage(self._usage))
            yield DONE
        elif kind == "error":
            yield data_line(_error(data))

    def _block_start(self, index: int, block: dict[str, Any]) -> Iterator[bytes]:
        if block.get("type") == "text" and block.get("text") and not self._request.json_tool:
            yield self.chunk({"content": block["text"]})
        elif block.get("type") == "tool_use":
            if self._request.json_tool and block.get("name") == tr.RESPONSE_TOOL:
                self._json_blocks.add(index)
                return
            position = self._tools[index] = len(self._tools)
            call = {
                "index": position,
                "id": block.get("id"),
                "type": "function",
                "function": {"name": block.get("name"), "arguments": ""},
            }
            yield self.chunk({"tool_calls": [call]})

    def _delta(self, index: int, delta: dict[str, Any]) -> Iterator[bytes]:
        kind = delta.get("type")
        if kind == "text_delta" and delta.get("text") and not self._request.json_tool:
            yield self.chunk({"content": delta["text"]})
        elif kind == "input_json_delta" and delta.get("partial_json"):
            if index in self._json_blocks:
                yield self.chunk({"content": delta["partial_json"]})
            elif index in self._tools:
                piece = {
                    "index": self._tools[index],
                    "function": {"arguments": delta["partial_json"]},
                }
                yield self.chunk({"tool_calls": [piece]})


def _index(data: dict[str, Any]) -> int:
    index = data.get("index")
    return index if isinstance(index, int) else -1


def _error(data: dict[str, Any]) -> dict[str, Any]:
    error = data.get("error")
    if not isinstance(error, dict):
        error = {}
    kind = str(error.get("type") or "api_error")
    return {
        "error": {
            "message": str(error.get("message") or "the stream broke"),
            "type": "server_error",
            "param": None,
            "code": kind,
        }
    }


async def chunks(events: AsyncIterator[bytes], request: ChatRequest) -> AsyncIterator[bytes]:
    """``events`` (Anthropic SSE bytes) as OpenAI chunks, one write per upstream read."""
    reader, writer = EventReader(), ChunkWriter(request)
    try:
        async for raw in events:
            out = b"".join(
                piece for name, data in reader.feed(raw) for piece in writer.event(name, data)
            )
            if out:
                yield out
    finally:
        close = getattr(events, "aclose", None)
        if close is not None:
            await close()
