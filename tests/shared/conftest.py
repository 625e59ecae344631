"""Fixtures for the shared-core tests: the tiny scenario functions, and the fakes."""

from __future__ import annotations

import pytest
from starlette.testclient import TestClient

from tests.fakes.anthropic_server import fake_anthropic  # noqa: F401
from tests.fakes.bedrock import fake_bedrock, fake_bedrock_server  # noqa: F401
from tests.shared.scenarios import function_client


@pytest.fixture
def basic_client() -> TestClient:
    return function_client("basic", "basic")


@pytest.fixture
def agent_client() -> TestClient:
    return function_client("agent", "repeat")
