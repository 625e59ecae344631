"""The exception tree: status mapping for dependencies, retry-after parsing, the JSON shape."""

from __future__ import annotations

import httpx
import pytest

from shared.errors import (
    AgentOrchestratorError,
    BadGateway,
    BadRequest,
    CircuitOpen,
    ConfigError,
    CredentialsRefused,
    Forbidden,
    HeadersTooLarge,
    MethodNotAllowed,
    NotConfigured,
    NotFound,
    Overloaded,
    PayloadTooLarge,
    RateLimited,
    RequestTimeout,
    ServiceError,
    Unauthorized,
    UnsupportedMedia,
    UpstreamError,
    UpstreamForbidden,
    UpstreamNotFound,
    UpstreamRejected,
    UpstreamTimeout,
    UpstreamTooLarge,
    error_for_status,
    parse_retry_after,
    retry_after_header,
)


@pytest.mark.parametrize(
    ("upstream", "cls", "status", "error_type", "retryable", "falls_back"),
    [
        (400, UpstreamRejected, 400, "invalid_request_error", False, False),
        (404, UpstreamNotFound, 404, "not_found_error", False, False),
        (413, UpstreamTooLarge, 413, "request_too_large", False, False),
        (422, UpstreamRejected, 400, "invalid_request_error", False, False),
        # The dependency refused *our* key: never a 401 the caller would read as its own.
        (401, CredentialsRefused, 502, "api_error", False, True),
        # A 403 is about the request (a beta, a model the key may not use): the caller's.
        (403, UpstreamForbidden, 403, "permission_error", False, False),
        (429, RateLimited, 429, "rate_limit_error", True, True),
        (500, BadGateway, 502, "api_error", True, True),
        (503, BadGateway, 502, "api_error", True, True),
        (529, Overloaded, 529, "overloaded_error", True, True),
        (504, UpstreamTimeout, 504, "timeout_error", True, True),
        (408, UpstreamTimeout, 504, "timeout_error", True, True),
    ],
)
def test_error_for_status(
    upstream: int,
    cls: type[UpstreamError],
    status: int,
    error_type: str,
    retryable: bool,
    falls_back: bool,
) -> None:
    error = error_for_status(upstream, "provider said no", retry_after=1.5)

    assert type(error) is cls
    assert error.upstream_status == upstream
    assert (error.status_code, error.error_type) == (status, error_type)
    assert (error.retryable, error.falls_back) == (retryable, falls_back)
    assert error.body() == {
        "type": "error",
        "error": {"type": error_type, "message": "provider said no"},
    }


def test_retryable_errors_carry_retry_after_as_a_header() -> None:
    assert error_for_status(429, "slow down", retry_after=2.0).retry_after == 2.0
    assert error_for_status(529, "busy", retry_after=0.4).response_headers() == {"retry-after": "1"}
    assert error_for_status(400, "no", retry_after=3).response_headers() == {
        "x-should-retry": "false"  # and no retry-after: no wait makes it pass
    }
    assert retry_after_header(2.2) == "3"


def test_statuses_are_fixed_by_class() -> None:
    error = BadRequest("bad", headers={"x-why": "because"})

    assert (error.status_code, error.error_type, error.headers) == (
        400,
        "invalid_request_error",
        {"x-why": "because"},
    )
    with pytest.raises(TypeError):
        BadRequest("bad", status_code=422)  # type: ignore[call-arg]
    assert ServiceError("boom").status_code == 500


@pytest.mark.parametrize(
    "refusal",
    [
        BadRequest("bad"),
        NotFound("no route"),
        MethodNotAllowed("no"),
        PayloadTooLarge("big"),
        HeadersTooLarge("big"),
        UnsupportedMedia("xml"),
        Unauthorized("no key"),
        Forbidden("not you"),
        NotConfigured("no provider"),
        UpstreamRejected("bad field"),
        UpstreamForbidden("beta not allowed"),
    ],
)
def test_the_services_own_refusals_say_not_to_retry(refusal: ServiceError) -> None:
    # Claude Code retried the gateway's own 401 ten times for two minutes without it.
    assert refusal.response_headers()["x-should-retry"] == "false"


@pytest.mark.parametrize(
    "error",
    [ServiceError("bug"), RequestTimeout("slow client"), BadGateway("500"), RateLimited("429")],
)
def test_what_may_pass_next_time_leaves_retrying_to_the_client(error: ServiceError) -> None:
    assert "x-should-retry" not in error.response_headers()


def test_an_open_circuit_says_when_to_come_back_and_not_to_retry_sooner() -> None:
    headers = CircuitOpen("anthropic:x: circuit open", retry_after=29.2).response_headers()

    assert headers == {"x-should-retry": "false", "retry-after": "30"}


def test_config_errors_are_not_request_errors() -> None:
    assert issubclass(ConfigError, AgentOrchestratorError)
    assert not issubclass(ConfigError, ServiceError)


@pytest.mark.parametrize(
    ("headers", "seconds"),
    [
        ({"retry-after": "3"}, 3.0),
        ({"retry-after": "0.25"}, 0.25),
        ({"retry-after-ms": "1500"}, 1.5),
        ({"retry-after-ms": "1500", "retry-after": "9"}, 1.5),  # the precise one wins
        ({"retry-after-ms": "soon", "retry-after": "9"}, 9.0),
        ({"retry-after": "-4"}, 0.0),
        ({}, None),
        (None, None),
    ],
)
def test_parse_retry_after(headers: dict[str, str] | None, seconds: float | None) -> None:
    assert parse_retry_after(headers) == seconds


def test_parse_retry_after_is_case_insensitive_on_httpx_headers() -> None:
    assert parse_retry_after(httpx.Headers({"Retry-After-Ms": "250"})) == 0.25


def test_http_date_retry_after_falls_back_to_our_backoff() -> None:
    # Documented: the HTTP-date form is rare from these APIs; None lets the policy decide.
    assert parse_retry_after({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}) is None


@pytest.mark.parametrize("garbage", ["soon", "", "1e999", "inf", "nan", "-inf", "3 seconds"])
def test_garbage_retry_after_is_ignored(garbage: str) -> None:
    assert parse_retry_after({"retry-after": garbage}) is None
    assert parse_retry_after({"retry-after-ms": garbage}) is None
