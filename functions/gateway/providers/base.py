"""The seam every model provider implements."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol


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

    async def close(self) -> None:
        """Release connections."""
        ...
