"""Reading server-sent events: Anthropic's ``event:``/``data:`` pairs out of a byte stream,
whole events at a time (writing them is ``shared.http.sse_event``). The gateway reads its
providers' streams with it (its OpenAI-compatible streams), the orchestrator the gateway's."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

EVENT_END = b"\n\n"


class EventReader:
    """Anthropic's events out of a byte stream, whole events at a time: ``(name, data)``."""

    def __init__(self) -> None:
        self._buffer = b""

    def feed(self, chunk: bytes) -> Iterator[tuple[str, Any]]:
        buffer = self._buffer + chunk.replace(b"\r\n", b"\n")
        *events, self._buffer = buffer.split(EVENT_END)
        for event in events:
            name, data = "", []
            for line in event.split(b"\n"):
                if line.startswith(b"event:"):
                    name = line[6:].strip().decode("utf-8", "replace")
                elif line.startswith(b"data:"):
                    data.append(line[5:].strip())
            if data:
                try:
                    value = json.loads(b"\n".join(data))
                except ValueError:
                    value = None
                if isinstance(value, dict):
                    yield name, value
                else:  # not JSON, or JSON that is no event (a hostile or broken upstream)
                    yield "error", {"error": {"message": "the stream sent an unreadable event"}}
