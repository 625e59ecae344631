"""One gateway per test module for the OpenAI-compatible API's tests: the fake Anthropic
upstream behind it, the local model beside it, and the real ``openai`` SDK pointed at it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tests.fakes.anthropic_server import FakeAnthropic
from tests.gateway.support import ServedGateway, module_gateway
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
def gateway_on(
    folder: Path, config: dict[str, Any] | None = None, **extra_env: str
) -> Iterator[tuple[ServedGateway, FakeAnthropic]]:
    """A module's gateway (``support.module_gateway``) with ``BASE_CONFIG`` (and ``config``
    merged in), its anthropic provider pointed at a fake upstream of its own, and no gateway
    keys."""
    upstream = FakeAnthropic().start()
    env = {"GATEWAY_API_KEYS": "", **extra_env}
    with module_gateway(folder, config, upstream, **env) as gateway:
        yield gateway, upstream


def openai_client(gateway: ServedGateway, **options: Any) -> openai.OpenAI:
    """The real OpenAI SDK, pointed at the gateway, its own retries off."""
    options.setdefault("timeout", 10.0)
    options.setdefault("max_retries", 0)
    options.setdefault("api_key", "unused")
    return openai.OpenAI(base_url=f"{gateway.url}/v1", **options)
