"""OpenAI's error shape, ``{"error": {"message", "type", "param", "code"}}``, for the gateway's
errors on its OpenAI-compatible routes.

The status stays the one the error class fixes, so that an OpenAI SDK raises its own typed
error (400 ``BadRequestError``, 401 ``AuthenticationError``, 404 ``NotFoundError``, 429
``RateLimitError``, 5xx ``InternalServerError``); ``type`` and ``code`` are the values OpenAI
uses where it has one (``invalid_api_key``, ``model_not_found``, ``rate_limit_exceeded``).
"""

from __future__ import annotations

from typing import Any

from shared.errors import BadRequest, ServiceError
from shared.http import Reply

_CODES = {401: "invalid_api_key", 404: "model_not_found", 429: "rate_limit_exceeded"}


class InvalidParam(BadRequest):
    """A request field the endpoint cannot take as given; ``param`` names it
    (``messages[2].tool_calls[0].function.arguments``), as OpenAI's errors do, and ``code``
    says how where OpenAI does (``unsupported_parameter``)."""

    def __init__(self, param: str, problem: str, code: str | None = None) -> None:
        super().__init__(f"{param}: {problem}")
        self.param = param
        self.code = code


def error_body(exc: ServiceError) -> dict[str, Any]:
    status = exc.status_code
    if status >= 500:
        kind = "server_error"
    elif status == 429:
        kind = "rate_limit_error"
    elif status in (401, 403):
        kind = "invalid_request_error" if status == 401 else "permission_error"
    else:
        kind = "invalid_request_error"
    code = (
        getattr(exc, "code", None)
        or _CODES.get(status)
        or (exc.error_type if status >= 500 else None)
    )
    return {
        "error": {
            "message": exc.message,
            "type": kind,
            "param": getattr(exc, "param", None),
            "code": code,
        }
    }


def openai_error_reply(exc: ServiceError) -> Reply:
    return Reply(error_body(exc), status=exc.status_code, headers=exc.response_headers())
