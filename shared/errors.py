"""The one exception tree every function raises, and its JSON shape.

    ServiceError                      500 api_error
    ├── BadRequest                    400 invalid_request_error
    │   ├── NotFound                  404 not_found_error
    │   ├── MethodNotAllowed          405 invalid_request_error
    │   └── PayloadTooLarge           413 request_too_large
    ├── Unauthorized                  401 authentication_error
    ├── Forbidden                     403 permission_error
    ├── NotConfigured                 503 not_configured
    ├── ConfigError                   (start-up only: a bad config file or variable)
    └── UpstreamError                 502 api_error  (a dependency failed)
        ├── UpstreamRejected          the dependency refused the request (4xx it will repeat)
        ├── RateLimited               429 rate_limit_error
        ├── Overloaded                529 overloaded_error
        ├── UpstreamUnavailable       503 api_error
        └── UpstreamTimeout           504 timeout_error

Every error renders as Anthropic's shape ``{"type": "error", "error": {"type", "message"}}``
so that SDK clients understand it. ``retryable`` tells the gateway's resilience layer whether
another attempt could succeed.
"""

from __future__ import annotations

import math
from typing import Any


class ServiceError(Exception):
    """Base of every error a function answers with; carries its HTTP status and error type."""

    status_code = 500
    error_type = "api_error"
    retryable = False

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        error_type: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if status_code is not None:
            self.status_code = status_code
        if error_type is not None:
            self.error_type = error_type
        self.headers: dict[str, str] = dict(headers or {})

    def body(self) -> dict[str, Any]:
        return {"type": "error", "error": {"type": self.error_type, "message": self.message}}


class BadRequest(ServiceError):
    status_code = 400
    error_type = "invalid_request_error"


class NotFound(BadRequest):
    status_code = 404
    error_type = "not_found_error"


class MethodNotAllowed(BadRequest):
    status_code = 405


class PayloadTooLarge(BadRequest):
    status_code = 413
    error_type = "request_too_large"


class Unauthorized(ServiceError):
    status_code = 401
    error_type = "authentication_error"


class Forbidden(ServiceError):
    status_code = 403
    error_type = "permission_error"


class NotConfigured(ServiceError):
    status_code = 503
    error_type = "not_configured"


class ConfigError(ServiceError):
    """A configuration file or variable is wrong; raised at start-up, never per request."""


class UpstreamError(ServiceError):
    """A dependency (model provider, agent, API) failed; ``upstream_status`` is what it said."""

    status_code = 502

    def __init__(
        self,
        message: str,
        *,
        upstream_status: int | None = None,
        retry_after: float | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(message, **kwargs)
        self.upstream_status = upstream_status
        self.retry_after = retry_after


class UpstreamRejected(UpstreamError):
    """The dependency refused the request itself (400/401/403/404...): retrying cannot help."""


class RateLimited(UpstreamError):
    status_code = 429
    error_type = "rate_limit_error"
    retryable = True


class Overloaded(UpstreamError):
    status_code = 529
    error_type = "overloaded_error"
    retryable = True


class UpstreamUnavailable(UpstreamError):
    status_code = 503
    retryable = True


class UpstreamTimeout(UpstreamError):
    status_code = 504
    error_type = "timeout_error"
    retryable = True


def bad_gateway(message: str, **kwargs: Any) -> UpstreamUnavailable:
    """The dependency answered, but with a failure or nonsense: 502, and worth another try.
    (``UpstreamUnavailable`` on its own, 503, is for a dependency that could not be reached or
    used at all.)"""
    return UpstreamUnavailable(message, status_code=502, **kwargs)


_ERROR_TYPE_BY_STATUS = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    529: "overloaded_error",
}


def upstream_error_for_status(
    status: int, message: str, *, retry_after: float | None = None
) -> UpstreamError:
    """Map a dependency's HTTP status to the error class the resilience layer understands."""
    # Passed on to our caller with the final 429/529, so that its client can wait as asked.
    headers = {"retry-after": f"{max(1, math.ceil(retry_after))}"} if retry_after else None
    if status in (429, 529):
        kind = RateLimited if status == 429 else Overloaded
        return kind(message, upstream_status=status, retry_after=retry_after, headers=headers)
    if status == 408 or status == 504:
        return UpstreamTimeout(message, upstream_status=status, retry_after=retry_after)
    if status >= 500:
        return bad_gateway(message, upstream_status=status, retry_after=retry_after)
    # A refusal keeps its own status so the client sees e.g. 400 with the provider's reason.
    return UpstreamRejected(
        message,
        upstream_status=status,
        status_code=status,
        error_type=_ERROR_TYPE_BY_STATUS.get(status, "invalid_request_error"),
    )


def _seconds(raw: str, per_second: float) -> float | None:
    try:
        value = float(raw) / per_second
    except ValueError:
        return None
    # "inf" and "nan" parse as floats but are no delay anyone can wait for.
    return max(0.0, value) if math.isfinite(value) else None


def parse_retry_after(headers: Any) -> float | None:
    """Seconds from ``retry-after-ms`` or ``retry-after`` (seconds form); None when absent."""
    if headers is None:
        return None
    raw_ms = headers.get("retry-after-ms")
    if raw_ms:
        seconds = _seconds(raw_ms, 1000.0)
        if seconds is not None:
            return seconds
    raw = headers.get("retry-after")
    # The HTTP-date form is rare from these APIs: None falls back to our own backoff.
    return _seconds(raw, 1.0) if raw else None
