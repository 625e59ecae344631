"""The model seam: one ``Model`` protocol, and the gateway client that implements it.

Model calls go to the gateway's ``POST /v1/messages`` (Anthropic Messages API) over the wire
with ``shared.aio.AsyncHttp``, not through the ``anthropic`` SDK: the orchestrator needs the
gateway's response headers (``x-gateway-provider``) and nothing the SDK adds, and the SDK
would cost start-up time and per-call work (bench/RESULTS.md, "orchestrator").

The gateway owns model retries and fallback. This client retries only a gateway that could
not be reached or answered 5xx after all that, a bounded number of times, and never when the
gateway says ``x-should-retry: false``.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from functions.orchestrator.model_stream import MessageAssembler, OnText, StreamBroke
from shared.aio import AsyncHttp
from shared.errors import (
    BadGateway,
    ServiceError,
    UpstreamError,
    error_for_status,
    parse_retry_after,
)
from shared.http import ANTHROPIC_VERSION, SSE_MEDIA_TYPE
from shared.resilience import (
    AttemptFailed,
    Deadline,
    GaveUp,
    RetryPolicy,
    RetrySettings,
    Sleep,
    retrying,
)
from shared.sse import EventReader
from shared.transport import FAILURES, upstream_failure


@dataclass(frozen=True)
class ModelReply:
    content: list[dict[str, Any]]
    """The assistant's content blocks (``text``, ``tool_use``...)."""
    stop_reason: str
    input_tokens: int
    output_tokens: int
    provider: str | None = None
    attempts: int = 1
    model: str | None = None
    """The model that answered, as the message says (``gen_ai.response.model``)."""


class ModelCallError(ServiceError):
    """A model call failed for good; ``attempts`` were made. Not an ``UpstreamError``: it is
    the verdict after the retries, never something to retry."""

    status_code = 502

    def __init__(self, error: UpstreamError, attempts: int) -> None:
        super().__init__(error.message)
        self.error = error
        self.attempts = attempts


MAX_ERROR_BYTES = 64 * 1024
"""Of an error answer to a stream request, at most this much is read (for its message)."""


class Model(Protocol):
    route: str

    async def create(self, request: dict[str, Any], *, timeout_s: float) -> ModelReply:
        """One Messages API call (``model`` is filled in); raises ``ModelCallError``."""
        ...


@runtime_checkable
class StreamingModel(Model, Protocol):
    """A model whose text can be passed on as it is generated (a streamed run's
    ``text_delta`` events)."""

    async def stream(
        self, request: dict[str, Any], *, timeout_s: float, on_text: OnText
    ) -> ModelReply:
        """As ``create``, with each piece of text given to ``on_text`` as it arrives."""
        ...


