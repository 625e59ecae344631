"""The seam every model provider implements."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from shared.errors import BadGateway
from shared.errors import SentTimeout as SentTimeout  # its home; the router imports it here

USER_AGENT = "agent-orchestrator-gateway/0.1"
"""What the gateway calls itself to every provider (after the caller's own, where passed on)."""
CHARACTERS_PER_TOKEN = 4
"""The rule of thumb behind every estimated count: about four characters of JSON a token."""
COUNTED_FIELDS = ("system", "messages", "tools", "tool_choice", "thinking")
"""What a model reads, and so what ``count_tokens`` counts."""


def estimated_count(body: Mapping[str, Any]) -> dict[str, Any]:
    """A deterministic ``count_tokens`` answer for a provider that cannot count, labelled as
    an estimate (``"estimate": true``) so that nobody takes it for the model's own count."""
    counted = {key: body[key] for key in COUNTED_FIELDS if key in body}
    size = len(json.dumps(counted, separators=(",", ":"), ensure_ascii=False))
    return {"input_tokens": max(1, size // CHARACTERS_PER_TOKEN), "estimate": True}


def json_object(raw: bytes) -> dict[str, Any] | None:
    """``raw`` parsed when it is a JSON object; None for anything else (a proxy's HTML page,
    a truncated body, a bare string or list)."""
    try:
        value = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None
    return value if isinstance(value, dict) else None


def checked_message(raw: bytes, source: str) -> bytes:
    """``raw`` when it can be a Message (a JSON object); else a ``BadGateway`` naming
    ``source``, which the router retries and fails over like any upstream failure: a 200 is
    never passed on as ``application/json`` when it is not JSON."""
    if json_object(raw) is None:
        raise BadGateway(f"{source} answered 200 with {len(raw)} bytes that are not a JSON message")
    return raw


@dataclass(frozen=True)
class ProviderCall:
    """One attempt at one deployment: what to send, to which model, within how long."""

    body: dict[str, Any]
    """The caller's Messages request, as it came (``model`` and ``stream`` are the provider's
    to set)."""
    model: str
    """The deployment's model id at this provider."""
    timeout_s: float
    """How long this attempt may take (for a stream: the longest silence between chunks)."""
    headers: Mapping[str, str] = field(default_factory=dict)
    """The caller's headers that a provider may pass on (``anthropic-beta``,
    ``anthropic-version``, ``user-agent``), lower-case names."""
    received: dict[str, str] = field(default_factory=dict)
    """Filled by the provider: the upstream's answer headers worth passing back to the caller
    (its ``request-id``, ``anthropic-ratelimit-*``)."""


class Provider(Protocol):
    """A source of Anthropic-format answers.

    Implementations raise ``shared.errors.UpstreamError`` subclasses; ``retryable`` and
    ``falls_back`` on the error tell the resilience layer what another attempt could do. They
    never retry themselves: one layer owns retries for all providers. Any other exception is a
    bug in the provider, which the router reports as such and never counts against the
    deployment's circuit.
    """

    name: str

    def configured(self) -> bool:
        """Whether credentials are present; an unconfigured provider is skipped, never called."""
        ...

    async def complete(self, call: ProviderCall) -> bytes:
        """Answer a Messages request (``stream`` ignored) with a Message as JSON bytes."""
        ...

    async def stream(self, call: ProviderCall) -> AsyncIterator[bytes]:
        """Answer a Messages request as Anthropic server-sent events.

        Failing to start raises here, before the iterator is returned, so that the caller can
        still fall back; a failure later raises from the iterator.
        """
        ...

    async def count_tokens(self, call: ProviderCall) -> dict[str, Any]:
        """``POST /v1/messages/count_tokens``: ``{"input_tokens": n}``, plus
        ``"estimate": true`` when the count is the gateway's estimate, not the model's."""
        ...

    async def close(self) -> None:
        """Release connections."""
        ...
