"""Helpers the gateway tests share: the gateway served on real HTTP, test config, tools."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import httpx
import pytest
import yaml

from shared.entry import function_app
from tests.fakes.anthropic_server import FakeAnthropic
from tests.lazy_imports import anthropic
from tests.served import ServedApp, client_tls
from tests.waiting import wait_until as wait_until  # the tests' one poller, re-exported

if TYPE_CHECKING:  # the SDK loads when a test first uses it (tests/lazy_imports.py)
    from anthropic.types import MessageParam, ToolParam

GATEWAY_SOURCE = str(Path(__file__).resolve().parents[2] / "functions" / "gateway" / "main.py")
ANTHROPIC_MODEL = "claude-test-sonnet"
BEDROCK_MODEL = "anthropic.claude-test-sonnet-v1:0"
LOCAL_MODEL = "local-rules"
GATEWAY_KEY = "gateway-test-key"

ANTHROPIC = {"provider": "anthropic", "model": ANTHROPIC_MODEL, "timeout_s": 3}
BEDROCK = {"provider": "bedrock", "model": BEDROCK_MODEL, "timeout_s": 3}
LOCAL = {"provider": "local", "model": LOCAL_MODEL, "timeout_s": 3}

# Variables that could make a provider look configured, or change the config, from outside.
AMBIENT = (
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_BEARER_TOKEN_BEDROCK",
    "AWS_ENDPOINT_URL",
    "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS",
    "GATEWAY_DEADLINE_S",
    "GATEWAY_MAX_BODY_BYTES",
    "GATEWAY_MAX_ATTEMPTS",
    "GATEWAY_CIRCUIT_FAILURES",
    "GATEWAY_CIRCUIT_COOLDOWN_S",
)

BASE_CONFIG: dict[str, Any] = {
    "routes": {
        "default": [ANTHROPIC, BEDROCK, LOCAL],
        "anthropic": [ANTHROPIC],
        "bedrock": [BEDROCK],
        "local": [LOCAL],
        # These two opt in to the rule-based model answering an outage; `default` does not.
        "anthropic-then-local": {"deployments": [ANTHROPIC, LOCAL], "fallback_to_local": True},
        "bedrock-then-local": {"deployments": [BEDROCK, LOCAL], "fallback_to_local": True},
        "anthropic-then-bedrock": [ANTHROPIC, BEDROCK],
    },
    "deadline_s": 5,
    # Backoff must be tiny in tests: a retry costs at most 10 ms here.
    "retry": {
        "max_attempts": 2,
        "base_delay_s": 0.005,
        "max_delay_s": 0.01,
        "max_retry_after_s": 1,
    },
    # High threshold: only the circuit tests (which lower it) should ever open a circuit.
    "circuit": {"failure_threshold": 100, "cooldown_s": 0.5},
}

CALCULATOR_TOOL: ToolParam = {
    "name": "calculator",
    "description": "Evaluate an arithmetic expression exactly.",
    "input_schema": {
        "type": "object",
        "properties": {"expression": {"type": "string"}},
        "required": ["expression"],
    },
}
SEARCH_TOOL: ToolParam = {
    "name": "search",
    "description": "Full-text search over the project documentation corpus.",
    "input_schema": {
        "type": "object",
        "properties": {"query": {"type": "string"}},
        "required": ["query"],
    },
}
WEB_TOOL: ToolParam = {
    "name": "tavily",
    "description": "Search the web for current news and recent events.",
    "input_schema": {
        "type": "object",
        "properties": {"query": {"type": "string"}},
        "required": ["query"],
    },
}
DATA_TOOL: ToolParam = {
    "name": "data_processor",
    "description": "Answer questions over CSV or JSON rows: filter, group, aggregate.",
    "input_schema": {
        "type": "object",
        "properties": {
            "rows": {"type": "array", "items": {"type": "object"}},
            "operation": {"type": "string", "enum": ["describe", "filter", "aggregate"]},
        },
        "required": ["rows"],
    },
}


def merged(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """``base`` with ``overrides`` merged in, key by key for nested mappings."""
    result = copy.deepcopy(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(result.get(key), dict):
            result[key] = merged(result[key], value)
        else:
            result[key] = value
    return result


def write_config(directory: Path, config: dict[str, Any] | str, name: str = "gateway.yaml") -> Path:
    path = directory / name
    # Unsorted: the order of aliases (patterns are tried in file order) and routes matters.
    path.write_text(config if isinstance(config, str) else yaml.safe_dump(config, sort_keys=False))
    return path


def user(text: str) -> list[MessageParam]:
    return [{"role": "user", "content": text}]


def request_body(route: str = "default", text: str = "hello", **extra: Any) -> dict[str, Any]:
    return {"model": route, "max_tokens": 256, "messages": user(text), **extra}


def create_gateway_app() -> Any:
    """The gateway's app, built from the current environment exactly as production builds it."""
    return function_app(GATEWAY_SOURCE, "gateway")


