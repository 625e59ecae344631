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

import time
import uuid
from typing import TYPE_CHECKING

from functions.gateway.openai.responses_input import translate_request
from functions.gateway.openai.responses_output import response_object
from functions.gateway.openai.responses_stream import response_events
from functions.gateway.openai.translate import upstream_message
from shared.http import SSE_CONTENT_TYPE, Call, Reply

if TYPE_CHECKING:
    from functions.gateway.service import GatewayService


class ResponsesApi:
    """The ``/v1/responses`` route of one ``GatewayService``."""

    def __init__(self, service: GatewayService) -> None:
        self.service = service

    async def create(self, call: Call) -> Reply:
        with self.service.errors_with_request_id(call):
            return await self._create(call)

    async def _create(self, call: Call) -> Reply:
        service = self.service
        service.authenticate(call)
        request = translate_request(await service.payload(call), service.providers_of)
        body = request.messages_body
        if request.stream:
            chunks, headers = await service.stream(call, body)
            events = response_events(chunks, request, new_response_id(), int(time.time()))
            return Reply(events, headers=headers, content_type=SSE_CONTENT_TYPE)
        raw, headers = await service.complete(call, body)
        message = upstream_message(raw)
        answer = response_object(message, request, new_response_id(), int(time.time()))
        return Reply(answer, headers=headers)


def new_response_id() -> str:
    return "resp_" + uuid.uuid4().hex
