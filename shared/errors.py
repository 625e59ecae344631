"""The one exception tree every function raises, and its JSON shape.

    AgentOrchestratorError
    ├── ConfigError                   start-up only: a bad config file or variable
    └── ServiceError                  500 api_error         (answered to a request)
        ├── BadRequest                400 invalid_request_error
        │   ├── NotFound              404 not_found_error
        │   ├── MethodNotAllowed      405 invalid_request_error
        │   ├── RequestTimeout        408 request_timeout    (the client was too slow)
        │   ├── PayloadTooLarge       413 request_too_large
        │   ├── HeadersTooLarge       431 request_too_large
        │   ├── UnsupportedMedia      415 invalid_request_error
        │   ├── Conflict              409 conflict_error     (busy: e.g. a session's task)
        │   └── InvalidArguments      400 invalid_request_error  (orchestrator: bad tool input)
        ├── Unauthorized              401 authentication_error
        ├── Forbidden                 403 permission_error
        ├── NotConfigured             503 not_configured
        ├── ModelCallError, AgentCallError  502 api_error  (the orchestrator's: a call that
        │                                   failed for good, after its retries)
        └── UpstreamError             502 api_error          (a dependency failed)
            ├── UpstreamRejected      400 invalid_request_error  the dependency refused the
            │   ├── UpstreamNotFound      404 not_found_error       request itself: retrying
            │   ├── UpstreamTooLarge      413 request_too_large     cannot help
            │   └── UpstreamForbidden     403 permission_error
            ├── DependencyRefused     502 api_error   it will not serve us (quota, wrong URL)
            │   └── CredentialsRefused    502 api_error   it refused *our* credentials (401)
            ├── BadGateway            502 api_error   it answered with a failure or nonsense
            ├── RateLimited           429 rate_limit_error
            ├── Overloaded            529 overloaded_error
            ├── UpstreamUnavailable   503 api_error   it could not be reached or used
            │   ├── CircuitOpen           503 api_error   not called: its circuit is open
            │   ├── StoreUnavailable      503 api_error   the shared store (STORE_URL) failed
            │   └── TransportError        503 api_error   no connection, or its answer broke
            │       └── AnswerTooLarge        503 api_error   off or was not HTTP; too large
            └── UpstreamTimeout       504 timeout_error
                ├── ConnectTimeout        504 timeout_error   no connection: never sent
                └── SentTimeout           504 timeout_error   sent, but no answer in time

Each class says what happened and carries a fixed status; ``error_for_status`` maps a
dependency's status to its class. Every error renders as Anthropic's shape
``{"type": "error", "error": {"type", "message"}}`` so SDK clients understand it.
``retryable``: another attempt at the same dependency could succeed. ``falls_back``: another
dependency (the next deployment of a route) could answer though this one cannot.
``should_retry = False``: the answer says ``x-should-retry: false`` (the Anthropic SDKs and
Claude Code honour it), because the same request cannot succeed if the client sends it again.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pydantic is imported only where it validates (start-up speed)
    from pydantic import ValidationError

SHOULD_RETRY = "x-should-retry"
"""The header that tells Anthropic's SDKs (and Claude Code) whether to retry an answer."""


