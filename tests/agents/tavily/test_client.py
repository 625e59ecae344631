"""The Tavily client core against the fake server: the wire format and every failure mapping."""

from __future__ import annotations

import asyncio
import socket
import time
from typing import Any

import pytest

from functions.agents.tavily.client import (
    SearchQuery,
    TavilySettings,
    error_detail,
    lenient_float,
    parse_answer,
)
from functions.agents.tavily.client import search as search_over
from shared.aio import AsyncHttp
from shared.errors import (
    ConfigError,
    CredentialsRefused,
    DependencyRefused,
    NotConfigured,
    UpstreamError,
    UpstreamRejected,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from tests.agents.tavily.conftest import API_KEY
from tests.fakes.tavily_server import FakeTavily


def search(settings: TavilySettings, query: SearchQuery) -> Any:
    """One search over a transport of its own, from synchronous test code."""

    async def searched() -> Any:
        http = AsyncHttp()
        try:
            return await search_over(settings, query, http)
        finally:
            await http.close()

    return asyncio.run(searched())


def settings_for(server: FakeTavily, **overrides: Any) -> TavilySettings:
    return TavilySettings(api_key=API_KEY, base_url=server.url, timeout_s=5.0).model_copy(
        update=overrides
    )


def test_search_sends_bearer_key_and_documented_body(tavily_server: FakeTavily) -> None:
    query = SearchQuery(
        query="python release",
        search_depth="advanced",
        topic="news",
        max_results=3,
        include_answer=True,
        include_domains=["python.org"],
        exclude_domains=["spam.example"],
    )
    answer = search(settings_for(tavily_server), query)

    sent = tavily_server.requests[0]
    assert (sent.method, sent.path) == ("POST", "/search")
    assert sent.headers["authorization"] == f"Bearer {API_KEY}"
    assert sent.headers["content-type"] == "application/json"
    assert sent.body == {
        "query": "python release",
        "search_depth": "advanced",
        "topic": "news",
        "max_results": 3,
        "include_answer": True,
        "include_domains": ["python.org"],
        "exclude_domains": ["spam.example"],
    }
    assert "api_key" not in sent.body  # the key travels only in the header
    assert answer.answer == "A short answer about python release."
    assert [hit.url for hit in answer.results] == [f"https://python.org/{n}" for n in (1, 2, 3)]
    assert answer.results[0].score == pytest.approx(0.9)
    assert answer.response_time == pytest.approx(1.67)


def test_empty_domain_lists_are_not_sent(tavily_server: FakeTavily) -> None:
    search(settings_for(tavily_server), SearchQuery(query="q"))
    assert "include_domains" not in tavily_server.requests[0].body
    assert "exclude_domains" not in tavily_server.requests[0].body


def test_without_a_key_nothing_is_sent(tavily_server: FakeTavily) -> None:
    with pytest.raises(NotConfigured, match="TAVILY_API_KEY"):
        search(settings_for(tavily_server, api_key=None), SearchQuery(query="q"))
    assert tavily_server.requests == []


@pytest.mark.parametrize("status", [401, 403])
def test_refused_key_is_a_502_that_says_so(tavily_server: FakeTavily, status: int) -> None:
    tavily_server.enqueue(status=status, body={"detail": {"error": "Unauthorized: bad key."}})
    with pytest.raises(CredentialsRefused) as caught:
        search(settings_for(tavily_server), SearchQuery(query="q"))
    assert caught.value.status_code == 502
    assert caught.value.upstream_status == status
    assert "refused" in caught.value.message and "TAVILY_API_KEY" in caught.value.message
    assert "Unauthorized: bad key." in caught.value.message


def test_wrong_key_is_refused_by_the_fake_like_tavily(tavily_server: FakeTavily) -> None:
    with pytest.raises(CredentialsRefused, match="missing or invalid API key") as caught:
        search(settings_for(tavily_server, api_key="tvly-wrong"), SearchQuery(query="q"))
    assert caught.value.status_code == 502


def test_rate_limit_is_a_503_passing_on_retry_after(tavily_server: FakeTavily) -> None:
    tavily_server.enqueue(status=429, headers={"retry-after": "7"}, body={"detail": "slow down"})
    with pytest.raises(UpstreamUnavailable) as caught:
        search(settings_for(tavily_server), SearchQuery(query="q"))
    assert caught.value.status_code == 503
    assert caught.value.retry_after == 7.0
    assert caught.value.response_headers() == {"retry-after": "7"}
    assert "slow down" in caught.value.message


def test_rate_limit_without_retry_after_sends_no_header(tavily_server: FakeTavily) -> None:
    tavily_server.enqueue(status=429)
    with pytest.raises(UpstreamUnavailable) as caught:
        search(settings_for(tavily_server), SearchQuery(query="q"))
    assert caught.value.response_headers() == {}


@pytest.mark.parametrize("status", [432, 433])
def test_usage_limit_is_a_502(tavily_server: FakeTavily, status: int) -> None:
    tavily_server.enqueue(status=status, body={"detail": {"error": "Plan limit exceeded."}})
    with pytest.raises(DependencyRefused, match="usage limit") as caught:
        search(settings_for(tavily_server), SearchQuery(query="q"))
    assert caught.value.status_code == 502


@pytest.mark.parametrize("status", [500, 502, 503])
def test_server_errors_are_502(tavily_server: FakeTavily, status: int) -> None:
    tavily_server.enqueue(status=status, body={"detail": {"error": "boom"}})
    with pytest.raises(UpstreamError) as caught:
        search(settings_for(tavily_server), SearchQuery(query="q"))
    assert caught.value.status_code == 502
    assert caught.value.retryable
    assert "boom" in caught.value.message


def test_tavily_rejecting_the_search_is_a_400_with_its_reason(tavily_server: FakeTavily) -> None:
    tavily_server.enqueue(status=400, body={"detail": {"error": "Query is too long."}})
    with pytest.raises(UpstreamRejected, match="Query is too long") as caught:
        search(settings_for(tavily_server), SearchQuery(query="q"))
    assert caught.value.status_code == 400


def test_a_wrong_base_url_is_a_502_naming_the_setting(tavily_server: FakeTavily) -> None:
    settings = settings_for(tavily_server, base_url=tavily_server.url + "/nowhere")
    with pytest.raises(DependencyRefused, match="TAVILY_BASE_URL") as caught:
        search(settings, SearchQuery(query="q"))
    assert caught.value.status_code == 502


def test_slow_answer_times_out_as_504_within_the_bound(tavily_server: FakeTavily) -> None:
    tavily_server.enqueue(delay_s=5.0)
    started = time.monotonic()
    with pytest.raises(UpstreamTimeout, match="did not answer within 0.2 s") as caught:
        search(settings_for(tavily_server, timeout_s=0.2), SearchQuery(query="q"))
    assert caught.value.status_code == 504
    assert time.monotonic() - started < 2.0


def test_connection_refused_is_a_503_saying_unreachable() -> None:
    with socket.socket() as probe:  # a port nobody listens on once the socket is closed
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings = TavilySettings(api_key=API_KEY, base_url=f"http://127.0.0.1:{port}")
    with pytest.raises(UpstreamUnavailable, match="Tavily is unreachable") as caught:
        search(settings, SearchQuery(query="q"))
    assert caught.value.status_code == 503


def test_an_answer_without_results_is_a_502(tavily_server: FakeTavily) -> None:
    tavily_server.enqueue(status=200, body={"answer": "x"})
    with pytest.raises(UpstreamError, match="unexpected body") as caught:
        search(settings_for(tavily_server), SearchQuery(query="q"))
    assert caught.value.status_code == 502


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (1.67, 1.67),
        ("1.67", 1.67),
        (2, 2.0),
        ("fast", None),
        (None, None),
        (True, None),
        ("nan", None),
        ([], None),
    ],
)
def test_response_time_is_parsed_leniently(raw: object, expected: float | None) -> None:
    assert lenient_float(raw) == expected


