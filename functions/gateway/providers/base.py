"""The seam every model provider implements."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Protocol


class Provider(Protocol):
    """A source of Anthropic-format answers.

    Implementations raise ``shared.errors.UpstreamError`` subclasses; ``retryable`` on the
    error tells the resilience layer whether another attempt could help. They never retry
    themselves: one layer owns retries for all providers.
    """

    name: str

    def configured(self) -> bool:
        """Whether credentials are present; an unconfigured provider is skipped, never called."""
        ...

    def complete(self, body: dict[str, Any], model: str, timeout_s: float) -> bytes:
        """Answer a Messages request (``stream`` ignored) with a Message as JSON bytes."""
        ...

    def stream(self, body: dict[str, Any], model: str, timeout_s: float) -> Iterator[bytes]:
        """Answer a Messages request as Anthropic server-sent events.

        Failing to start raises before the first chunk is produced, so that the caller can
        still fall back; a failure later raises from the iterator.
        """
        ...

    def close(self) -> None:
        """Release connections."""
        ...
