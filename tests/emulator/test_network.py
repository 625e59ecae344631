"""Service DNS for processes: URLs naming a service become its loopback address."""

from __future__ import annotations

import pytest

from emulator.compose import Service
from emulator.network import Address, assign_addresses, rewrite_urls, service_environment
from shared.errors import ConfigError

ADDRESSES = {
    "model-gateway": Address("127.0.0.1", 18585),
    "search-agent": Address("127.0.0.1", 18082),
    "search": Address("127.0.0.1", 18099),
}


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("http://model-gateway:8585", "http://127.0.0.1:18585"),
        ("http://model-gateway", "http://127.0.0.1:18585"),
        ("https://model-gateway:8585/v1/messages?x=1", "https://127.0.0.1:18585/v1/messages?x=1"),
        ("http://search-agent:8080", "http://127.0.0.1:18082"),  # not the shorter "search"
        ("http://search:8080/", "http://127.0.0.1:18099/"),
        (
            "a=http://search-agent:8080,b=http://model-gateway:1",
            "a=http://127.0.0.1:18082,b=http://127.0.0.1:18585",
        ),
        ("http://search-agents:8080", "http://search-agents:8080"),  # another host
        ("http://model-gateway.example.com", "http://model-gateway.example.com"),
        ("model-gateway:8585", "model-gateway:8585"),  # not a URL
    ],
)
def test_rewrite_urls(value: str, expected: str) -> None:
    assert rewrite_urls(value, ADDRESSES) == expected


def service(name: str, port: int, **environment: str) -> Service:
    return Service(name, "main.py", "t", port, environment=environment)


def test_the_environment_gets_rewritten_urls_and_the_port() -> None:
    orchestrator = service("orchestrator", 8080, GATEWAY_URL="http://model-gateway:8585", PORT="80")
    env = service_environment(
        orchestrator, {**ADDRESSES, "orchestrator": Address("127.0.0.1", 18080)}
    )
    assert env == {"GATEWAY_URL": "http://127.0.0.1:18585", "PORT": "18080"}


def test_ports_are_the_compose_ones_unless_overridden() -> None:
    services = [service("model-gateway", 8585), service("orchestrator", 8080)]
    assert assign_addresses(services)["model-gateway"].url == "http://127.0.0.1:8585"
    moved = assign_addresses(services, {"orchestrator": 9090})
    assert moved["orchestrator"].port == 9090 and moved["model-gateway"].port == 8585
    free = assign_addresses(services, any_port=True)
    assert free["model-gateway"].port != free["orchestrator"].port
    with pytest.raises(ConfigError, match="--port names no service of the stack: nobody"):
        assign_addresses(services, {"nobody": 1})
    with pytest.raises(ConfigError, match="both want port 8585"):
        assign_addresses(services, {"orchestrator": 8585})