def test_numbers_beyond_a_float_are_none_not_an_error() -> None:
    assert lenient_float(10**400) is None
    assert parse_answer(
        {"results": [{"score": 10**400}], "response_time": -(10**400)}
    ).as_json() == {
        "answer": None,
        "results": [{"title": "", "url": "", "content": "", "score": None}],
        "response_time": None,
    }


def test_parse_answer_fills_gaps_in_results() -> None:
    answer = parse_answer(
        {"answer": "", "results": [{"url": "https://a.example", "score": "0.5"}, "junk"]}
    )
    assert answer.answer is None
    assert answer.as_json()["results"] == [
        {"title": "", "url": "https://a.example", "content": "", "score": 0.5}
    ]
    assert answer.response_time is None


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"detail": {"error": "Bad key"}}, "Bad key"),
        ({"detail": "Not Found"}, "Not Found"),
        ({"error": "x"}, "x"),
        ({"detail": []}, "no reason given"),
        (None, "no reason given"),
    ],
)
def test_error_detail_reads_tavily_error_shapes(body: object, expected: str) -> None:
    assert error_detail(body) == expected


def test_settings_from_env() -> None:
    settings = TavilySettings.load(
        {"TAVILY_API_KEY": " k ", "TAVILY_BASE_URL": "http://h:1/", "TAVILY_TIMEOUT_S": "3"}
    )
    assert settings == TavilySettings(api_key="k", base_url="http://h:1", timeout_s=3.0)
    assert TavilySettings.load({}) == TavilySettings(api_key=None)
    assert not TavilySettings.load({"TAVILY_API_KEY": "  "}).configured


@pytest.mark.parametrize("raw", ["soon", "0", "-1", "1000"])
def test_bad_timeout_setting_names_the_variable(raw: str) -> None:
    with pytest.raises(ConfigError, match="TAVILY_TIMEOUT_S"):
        TavilySettings.load({"TAVILY_TIMEOUT_S": raw})
