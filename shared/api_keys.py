"""The keys a function may require of its callers: one mechanism for the gateway's
``GATEWAY_API_KEYS`` and the orchestrator's ``ORCHESTRATOR_API_KEYS``.

A caller sends its key as ``x-api-key`` or as ``Authorization: Bearer <key>`` (what Anthropic's
SDKs and OpenAI's send). The offered key is compared with every accepted one in constant time,
so timing tells nothing about which matched or how much of one. No key ever appears in an
error message; the functions hide them from their logs too (``shared.logs.hide``).
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable, Iterable, Mapping

from shared.errors import Unauthorized
from shared.http import Call, Reply

Handler = Callable[[Call], Awaitable[Reply]]


class ApiKeys:
    """The keys ``service`` accepts; none: every caller is let in."""

    def __init__(self, keys: Iterable[str], service: str) -> None:
        self._keys = tuple(key.encode() for key in keys if key)
        self._service = service

    @property
    def required(self) -> bool:
        return bool(self._keys)

    def check(self, headers: Mapping[str, str]) -> None:
        """Raise ``Unauthorized`` unless ``headers`` (lower-case names) carry an accepted key."""
        if not self._keys:
            return
        offered = headers.get("x-api-key") or ""
        authorization = headers.get("authorization") or ""
        if not offered and authorization.lower().startswith("bearer "):
            offered = authorization[7:].strip()
        if not offered:
            raise Unauthorized("an API key is required: send it as x-api-key or Bearer token")
        # Every key compared, none skipped: the time taken says nothing about which matched.
        matched = [hmac.compare_digest(offered.encode(), key) for key in self._keys]
        if not any(matched):
            raise Unauthorized(f"the API key is not valid for this {self._service}")

    def guard(self, call: Call) -> None:
        """``check`` on a call (``AsyncFunctionApp``'s ``guard`` for ``/metrics``)."""
        self.check(call.headers)

    def guarding(self, handler: Handler) -> Handler:
        """``handler``, answering 401 first to a call without an accepted key."""
        if not self._keys:
            return handler

        async def guarded(call: Call) -> Reply:
            self.check(call.headers)
            return await handler(call)

        return guarded
