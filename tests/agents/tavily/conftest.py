"""Fixtures for the tavily agent: a fake Tavily server, and the function pointed at it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.agents.support import FunctionClient, function_client
from tests.fakes.tavily_server import FakeTavily

API_KEY = "tvly-test-key"


@pytest.fixture
def tavily_server() -> Iterator[FakeTavily]:
    with FakeTavily(api_key=API_KEY) as server:
        yield server


@pytest.fixture
def configured(monkeypatch: pytest.MonkeyPatch, tavily_server: FakeTavily) -> FakeTavily:
    """TAVILY_API_KEY and TAVILY_BASE_URL set to the fake (conftest clears them per test)."""
    monkeypatch.setenv("TAVILY_API_KEY", API_KEY)
    monkeypatch.setenv("TAVILY_BASE_URL", tavily_server.url)
    return tavily_server


@pytest.fixture
def client(configured: FakeTavily) -> FunctionClient:
    return function_client("tavily")


@pytest.fixture
def unconfigured_client() -> FunctionClient:
    return function_client("tavily")
