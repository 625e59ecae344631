"""Per-request context that travels without being passed by hand.

The request id is set once where a request enters a function (the HTTP edge) and read by
every log line and every outbound call, the way functions-framework's ``execution_id`` works.
A contextvar follows asyncio tasks and ``contextvars.copy_context()`` into executor threads.
"""

from __future__ import annotations

from contextvars import ContextVar, Token

REQUEST_ID: ContextVar[str | None] = ContextVar("request_id", default=None)


def current_request_id() -> str | None:
    """The id of the request being served, or None outside a request."""
    return REQUEST_ID.get()


def bind_request_id(request_id: str) -> Token[str | None]:
    """Make ``request_id`` current; give the token to ``REQUEST_ID.reset`` when done."""
    return REQUEST_ID.set(request_id)
