"""The OpenTelemetry GenAI semantic conventions, for the spans the gateway and orchestrator make.

Span names: ``invoke_agent {agent}`` (a run), ``chat {model}`` (a model call),
``execute_tool {tool}`` (an agent call). Attributes are the conventions' ``gen_ai.*`` ones
(latest experimental: ``gen_ai.provider.name``), with ``agentorch.*`` for what they do not
name (the gateway's route, deployment, attempt, retry and circuit decisions).

Content (messages, system instructions, tool arguments and results) goes on a span only with
``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true``, scrubbed of credentials and cut
to ``CONTENT_CHARS``; credentials and headers never do.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from shared import telemetry
from shared.redact import redact

CONTENT_CHARS = 16 * 1024
"""The most of one content attribute kept (a model's input can be megabytes)."""
PROVIDERS = {"anthropic": "anthropic", "bedrock": "aws.bedrock", "local": "agentorch.local"}
"""``gen_ai.provider.name`` for each of the gateway's providers (the conventions' names)."""
REQUEST_PARAMETERS = {
    "max_tokens": "gen_ai.request.max_tokens",
    "temperature": "gen_ai.request.temperature",
    "top_p": "gen_ai.request.top_p",
    "top_k": "gen_ai.request.top_k",
}


def provider_name(provider: str | None) -> str | None:
    return PROVIDERS.get(provider, provider) if provider else None


def chat_request(
    model: str, body: Mapping[str, Any], provider: str | None = None
) -> dict[str, Any]:
    """A ``chat`` span's attributes from a Messages API request body."""
    attributes: dict[str, Any] = {
        "gen_ai.operation.name": "chat",
        "gen_ai.request.model": model,
    }
    if provider:
        attributes["gen_ai.provider.name"] = provider_name(provider)
    for key, name in REQUEST_PARAMETERS.items():
        value = body.get(key)
        if isinstance(value, int | float) and not isinstance(value, bool):
            attributes[name] = value
    return attributes


def chat_response(span: telemetry.Span, message: Mapping[str, Any]) -> None:
    """A Messages API answer (a ``message``) on its ``chat`` span: id, model, finish reason,
    usage."""
    usage = message.get("usage")
    usage = usage if isinstance(usage, Mapping) else {}
    stop = message.get("stop_reason")
    span.update(
        {
            "gen_ai.response.id": _text(message.get("id")),
            "gen_ai.response.model": _text(message.get("model")),
            "gen_ai.response.finish_reasons": [stop] if isinstance(stop, str) else None,
            "gen_ai.usage.input_tokens": _count(usage.get("input_tokens")),
            "gen_ai.usage.output_tokens": _count(usage.get("output_tokens")),
            "gen_ai.usage.cache_read.input_tokens": _count(usage.get("cache_read_input_tokens")),
            "gen_ai.usage.cache_creation.input_tokens": _count(
                usage.get("cache_creation_input_tokens")
            ),
        }
    )


def usage_of(message: Mapping[str, Any]) -> tuple[int | None, int | None]:
    """A Messages API answer's input and output tokens, when it says."""
    usage = message.get("usage")
    if not isinstance(usage, Mapping):
        return None, None
    return _count(usage.get("input_tokens")), _count(usage.get("output_tokens"))


def record_content(span: telemetry.Span, attributes: Mapping[str, Any]) -> None:
    """Content attributes (``gen_ai.input.messages``, ``gen_ai.tool.call.result``...), only when
    content capture is on: each as JSON, scrubbed, cut to ``CONTENT_CHARS``."""
    if not span.recording or not telemetry.capture_content():
        return
    for key, value in attributes.items():
        if value is None:
            continue
        text = value if isinstance(value, str) else json.dumps(value, default=str)
        if len(text) > CONTENT_CHARS:
            text = text[:CONTENT_CHARS] + f"... (cut: {len(text)} characters)"
        span.set(key, redact(text))


def _count(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def _text(value: Any) -> str | None:
    return value[:256] if isinstance(value, str) and value else None