class AgentOrchestratorError(Exception):
    """Root of every error this project raises on purpose."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ConfigError(AgentOrchestratorError):
    """A configuration file or variable is wrong; raised at start-up, never per request."""


class ServiceError(AgentOrchestratorError):
    """Base of every error a function answers with; the class fixes status and error type."""

    status_code = 500
    error_type = "api_error"
    retryable = False
    falls_back = False
    should_retry: bool | None = None
    """False: answered with ``x-should-retry: false``; None: the client's SDK decides."""

    def __init__(self, message: str, *, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.headers: dict[str, str] = dict(headers or {})

    def body(self) -> dict[str, Any]:
        return {"type": "error", "error": {"type": self.error_type, "message": self.message}}

    def response_headers(self) -> dict[str, str]:
        """The headers an answer with this error carries."""
        headers = dict(self.headers)
        if self.should_retry is False:
            headers[SHOULD_RETRY] = "false"
        return headers


class BadRequest(ServiceError):
    status_code = 400
    error_type = "invalid_request_error"
    should_retry: bool | None = False


class NotFound(BadRequest):
    status_code = 404
    error_type = "not_found_error"


class MethodNotAllowed(BadRequest):
    status_code = 405


class RequestTimeout(BadRequest):
    status_code = 408
    error_type = "request_timeout"
    should_retry: bool | None = (
        None  # the client was too slow this time; sent again it may arrive in time
    )


class PayloadTooLarge(BadRequest):
    status_code = 413
    error_type = "request_too_large"


class HeadersTooLarge(BadRequest):
    status_code = 431
    error_type = "request_too_large"


class UnsupportedMedia(BadRequest):
    status_code = 415


class Conflict(BadRequest):
    """What the request needs is held by another one under way (a session's task): sent
    again once that one ends, it can succeed."""

    status_code = 409
    error_type = "conflict_error"
    should_retry: bool | None = None


class Unauthorized(ServiceError):
    status_code = 401
    error_type = "authentication_error"
    should_retry = False


class Forbidden(ServiceError):
    status_code = 403
    error_type = "permission_error"
    should_retry = False


class NotConfigured(ServiceError):
    status_code = 503
    error_type = "not_configured"
    should_retry = False  # until an operator configures it


class UpstreamError(ServiceError):
    """A dependency (model provider, agent, API) failed; ``upstream_status`` is what it said."""

    status_code = 502

    def __init__(
        self,
        message: str,
        *,
        upstream_status: int | None = None,
        retry_after: float | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message, headers=headers)
        self.upstream_status = upstream_status
        self.retry_after = retry_after

    def response_headers(self) -> dict[str, str]:
        headers = super().response_headers()
        if self.retry_after is not None and self.retryable:
            # Passed on with the final 429/503/529 so that the caller's client waits as asked.
            headers["retry-after"] = retry_after_header(self.retry_after)
        return headers


class UpstreamRejected(UpstreamError):
    """The dependency refused the request itself (400, 404, 413...): retrying cannot help."""

    status_code = 400
    error_type = "invalid_request_error"
    should_retry = False


class UpstreamNotFound(UpstreamRejected):
    status_code = 404
    error_type = "not_found_error"


class UpstreamTooLarge(UpstreamRejected):
    status_code = 413
    error_type = "request_too_large"


class UpstreamForbidden(UpstreamRejected):
    """The dependency refused this request (a beta or a model its key may not use): the
    caller's problem, and another request may well pass, so the dependency stays in use."""

    status_code = 403
    error_type = "permission_error"


class DependencyRefused(UpstreamError):
    """The dependency will not serve this service, for reasons the caller cannot fix (its
    plan's quota is spent, the configured URL is wrong): waiting will not help."""


class CredentialsRefused(DependencyRefused):
    """The dependency refused this service's own key (401): the operator's problem, not the
    caller's — so never answered as 401, which a client would read as its own key. Another
    deployment (other credentials) may still answer."""

    falls_back = True


class BadGateway(UpstreamError):
    """The dependency answered, but with a failure (5xx) or with nonsense."""

    retryable = True
    falls_back = True


class RateLimited(UpstreamError):
    status_code = 429
    error_type = "rate_limit_error"
    retryable = True
    falls_back = True


class Overloaded(UpstreamError):
    status_code = 529
    error_type = "overloaded_error"
    retryable = True
    falls_back = True


class UpstreamUnavailable(UpstreamError):
    """The dependency could not be reached or used at all (connection refused, circuit open,
    its own capacity exhausted)."""

    status_code = 503
    retryable = True
    falls_back = True


class CircuitOpen(UpstreamUnavailable):
    """The dependency was not called: it kept failing, and its circuit stays open until the
    cool-down that ``retry_after`` gives. Sending the request again sooner cannot help."""

    should_retry = False


class StoreUnavailable(UpstreamUnavailable):
    """The shared store (``shared.store``: SQLite, Redis) failed or did not answer in time:
    what needs it is refused rather than done without it."""


class TransportError(UpstreamUnavailable):
    """The outbound transport failed (``shared.transport``): no connection (refused, DNS, TLS,
    a proxy's refusal), or an answer that broke off or was not HTTP."""


class AnswerTooLarge(TransportError):
    """The dependency's answer was larger than the caller agreed to read."""


class UpstreamTimeout(UpstreamError):
    status_code = 504
    error_type = "timeout_error"
    retryable = True
    falls_back = True


def validation_problems(exc: ValidationError, top: str) -> list[tuple[str, str]]:
    """What a pydantic ``ValidationError`` found, as (dotted location, problem) pairs; ``top``
    stands for the location of a problem with the whole value."""
    return [(".".join(str(p) for p in err["loc"]) or top, err["msg"]) for err in exc.errors()]


def validation_message(exc: ValidationError) -> str:
    """A request's problems, ``field.path: problem`` each, so the caller knows what to fix."""
    problems = validation_problems(exc, "(input)")
    return "invalid input: " + "; ".join(f"{where}: {problem}" for where, problem in problems)


class ConnectTimeout(UpstreamTimeout):
    """No connection within the time allowed for connecting: the request was never sent."""


class SentTimeout(UpstreamTimeout):
    """The request reached the dependency, which did not answer in time: it may still finish,
    and bill, the work. The gateway retries and fails over like any timeout unless the route's
    ``retry_sent_timeouts`` is off."""


def retry_after_header(seconds: float) -> str:
    """The ``retry-after`` value for a wait of ``seconds``: whole seconds, at least 1."""
    return str(max(1, math.ceil(seconds)))


_REFUSALS: dict[int, type[UpstreamRejected]] = {
    403: UpstreamForbidden,
    404: UpstreamNotFound,
    413: UpstreamTooLarge,
}


def error_for_status(
    status: int, message: str, *, retry_after: float | None = None
) -> UpstreamError:
    """Map a dependency's HTTP status to the error class that says what happened."""
    kind: type[UpstreamError]
    if status == 429:
        kind = RateLimited
    elif status == 529:
        kind = Overloaded
    elif status in (408, 504):
        kind = UpstreamTimeout
    elif status >= 500:  # 503 included: the dependency answered, with a failure
        kind = BadGateway
    elif status == 401:
        kind = CredentialsRefused
    else:
        kind = _REFUSALS.get(status, UpstreamRejected)
    return kind(message, upstream_status=status, retry_after=retry_after)


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