class GatewayModel:
    """``Model`` over HTTP to the model gateway."""

    def __init__(
        self,
        http: AsyncHttp,
        url: str,
        route: str,
        retry: RetrySettings,
        *,
        api_key: str | None = None,
        sleep: Sleep = asyncio.sleep,
        rng: Callable[[float, float], float] = random.uniform,
    ) -> None:
        """``sleep`` and ``rng`` (the jitter between attempts) are injected so tests drive
        time."""
        self.route = route
        self._http = http
        self._endpoint = url.rstrip("/") + "/v1/messages"
        self._policy = RetryPolicy(retry, rng)
        self._sleep = sleep
        self._headers = {"anthropic-version": ANTHROPIC_VERSION}
        if api_key:
            self._headers["x-api-key"] = api_key

    async def create(self, request: dict[str, Any], *, timeout_s: float) -> ModelReply:
        body = {**request, "model": self.route}
        deadline = Deadline(timeout_s, asyncio.get_running_loop().time)

        async def attempt(number: int) -> ModelReply:
            return await self._once(body, max(deadline.remaining(), 0.001), number)

        try:
            return await retrying(attempt, self._policy, sleep=self._sleep, deadline=deadline)
        except GaveUp as exc:
            raise ModelCallError(exc.error, exc.attempts) from exc.error

    async def stream(
        self, request: dict[str, Any], *, timeout_s: float, on_text: OnText
    ) -> ModelReply:
        body = {**request, "model": self.route, "stream": True}
        deadline = Deadline(timeout_s, asyncio.get_running_loop().time)

        async def attempt(number: int) -> ModelReply:
            left = max(deadline.remaining(), 0.001)
            return await self._streamed(body, left, number, on_text)

        try:
            return await retrying(attempt, self._policy, sleep=self._sleep, deadline=deadline)
        except GaveUp as exc:
            raise ModelCallError(exc.error, exc.attempts) from exc.error

    async def _streamed(
        self, body: dict[str, Any], timeout_s: float, attempt: int, on_text: OnText
    ) -> ModelReply:
        service = "the model gateway"
        response = await self._http.open_stream(
            "POST",
            self._endpoint,
            body=body,
            headers=self._headers,
            timeout_s=timeout_s,
            service=service,
        )
        try:
            if response.status >= 400:
                raw = await response.read(MAX_ERROR_BYTES)
                raise _status_error(response.status, response.headers, _json_or_none(raw))
            if not response.headers.get("content-type", "").startswith(SSE_MEDIA_TYPE):
                # A gateway (or a proxy before it) that answered the whole message at once:
                # its text is passed on whole.
                data = _json_or_none(await response.read())
                reply = _reply(data, response.headers, attempt)
                text = "".join(b.get("text", "") for b in reply.content if b.get("type") == "text")
                if text:
                    await on_text(text)
                return reply
            message = MessageAssembler(on_text)
            reader = EventReader()
            async with asyncio.timeout(timeout_s):
                async for chunk in response.chunks():
                    for name, data in reader.feed(chunk):
                        await message.feed(name, data)
            message.check_finished()
        except StreamBroke as exc:
            raise AttemptFailed(exc.error, retry=exc.error.retryable and not exc.passed_on) from exc
        except FAILURES as exc:
            raise upstream_failure(service, exc, timeout_s) from exc
        finally:
            response.close()
        return ModelReply(
            content=message.content,
            stop_reason=message.stop_reason,
            input_tokens=message.input_tokens,
            output_tokens=message.output_tokens,
            provider=response.headers.get("x-gateway-provider"),
            attempts=attempt,
        )

    async def _once(self, body: dict[str, Any], timeout_s: float, attempt: int) -> ModelReply:
        answer = await self._http.request_json(
            "POST",
            self._endpoint,
            body=body,
            headers=self._headers,
            timeout_s=timeout_s,
            service="the model gateway",
        )
        if answer.status >= 400:
            raise _status_error(answer.status, answer.headers, answer.data)
        return _reply(answer.data, answer.headers, attempt)


def _status_error(status: int, headers: Mapping[str, str], data: Any) -> AttemptFailed:
    message = f"the model gateway answered {status}"
    if isinstance(data, dict) and isinstance(data.get("error"), dict):
        message += f": {data['error'].get('message', '')}"
    if status < 500:
        # The gateway already retried what 429/529 allow; what comes back is its verdict.
        return AttemptFailed(error_for_status(status, message), retry=False)
    error = error_for_status(status, message, retry_after=parse_retry_after(headers))
    if not error.retryable:
        error = BadGateway(message, upstream_status=status)
    should_retry = (headers.get("x-should-retry") or "").lower() != "false"
    return AttemptFailed(error, retry=should_retry)


def _reply(data: Any, headers: Mapping[str, str], attempt: int) -> ModelReply:
    if not isinstance(data, dict) or not isinstance(data.get("content"), list):
        raise BadGateway("the model gateway answered something that is not a message")
    usage: dict[str, Any] = data["usage"] if isinstance(data.get("usage"), dict) else {}
    return ModelReply(
        content=[b for b in data["content"] if isinstance(b, dict)],
        stop_reason=str(data.get("stop_reason") or "end_turn"),
        input_tokens=_count(usage.get("input_tokens")),
        output_tokens=_count(usage.get("output_tokens")),
        provider=headers.get("x-gateway-provider"),
        attempts=attempt,
        model=data["model"] if isinstance(data.get("model"), str) else None,
    )


def _json_or_none(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0
