"""The orchestrator's tests run on asyncio through anyio's pytest plugin."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from shared.aio import AsyncHttp
from tests.orchestrator.fakes import FakeAgents


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
