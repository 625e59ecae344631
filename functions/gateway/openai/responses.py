"""``POST /v1/responses``: OpenAI's Responses API over the gateway's one router.

The request is translated to an Anthropic Messages request (``responses_input``), sent through
the same router as ``/v1/messages`` (routes, aliases, retries, fallback, circuits, the local
model), and the answer translated back: a Response object, or with ``stream: true`` the
Responses event sequence (``responses_stream``). Errors answer in OpenAI's shape
``{"error": {"message", "type", "param", "code"}}`` so the OpenAI SDKs raise their own typed
errors. Stateless: nothing is stored, so ``previous_response_id`` and ``store: true`` are
refused (``responses_input``).
"""

from __future__ import annotations

import json
import time
import uuid
from typing import TYPE_CHECKING, Any

from functions.gateway.bodies import request_payload
from functions.gateway.openai.responses_input import translate_request
from functions.gateway.openai.responses_output import response_object
from functions.gateway.openai.responses_stream import response_events
from shared.errors import BadGateway, ServiceError
from shared.http import SSE_CONTENT_TYPE, Call, Reply

if TYPE_CHECKING:
    from functions.gateway.service import GatewayService

FORWARDED = ("user-agent",)
"""The caller's headers a provider may pass on upstream (no Anthropic header comes from an
OpenAI client)."""
_CODES = {401: "invalid_api_key", 404: "model_not_found", 429: "rate_limit_exceeded"}
"""OpenAI's ``error.code`` for the statuses its clients tell apart by code."""


def openai_error(exc: ServiceError) -> dict[str, Any]:
    """``exc`` in OpenAI's error shape."""
    return {
        "error": {
            "message": exc.message,
            "type": exc.error_type,
            "param": getattr(exc, "param", None),
            "code": getattr(exc, "code", None) or _CODES.get(exc.status_code),
        }
    }


class ResponsesApi:
    """The ``/v1/responses`` route of one ``GatewayService``."""

    def __init__(self, service: GatewayService) -> None:
        self.service = service

    async def create(self, call: Call) -> Reply:
        try:
            return await self._create(call)
        except ServiceError as exc:
            headers = {"request-id": call.request_id, **exc.response_headers()}
            return Reply(openai_error(exc), status=exc.status_code, headers=headers)

    async def _create(self, call: Call) -> Reply:
        service = self.service
        service.authenticate(call)
        payload = await request_payload(call.headers, call.body, service.config.max_body_bytes)
        request = translate_request(payload)
        forwarded = {name: call.headers[name] for name in FORWARDED if call.headers.get(name)}
        body = request.messages_body
        if request.stream:
            chunks, outcome = await service.router.stream(
                request.model, {**body, "stream": True}, forwarded
            )
            headers = {
                "request-id": call.request_id,
                **outcome.headers(),
                "cache-control": "no-cache",
            }
            events = response_events(chunks, request, new_response_id(), int(time.time()))
            return Reply(events, headers=headers, content_type=SSE_CONTENT_TYPE)
        raw, outcome = await service.router.complete(request.model, body, forwarded)
        message = _message_of(raw)
        answer = response_object(message, request, new_response_id(), int(time.time()))
        return Reply(answer, headers={"request-id": call.request_id, **outcome.headers()})


def new_response_id() -> str:
    return "resp_" + uuid.uuid4().hex


def _message_of(raw: bytes) -> dict[str, Any]:
    try:
        message = json.loads(raw)
    except ValueError as exc:
        raise BadGateway(f"the provider's answer is not JSON: {exc}") from exc
    if not isinstance(message, dict) or not isinstance(message.get("content"), list):
        raise BadGateway("the provider's answer is not an Anthropic message")
    return message
