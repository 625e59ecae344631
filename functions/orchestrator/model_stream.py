"""A model turn read as the gateway streams it (Anthropic's server-sent events), so that its
text reaches the client as it is generated (``text_delta`` events of a streamed run), and the
whole message is put together from the events for the loop.

The gateway's own retries and fallbacks happen before its first byte; once text has been
passed on, a stream that breaks is not tried again (the client has seen words that a second
answer would contradict): the turn fails with the reason, as any failed model call does.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from shared.errors import BadGateway, UpstreamError, error_for_status

OnText = Callable[[str], Awaitable[None]]
"""Receives each piece of the model's text as it arrives."""

ERROR_STATUS = {
    "overloaded_error": 529,
    "rate_limit_error": 429,
    "api_error": 500,
    "timeout_error": 504,
    "invalid_request_error": 400,
}


class StreamBroke(Exception):
    """The stream ended in an ``error`` event, or without its ``message_stop``."""

    def __init__(self, error: UpstreamError, *, passed_on: bool) -> None:
        super().__init__(error.message)
        self.error = error
        self.passed_on = passed_on
        """Text had reached the client already: it must not be tried again."""


class MessageAssembler:
    """Anthropic's stream events in, the message out (``content``, ``stop_reason``, usage)."""

    def __init__(self, on_text: OnText) -> None:
        self.on_text = on_text
        self.content: list[dict[str, Any]] = []
        self.stop_reason = "end_turn"
        self.input_tokens = 0
        self.output_tokens = 0
        self.finished = False
        self.passed_on = False
        self._partial: dict[int, str] = {}

    async def feed(self, name: str, data: Any) -> None:
        if not isinstance(data, dict):
            return
        kind = data.get("type", name)
        if kind == "error":
            raise StreamBroke(_error_of(data), passed_on=self.passed_on)
        if kind == "message_start":
            usage = (data.get("message") or {}).get("usage") or {}
            self.input_tokens = _count(usage.get("input_tokens"))
        elif kind == "content_block_start":
            self.content.append(dict(data.get("content_block") or {}))
        elif kind == "content_block_delta":
            await self._delta(int(data.get("index", len(self.content) - 1)), data.get("delta"))
        elif kind == "content_block_stop":
            self._close(int(data.get("index", len(self.content) - 1)))
        elif kind == "message_delta":
            self.stop_reason = str((data.get("delta") or {}).get("stop_reason") or "end_turn")
            self.output_tokens = _count((data.get("usage") or {}).get("output_tokens"))
        elif kind == "message_stop":
            self.finished = True

    async def _delta(self, index: int, delta: Any) -> None:
        if not isinstance(delta, dict) or not 0 <= index < len(self.content):
            return
        block = self.content[index]
        if delta.get("type") == "text_delta":
            text = str(delta.get("text", ""))
            block["text"] = block.get("text", "") + text
            if text:
                self.passed_on = True
                await self.on_text(text)
        elif delta.get("type") == "input_json_delta":
            self._partial[index] = self._partial.get(index, "") + str(delta.get("partial_json"))
        elif delta.get("type") == "thinking_delta":
            block["thinking"] = block.get("thinking", "") + str(delta.get("thinking", ""))
        elif delta.get("type") == "signature_delta":
            block["signature"] = str(delta.get("signature", ""))

    def _close(self, index: int) -> None:
        if index in self._partial:
            raw = self._partial.pop(index)
            try:
                self.content[index]["input"] = json.loads(raw) if raw.strip() else {}
            except ValueError as exc:
                problem = BadGateway(
                    f"the model gateway streamed a tool call that is not JSON: {exc}"
                )
                raise StreamBroke(problem, passed_on=self.passed_on) from exc

    def check_finished(self) -> None:
        if not self.finished:
            broke = BadGateway("the model gateway's stream ended before its message_stop")
            raise StreamBroke(broke, passed_on=self.passed_on)


def _error_of(data: dict[str, Any]) -> UpstreamError:
    given = data.get("error")
    error: dict[str, Any] = given if isinstance(given, dict) else {}
    kind = str(error.get("type", "api_error"))
    message = f"the model gateway's stream broke: {error.get('message', kind)}"
    return error_for_status(ERROR_STATUS.get(kind, 502), message)


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0
