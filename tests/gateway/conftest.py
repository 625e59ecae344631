"""Fixtures for the gateway tests: the gateway on real HTTP, and the fakes behind it.

``start_gateway(...)`` writes a test config (short timeouts, millisecond backoff) into
``tmp_path``, sets the environment, builds the app with ``shared.entry.function_app``
exactly as production does, and serves it on 127.0.0.1 in a thread.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.fakes import anthropic_server, bedrock
from tests.fakes.anthropic_server import FakeAnthropic
from tests.fakes.bedrock import FakeBedrock, FakeBedrockServer
from tests.gateway.support import (
    AMBIENT,
    BASE_CONFIG,
    ServedGateway,
    StartGateway,
    create_gateway_app,
    merged,
    write_config,
)

# The shared fakes' fixtures, made visible to every gateway test.
fake_anthropic = anthropic_server.fake_anthropic
fake_bedrock_server = bedrock.fake_bedrock_server


@pytest.fixture
def fake_bedrock(fake_bedrock_server: FakeBedrockServer) -> FakeBedrockServer:
    """moto's bedrock-runtime in server mode, the environment pointing the provider at it: the
    provider speaks HTTP over its own transport, which in-process moto would not see."""
    return fake_bedrock_server


@pytest.fixture
def hermetic_environ(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No ambient AWS credentials (not even ~/.aws/credentials) and no config overrides."""
    for name in AMBIENT:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))


@pytest.fixture
def start_gateway(
    hermetic_environ: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[StartGateway]:
    """Start a gateway with ``BASE_CONFIG`` (merged with ``config``) and extra ``env``."""
    served: list[ServedGateway] = []

    def start(config: dict[str, Any] | None = None, **env: str) -> ServedGateway:
        path = write_config(tmp_path, merged(BASE_CONFIG, config or {}), f"gw{len(served)}.yaml")
        monkeypatch.setenv("GATEWAY_CONFIG", str(path))
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        gateway = ServedGateway(create_gateway_app())
        served.append(gateway)
        return gateway

    yield start
    for gateway in served:
        gateway.stop()


@pytest.fixture
def anthropic_env(fake_anthropic: FakeAnthropic, monkeypatch: pytest.MonkeyPatch) -> FakeAnthropic:
    """Point the gateway's anthropic provider at the fake server."""
    for name, value in fake_anthropic.environ().items():
        monkeypatch.setenv(name, value)
    return fake_anthropic


@pytest.fixture
def gateway(start_gateway: StartGateway, anthropic_env: FakeAnthropic) -> ServedGateway:
    """A gateway with the fake anthropic configured (bedrock not configured)."""
    return start_gateway()


@pytest.fixture
def full_gateway(
    start_gateway: StartGateway, anthropic_env: FakeAnthropic, fake_bedrock: FakeBedrock
) -> ServedGateway:
    """A gateway with all three providers: fake anthropic, moto bedrock (server mode), local."""
    return start_gateway()
