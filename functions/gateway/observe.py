"""What the gateway tells about each model call: spans (the GenAI conventions) and metrics.

A call through the gateway is its edge's server span (``POST /v1/messages``), which says how
the route went (``agentorch.gateway.route``, attempts, fallbacks, the provider that answered)
and holds one ``chat {model}`` client span per attempt at a deployment: each a model call, with
its provider, request and response model, usage and finish reason when it answered, else its
status, ``error.type``, whether it is retryable and the circuit's state. Events on the server
span say what the gateway did after each failed attempt (retry, fall back or give up, and the
wait), which deployments it skipped for an open circuit, and each fallback. One span per model
call, no more: every span is paid for on each request (bench/RESULTS.md, "Tracing").

The same calls feed ``gen_ai.client.token.usage`` and ``gen_ai.client.operation.duration``
in ``/metrics``.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from functions.gateway import metrics
from functions.gateway.config import Deployment
from shared import telemetry
from shared.errors import ServiceError, UpstreamError
from shared.telemetry import genai


def attempt_attributes(deployment: Deployment, number: int) -> dict[str, Any]:
    """One attempt's ``chat`` span: the request part, which deployment, which attempt."""
    return {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": genai.provider_name(deployment.provider),
        "gen_ai.request.model": deployment.model,
        "agentorch.gateway.deployment": deployment.name,
        "agentorch.gateway.attempt": number,
    }


def attempt_answered(answer: bytes) -> None:
    """A whole answer on the attempt's span (the current one): response model, usage..."""
    span = telemetry.current_span()
    if span.recording:
        genai.chat_response(span, _message(answer))


def attempt_failed(span: telemetry.Span, error: UpstreamError, retry: bool, circuit: str) -> None:
    """What went wrong, whether the deployment may be tried again, the circuit's state (what
    the gateway then did is the ``attempt_failed`` event on the server span)."""
    span.update(
        {
            "http.response.status_code": error.upstream_status,
            "agentorch.gateway.retryable": retry,
            "agentorch.gateway.falls_back": error.falls_back,
            "agentorch.gateway.circuit": circuit,
        }
    )
    span.fail(type(error).__name__)


class Observed:
    """One model call being served: ``answered`` or ``failed`` says how it ended."""

    def __init__(self, span: telemetry.Span, model: str, body: Mapping[str, Any]) -> None:
        self.span = span
        self.model = model
        self.started = time.perf_counter()
        if span.recording:
            span.set("gen_ai.request.model", model)
            genai.record_content(
                span,
                {
                    "gen_ai.system_instructions": body.get("system"),
                    "gen_ai.input.messages": body.get("messages"),
                },
            )

    def answered(self, answer: bytes, headers: Mapping[str, str]) -> None:
        """A whole Messages API answer (JSON bytes) and the gateway's ``x-gateway-*``."""
        message = _message(answer)
        self._measured(headers, *genai.usage_of(message))
        if self.span.recording:
            self.span.update(_outcome(headers))
            output = [{"role": "assistant", "content": message.get("content")}]
            genai.record_content(self.span, {"gen_ai.output.messages": output})

    def streaming(
        self, chunks: AsyncIterator[bytes], headers: Mapping[str, str]
    ) -> AsyncIterator[bytes]:
        """A stream's first event is in: the span says who answers; ``chunks`` (whole events)
        are passed on, and their usage and the whole stream's time counted when it ends."""
        if self.span.recording:
            self.span.update(_outcome(headers))
        return self._metered(chunks, headers)

    async def _metered(
        self, chunks: AsyncIterator[bytes], headers: Mapping[str, str]
    ) -> AsyncIterator[bytes]:
        usage: dict[str, int] = {}
        try:
            async for chunk in chunks:
                if b'"usage"' in chunk:
                    _stream_usage(chunk, usage)
                yield chunk
        finally:
            close = getattr(chunks, "aclose", None)
            if close is not None:
                await close()  # a client gone mid-stream: the upstream connection goes too
            self._measured(headers, usage.get("input"), usage.get("output"))

    def _measured(
        self, headers: Mapping[str, str], input_tokens: int | None, output_tokens: int | None
    ) -> None:
        route, provider = headers.get("x-gateway-route", ""), headers.get("x-gateway-provider", "")
        labels = (route, provider, self.model)
        if input_tokens is not None:
            metrics.TOKEN_USAGE.labels(*labels, "input").observe(input_tokens)
        if output_tokens is not None:
            metrics.TOKEN_USAGE.labels(*labels, "output").observe(output_tokens)
        metrics.OPERATION_DURATION.labels(*labels, "").observe(time.perf_counter() - self.started)

    def failed(self, error: ServiceError) -> None:
        route = error.headers.get("x-gateway-route", "")
        provider = error.headers.get("x-gateway-provider", "")
        model = self.model if route else ""  # an unknown model: no label of the caller's text
        kind = type(error).__name__
        seconds = time.perf_counter() - self.started
        metrics.OPERATION_DURATION.labels(route, provider, model, kind).observe(seconds)
        if self.span.recording:
            self.span.update(_outcome(error.headers))


@contextmanager
def observed(model: str, body: Mapping[str, Any]) -> Iterator[Observed]:
    """One call through the gateway: its metrics, and its outcome on the server span."""
    call = Observed(telemetry.current_span(), model, body)
    try:
        yield call
    except ServiceError as exc:
        call.failed(exc)
        raise


def _stream_usage(chunk: bytes, usage: dict[str, int]) -> None:
    """Anthropic's stream says its usage in ``message_start`` (input) and ``message_delta``
    (output, cumulative): keep the latest of each."""
    for line in chunk.split(b"\n"):
        if not line.startswith(b"data:") or b'"usage"' not in line:
            continue
        event = _message(line[5:])
        found = event.get("usage") or (event.get("message") or {}).get("usage")
        if not isinstance(found, dict):
            continue
        for kind in ("input", "output"):
            value = found.get(f"{kind}_tokens")
            if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
                usage[kind] = value


def _message(answer: bytes) -> dict[str, Any]:
    try:
        message = json.loads(answer)
    except ValueError:
        return {}
    return message if isinstance(message, dict) else {}


def _outcome(headers: Mapping[str, str]) -> dict[str, Any]:
    """The route's outcome, from the answer's ``x-gateway-*`` headers."""
    provider = headers.get("x-gateway-provider")
    return {
        "gen_ai.provider.name": genai.provider_name(provider) if provider != "none" else None,
        "agentorch.gateway.route": headers.get("x-gateway-route"),
        "agentorch.gateway.deployment": headers.get("x-gateway-deployment"),
        "agentorch.gateway.attempts": _number(headers.get("x-gateway-attempts")),
        "agentorch.gateway.fallbacks": _number(headers.get("x-gateway-fallbacks")),
    }


def _number(value: str | None) -> int | None:
    return int(value) if value is not None and value.isdigit() else None
