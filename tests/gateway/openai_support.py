"""One gateway per test module for the OpenAI-compatible API's tests: the fake Anthropic
upstream behind it, the local model beside it, and the real ``openai`` SDK pointed at it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.anthropic_server import FakeAnthropic
from tests.gateway.conftest import _AMBIENT
from tests.gateway.support import BASE_CONFIG, ServedGateway, create_gateway_app, write_config
from tests.lazy_imports import openai

WEATHER_TOOL: Any = {
    "type": "function",
    "name": "get_weather",
    "description": "The weather in a city today.",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
        "additionalProperties": False,
    },
    "strict": True,
}


@contextmanager
def gateway_on(folder: Path, **extra_env: str) -> Iterator[tuple[ServedGateway, FakeAnthropic]]:
    """The gateway with ``BASE_CONFIG``, its anthropic provider pointed at a fake upstream, no
    ambient credentials; the environment stays set while it serves. The upstream stops first,
    closing the connections the gateway keeps to it (an open one keeps the gateway's event
    loop from closing)."""
    upstream = FakeAnthropic().start()
    with pytest.MonkeyPatch.context() as env:
        for name in _AMBIENT:
            env.delenv(name, raising=False)
        env.setenv("AWS_SHARED_CREDENTIALS_FILE", str(folder / "no-aws-credentials"))
        env.setenv("AWS_CONFIG_FILE", str(folder / "no-aws-config"))
        env.delenv("GATEWAY_API_KEYS", raising=False)
        env.setenv("GATEWAY_CONFIG", str(write_config(folder, BASE_CONFIG)))
        for name, value in {**upstream.environ(), **extra_env}.items():
            env.setenv(name, value)
        gateway = ServedGateway(create_gateway_app())
        try:
            yield gateway, upstream
        finally:
            upstream.stop()
            gateway.stop()


def openai_client(gateway: ServedGateway, **options: Any) -> openai.OpenAI:
    """The real OpenAI SDK, pointed at the gateway, its own retries off."""
    options.setdefault("timeout", 10.0)
    options.setdefault("max_retries", 0)
    options.setdefault("api_key", "unused")
    return openai.OpenAI(base_url=f"{gateway.url}/v1", **options)
