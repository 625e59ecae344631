"""The exception tree: status mapping for dependencies, retry-after parsing, the JSON shape."""

from __future__ import annotations

import httpx
import pytest

from shared.errors import (
    BadRequest,
    Overloaded,
    RateLimited,
    ServiceError,
    UpstreamError,
    UpstreamRejected,
    UpstreamTimeout,
    UpstreamUnavailable,
    parse_retry_after,
    upstream_error_for_status,
)


@pytest.mark.parametrize(
    ("upstream", "cls", "status", "error_type", "retryable"),
    [
        (400, UpstreamRejected, 400, "invalid_request_error", False),
        (401, UpstreamRejected, 401, "authentication_error", False),
        (403, UpstreamRejected, 403, "permission_error", False),
        (429, RateLimited, 429, "rate_limit_error", True),
        (500, UpstreamUnavailable, 502, "api_error", True),
        (503, UpstreamUnavailable, 502, "api_error", True),
        (529, Overloaded, 529, "overloaded_error", True),
        (504, UpstreamTimeout, 504, "timeout_error", True),
        (408, UpstreamTimeout, 504, "timeout_error", True),
    ],
)
def test_upstream_error_for_status(
    upstream: int, cls: type[UpstreamError], status: int, error_type: str, retryable: bool
) -> None:
    error = upstream_error_for_status(upstream, "provider said no", retry_after=1.5)

    assert type(error) is cls
    assert error.upstream_status == upstream
    assert (error.status_code, error.error_type, error.retryable) == (status, error_type, retryable)
    assert error.body() == {
        "type": "error",
        "error": {"type": error_type, "message": "provider said no"},
    }


def test_retryable_errors_keep_retry_after() -> None:
    assert upstream_error_for_status(429, "slow down", retry_after=2.0).retry_after == 2.0
    assert upstream_error_for_status(529, "busy", retry_after=0.5).retry_after == 0.5


def test_service_error_overrides_and_headers() -> None:
    error = BadRequest("bad", status_code=422, headers={"x-why": "because"})

    assert (error.status_code, error.error_type, error.headers) == (
        422,
        "invalid_request_error",
        {"x-why": "because"},
    )
    assert ServiceError("boom").status_code == 500  # class defaults are untouched


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
