"""The orchestrator's tests run on asyncio through anyio's pytest plugin."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from shared.aio import AsyncHttp
from tests.orchestrator.fakes import FakeAgents, FakeEndpoint


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def http() -> AsyncIterator[AsyncHttp]:
    client = AsyncHttp()
    yield client
    await client.close()


@pytest.fixture
async def fake_agents() -> AsyncIterator[FakeAgents]:
    fakes = FakeAgents()
    await fakes.start()
    yield fakes
    await fakes.close()


@pytest.fixture
async def sink() -> AsyncIterator[FakeEndpoint]:
    """A K_SINK that takes every delivery and records it."""
    endpoint = FakeEndpoint()
    await endpoint.start()
    yield endpoint
    await endpoint.close()
