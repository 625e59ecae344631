"""The Responses API's streamed events, translated from the router's Anthropic event stream.

The router's stream is already guarded (``functions.gateway.streaming.guarded``): it fails over
before its first byte, arrives a whole event at a time, and ends in ``message_stop`` or an
``error`` event. Each Anthropic event becomes the Responses events it stands for, numbered by
``sequence_number``: ``response.created`` and ``response.in_progress`` at ``message_start``;
``response.output_item.added`` / ``content_part.added`` / ``output_text.delta`` ... ``.done``
for text; ``function_call_arguments.delta`` / ``.done`` for a ``tool_use``; and
``response.completed`` (``response.incomplete`` at ``max_tokens``) at ``message_stop``. An
``error`` event, or a stream that ends without ``message_stop``, ends the answer with an
``error`` event and ``response.failed``: the client never mistakes a broken answer for a whole.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING, Any

from functions.gateway.openai import responses_output as r
from functions.gateway.openai.responses_output import response_object
from functions.gateway.openai.translate import RESPONSE_TOOL, obj
from shared.http import sse_event
from shared.logs import get_logger
from shared.sse import EventReader

if TYPE_CHECKING:
    from functions.gateway.openai.responses_input import ResponsesRequest

log = get_logger("gateway.responses")


async def response_events(
    chunks: AsyncIterator[bytes], request: ResponsesRequest, response_id: str, created_at: int
) -> AsyncIterator[bytes]:
    """The Responses events for the Anthropic events in ``chunks``."""
    state = _Translation(request, response_id, created_at)
    reader = EventReader()
    try:
        async for chunk in chunks:
            for name, data in reader.feed(chunk):
                for out in state.feed(name, data):
                    yield out
                if state.finished:
                    return
    finally:
        close = getattr(chunks, "aclose", None)
        if close is not None:
            await close()
    if not state.finished:
        for out in state.fail("the provider's stream ended before message_stop"):
            yield out


class _Translation:
    """One stream's translation: the output items so far, and the one being written."""

    def __init__(self, request: ResponsesRequest, response_id: str, created_at: int) -> None:
        self.request = request
        self.response_id = response_id
        self.created_at = created_at
        self.sequence = 0
        self.message: dict[str, Any] = {"content": [], "usage": {}}
        self.output: list[dict[str, Any]] = []
        self.open_message: dict[str, Any] | None = None
        self.block: dict[str, Any] | None = None
        """The content block being streamed: its output item, its text or arguments so far."""
        self.finished = False

    def event(self, kind: str, **fields: Any) -> bytes:
        data = {"type": kind, "sequence_number": self.sequence, **fields}
        self.sequence += 1
        return sse_event(kind, data)

    def response(self, status: str) -> dict[str, Any]:
        return response_object(
            self.message,
            self.request,
            self.response_id,
            self.created_at,
            output=list(self.output),
            status=status,
        )

    def feed(self, name: str, data: dict[str, Any]) -> Iterator[bytes]:
        name = name or str(data.get("type", ""))
        if name == "message_start":
            start = obj(data.get("message"))
            self.message.update(model=start.get("model"), usage=dict(obj(start.get("usage"))))
            yield self.event("response.created", response=self.response("in_progress"))
            yield self.event("response.in_progress", response=self.response("in_progress"))
        elif name == "content_block_start":
            yield from self._start(obj(data.get("content_block")))
        elif name == "content_block_delta":
            yield from self._delta(obj(data.get("delta")))
        elif name == "content_block_stop":
            yield from self._stop()
        elif name == "message_delta":
            self.message["stop_reason"] = obj(data.get("delta")).get("stop_reason")
            self.message["usage"].update(obj(data.get("usage")))
        elif name == "message_stop":
            yield from self._finish()
        elif name == "error":
            error = obj(data.get("error"))
            yield from self.fail(str(error.get("message") or "the provider's stream failed"))

    def _start(self, block: dict[str, Any]) -> Iterator[bytes]:
        kind = block.get("type")
        json_answer = kind == "tool_use" and block.get("name") == RESPONSE_TOOL
        if self.request.json_tool and (kind == "text" or json_answer):
            kind = "json" if json_answer else "preamble"  # the JSON is the text, nothing else
        if kind in ("text", "json"):
            if self.open_message is None:
                ident = r.item_id("msg", self.response_id, len(self.output))
                self.open_message = r.message_item(ident, [], status="in_progress")
                self.output.append(self.open_message)
                yield self._item_event("response.output_item.added", self.open_message)
            part = {"type": "output_text", "text": "", "annotations": []}
            self.block = {
                "kind": "text",
                "text": "",
                "part": len(self.open_message["content"]),
                "delta": "input_json_delta" if kind == "json" else "text_delta",
            }
            self.open_message["content"].append(part)
            yield self.event("response.content_part.added", **self._text_place(), part=dict(part))
        elif kind == "tool_use":
            yield from self._close_message()
            ident = r.item_id("fc", self.response_id, len(self.output))
            call_id, name = str(block.get("id") or ""), str(block.get("name") or "")
            item = r.function_call_item(ident, call_id, name, "", "in_progress")
            self.output.append(item)
            self.block = {"kind": "tool", "item": item, "arguments": ""}
            yield self._item_event("response.output_item.added", item)
        else:
            self.block = {"kind": "other"}  # thinking, server tools: the provider's own

    def _delta(self, delta: dict[str, Any]) -> Iterator[bytes]:
        block = self.block or {}
        if block.get("kind") == "text" and delta.get("type") == block["delta"]:
            text = str(delta.get("text" if block["delta"] == "text_delta" else "partial_json", ""))
            block["text"] += text
            yield self.event(
                "response.output_text.delta", **self._text_place(), delta=text, logprobs=[]
            )
        elif block.get("kind") == "tool" and delta.get("type") == "input_json_delta":
            piece = str(delta.get("partial_json", ""))
            block["arguments"] += piece
            item = block["item"]
            yield self.event(
                "response.function_call_arguments.delta",
                item_id=item["id"],
                output_index=self.output.index(item),
                delta=piece,
            )

    def _stop(self) -> Iterator[bytes]:
        block, self.block = self.block or {}, None
        if block.get("kind") == "text" and self.open_message is not None:
            part = {"type": "output_text", "text": block["text"], "annotations": []}
            self.open_message["content"][block["part"]] = part
            place = {**self._text_place(), "content_index": block["part"]}
            yield self.event("response.output_text.done", **place, text=block["text"], logprobs=[])
            yield self.event("response.content_part.done", **place, part=part)
        elif block.get("kind") == "tool":
            item = block["item"]
            item["arguments"] = block["arguments"] or "{}"
            item["status"] = "completed"
            index = self.output.index(item)
            yield self.event(
                "response.function_call_arguments.done",
                item_id=item["id"],
                output_index=index,
                name=item["name"],
                arguments=item["arguments"],
            )
            yield self._item_event("response.output_item.done", item)

    def _close_message(self) -> Iterator[bytes]:
        if self.open_message is not None:
            self.open_message["status"] = "completed"
            yield self._item_event("response.output_item.done", self.open_message)
            self.open_message = None

    def _finish(self) -> Iterator[bytes]:
        yield from self._close_message()
        status = "incomplete" if self.message.get("stop_reason") == "max_tokens" else "completed"
        self.finished = True
        yield self.event(f"response.{status}", response=self.response(status))

    def fail(self, reason: str) -> Iterator[bytes]:
        """End the answer as failed: it is incomplete, and the client must know it."""
        log.warning("responses stream failed", extra={"error": reason})
        self.finished = True
        yield self.event("error", code="server_error", message=reason, param=None)
        failed = self.response("failed")
        failed["error"] = {"code": "server_error", "message": reason}
        yield self.event("response.failed", response=failed)

    def _item_event(self, kind: str, item: dict[str, Any]) -> bytes:
        return self.event(kind, output_index=self.output.index(item), item=dict(item))

    def _text_place(self) -> dict[str, Any]:
        message = self.open_message or {}
        return {
            "item_id": message.get("id"),
            "output_index": self.output.index(message) if message else 0,
            "content_index": len(message.get("content", [])) - 1,
        }
