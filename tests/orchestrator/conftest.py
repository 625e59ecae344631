"""The orchestrator's tests run on asyncio through anyio's pytest plugin."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from functions.orchestrator.outbound import OutboundHttp
from tests.orchestrator.fakes import FakeAgents


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def http() -> AsyncIterator[OutboundHttp]:
    client = OutboundHttp()
    yield client
    await client.close()


@pytest.fixture
async def fake_agents() -> AsyncIterator[FakeAgents]:
    fakes = FakeAgents()
    await fakes.start()
    yield fakes
    await fakes.close()