class ServedGateway(ServedApp):
    """The gateway's functions-framework app served on 127.0.0.1 by uvicorn in a thread."""

    def __init__(self, app: Any) -> None:
        super().__init__(app)
        self._clients: list[Any] = []  # SDK clients and httpx clients, closed at stop

    def sdk(self, api_key: str = GATEWAY_KEY, **options: Any) -> anthropic.Anthropic:
        """The real anthropic SDK, pointed at the gateway, its own retries off unless asked."""
        options.setdefault("timeout", 10.0)
        options.setdefault("max_retries", 0)
        options.setdefault("http_client", anthropic.DefaultHttpxClient(verify=client_tls()))
        client = anthropic.Anthropic(base_url=self.url, api_key=api_key, **options)
        self._clients.append(client)
        return client

    def openai(self, api_key: str = GATEWAY_KEY, **options: Any) -> Any:
        """The real OpenAI SDK (``openai.OpenAI``), pointed at the gateway, retries off."""
        import openai  # only the OpenAI-compatible tests need it

        options.setdefault("timeout", 10.0)
        options.setdefault("max_retries", 0)
        client = openai.OpenAI(base_url=self.url + "/v1", api_key=api_key, **options)
        self._clients.append(client)
        return client

    def http(self) -> httpx.Client:
        """A plain HTTP client, for what the SDK cannot send (bad bodies, other paths)."""
        client = httpx.Client(base_url=self.url, timeout=10.0, verify=client_tls())
        self._clients.append(client)
        return client

    def stream(self, route: str) -> tuple[httpx.Response, str]:
        """A streamed ``/v1/messages`` on ``route``, read whole: the answer and its raw text."""
        body = request_body(route, stream=True)
        with self.http().stream("POST", "/v1/messages", json=body) as response:
            return response, response.read().decode()

    def providers(self) -> dict[str, Any]:
        response = httpx.get(f"{self.url}/providers", timeout=5.0)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    def deployment(self, name: str) -> dict[str, Any]:
        """The ``/providers`` entry of one deployment, e.g. ``anthropic:claude-test-sonnet``."""
        deployments: list[dict[str, Any]] = self.providers()["deployments"]
        [entry] = [d for d in deployments if d["name"] == name]
        return entry

    def metric(self, sample: str) -> float:
        """The value of one Prometheus sample line (0 when it is absent)."""
        text = httpx.get(f"{self.url}/metrics", timeout=5.0).text
        for line in text.splitlines():
            if line.startswith(sample + " "):
                return float(line.rsplit(" ", 1)[1])
        return 0.0

    def stop(self) -> None:
        for client in self._clients:
            client.close()
        super().stop()


def error_of(exc: anthropic.APIStatusError) -> dict[str, Any]:
    """The ``error`` object of an Anthropic-shaped error body, checking the shape on the way."""
    body = exc.response.json()
    assert body["type"] == "error", body
    assert set(body["error"]) >= {"type", "message"}, body
    error: dict[str, Any] = body["error"]
    return error


@contextmanager
def module_gateway(
    directory: Path,
    config: dict[str, Any] | None = None,
    upstream: FakeAnthropic | None = None,
    **env: str,
) -> Iterator[ServedGateway]:
    """A gateway shared by a whole module (``start_gateway``'s, hermetic the same way), for a
    module-scoped fixture: starting one per test costs time the suite does not have.
    ``upstream``: a fake whose ``environ()`` the gateway gets; it is stopped before the
    gateway, so that the gateway's loop closes with no upstream connection still open (uvloop
    refuses to close over one)."""
    with pytest.MonkeyPatch.context() as patch:
        for name in AMBIENT:
            patch.delenv(name, raising=False)
        patch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(directory / "no-aws-credentials"))
        patch.setenv("AWS_CONFIG_FILE", str(directory / "no-aws-config"))
        path = write_config(directory, merged(BASE_CONFIG, config or {}))
        patch.setenv("GATEWAY_CONFIG", str(path))
        upstream_env = upstream.environ() if upstream is not None else {}
        for name, value in {**upstream_env, **env}.items():
            patch.setenv(name, value)
        gateway = ServedGateway(create_gateway_app())
        try:
            yield gateway
        finally:
            if upstream is not None:
                upstream.stop()
            gateway.stop()


class StartGateway(Protocol):
    """The ``start_gateway`` fixture: config merged into ``BASE_CONFIG``, env set, served."""

    def __call__(self, config: dict[str, Any] | None = None, **env: str) -> ServedGateway: ...
