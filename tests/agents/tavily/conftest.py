"""Fixtures for the tavily agent: a fake Tavily server, and the function pointed at it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import functions_framework
import pytest
from flask.testing import FlaskClient

from tests.fakes.tavily_server import FakeTavily

API_KEY = "tvly-test-key"
SOURCE = Path(__file__).resolve().parents[3] / "functions" / "agents" / "tavily" / "main.py"


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


def make_client() -> FlaskClient:
    return functions_framework.create_app("tavily", str(SOURCE)).test_client()


@pytest.fixture
def client(configured: FakeTavily) -> FlaskClient:
    return make_client()


@pytest.fixture
def unconfigured_client() -> FlaskClient:
    return make_client()
