"""The Tavily search API over the outbound transport (``shared.aio.AsyncHttp``, given by the
agent that owns it): one POST /search, its answer, its failures.

Tavily's failures are mapped for the orchestrator, not passed through as they are: a refused key
is this service's misconfiguration (502, not a 401 that would blame the caller's credentials),
and a rate limit is a temporary unavailability (503 with ``retry-after``, not a 429 that would
say the caller sent too much).
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from pydantic import Field, field_validator

from shared.aio import AsyncHttp
from shared.errors import (
    BadGateway,
    CredentialsRefused,
    DependencyRefused,
    NotConfigured,
    UpstreamError,
    UpstreamRejected,
    UpstreamUnavailable,
    parse_retry_after,
)
from shared.http import JsonResponse
from shared.settings import FunctionSettings

DEFAULT_BASE_URL = "https://api.tavily.com"
DEFAULT_TIMEOUT_S = 12.0
API_KEY_VARIABLE = "TAVILY_API_KEY"
SERVICE = "Tavily"
NOT_CONFIGURED_REASON = (
    "Tavily web search is not configured: set TAVILY_API_KEY to enable this agent"
)


class TavilySettings(FunctionSettings):
    """The agent's settings, from its environment (it has no file)."""

    env = {
        API_KEY_VARIABLE: "api_key",
        "TAVILY_BASE_URL": "base_url",
        "TAVILY_TIMEOUT_S": "timeout_s",
    }
    secret = frozenset({API_KEY_VARIABLE})

    api_key: str | None = None
    """``TAVILY_API_KEY``; without it the agent answers 503 ``not_configured``."""
    base_url: str = DEFAULT_BASE_URL
    """``TAVILY_BASE_URL``: the API root, e.g. a local fake's address in tests."""
    timeout_s: float = Field(default=DEFAULT_TIMEOUT_S, gt=0, le=300)
    """``TAVILY_TIMEOUT_S``: how long one search may take before the agent answers 504."""

    @field_validator("base_url")
    @classmethod
    def _without_trailing_slash(cls, url: str) -> str:
        return url.rstrip("/")

    @property
    def configured(self) -> bool:
        return bool(self.api_key)


def api_key_from_env(environ: Mapping[str, str] | None = None) -> str | None:
    """``TAVILY_API_KEY``, or None when it is unset or blank (as ``TavilySettings.load``)."""
    env = os.environ if environ is None else environ
    return (env.get(API_KEY_VARIABLE) or "").strip() or None


@dataclass(frozen=True)
class SearchQuery:
    query: str
    search_depth: str = "basic"
    topic: str = "general"
    max_results: int = 5
    include_answer: bool = True
    include_domains: list[str] = field(default_factory=list)
    exclude_domains: list[str] = field(default_factory=list)

    def body(self) -> dict[str, Any]:
        """The JSON Tavily expects; empty domain lists are left out rather than sent as []."""
        body: dict[str, Any] = {
            "query": self.query,
            "search_depth": self.search_depth,
            "topic": self.topic,
            "max_results": self.max_results,
            "include_answer": self.include_answer,
        }
        if self.include_domains:
            body["include_domains"] = self.include_domains
        if self.exclude_domains:
            body["exclude_domains"] = self.exclude_domains
        return body


@dataclass(frozen=True)
class SearchHit:
    title: str
    url: str
    content: str
    score: float | None


@dataclass(frozen=True)
class SearchAnswer:
    answer: str | None
    results: list[SearchHit]
    response_time: float | None
    """Seconds Tavily says it took (sent as a number or as text such as ``"1.67"``)."""

    def as_json(self) -> dict[str, Any]:
        return {
            "answer": self.answer,
            "results": [asdict(hit) for hit in self.results],
            "response_time": self.response_time,
        }


async def search(settings: TavilySettings, query: SearchQuery, http: AsyncHttp) -> SearchAnswer:
    if not settings.api_key:
        raise NotConfigured(NOT_CONFIGURED_REASON)
    response = await http.request_json(
        "POST",
        f"{settings.base_url}/search",
        body=query.body(),
        headers={"Authorization": f"Bearer {settings.api_key}"},
        timeout_s=settings.timeout_s,
        service=SERVICE,
    )
    if response.status >= 400:
        raise error_for(response)
    return parse_answer(response.data)


def error_for(response: JsonResponse) -> UpstreamError:
    status, detail = response.status, error_detail(response.data)
    if status in (401, 403):
        return CredentialsRefused(
            f"Tavily refused this service's API key (HTTP {status}: {detail}); "
            "the operator must check TAVILY_API_KEY",
            upstream_status=status,
        )
    if status == 429:
        return _rate_limited(response, detail)
    if status in (432, 433):
        # Tavily's own codes for an exhausted plan or pay-as-you-go limit: waiting will not help.
        return DependencyRefused(
            f"Tavily usage limit reached (HTTP {status}: {detail})", upstream_status=status
        )
    if status in (400, 422):
        return UpstreamRejected(f"Tavily rejected the search: {detail}", upstream_status=status)
    if status >= 500:
        return BadGateway(f"Tavily failed (HTTP {status}: {detail})", upstream_status=status)
    # Anything else (404, 405...) means a wrong TAVILY_BASE_URL rather than a bad search.
    return DependencyRefused(
        f"Tavily answered HTTP {status} ({detail}); check TAVILY_BASE_URL", upstream_status=status
    )


def _rate_limited(response: JsonResponse, detail: str) -> UpstreamUnavailable:
    """Tavily's 429 is about this service's key, not the caller's rate: to the caller the
    agent is unavailable for a while (503 with ``retry-after``)."""
    retry_after = parse_retry_after(response.headers)
    when = f"; retry after {retry_after:g} s" if retry_after is not None else ""
    return UpstreamUnavailable(
        f"Tavily rate limit reached (HTTP 429: {detail}){when}",
        upstream_status=429,
        retry_after=retry_after,
    )


def error_detail(data: Any) -> str:
    """Tavily's reason from ``{"detail": {"error": "..."}}`` or a simpler shape; else a stand-in."""
    detail = data.get("detail", data) if isinstance(data, dict) else data
    if isinstance(detail, dict):
        detail = detail.get("error") or detail.get("message") or detail
    if isinstance(detail, str) and detail.strip():
        return detail.strip()[:500]
    return "no reason given"


def parse_answer(data: Any) -> SearchAnswer:
    if not isinstance(data, dict) or not isinstance(data.get("results"), list):
        raise UpstreamError("Tavily answered with an unexpected body: no results list")
    answer = data.get("answer")
    return SearchAnswer(
        answer=answer if isinstance(answer, str) and answer else None,
        results=[_hit(item) for item in data["results"] if isinstance(item, dict)],
        response_time=lenient_float(data.get("response_time")),
    )


def _hit(item: dict[str, Any]) -> SearchHit:
    return SearchHit(
        title=str(item.get("title") or ""),
        url=str(item.get("url") or ""),
        content=str(item.get("content") or ""),
        score=lenient_float(item.get("score")),
    )


def lenient_float(value: Any) -> float | None:
    """A number from a number or numeric text; None for anything else (and for NaN/infinity)."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        number = float(value)
    except (ValueError, OverflowError):  # OverflowError: an integer such as 10**400
        return None
    return number if math.isfinite(number) else None
