"""What the bundles' proof runs on: the manifest's functions, their keys, one real request per
function and each one's variables as a platform's definition would set them (the fixtures that
build and start the bundles, once a session, are conftest.py's)."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

from shared.manifest import load_manifest
from tests.fakes.tavily_server import FakeTavily

ROOT = Path(__file__).resolve().parents[2]
MANIFEST = load_manifest(ROOT / "functions.yaml")
FUNCTIONS = {function.name: function for function in MANIFEST.functions}
GATEWAY = MANIFEST.of_kind("gateway")
ORCHESTRATOR = MANIFEST.of_kind("orchestrator")
GATEWAY_KEY = f"deploy-{secrets.token_hex(8)}"
TAVILY_KEY = "tvly-deploy-test"

REQUESTS: dict[str, tuple[str, dict[str, Any]]] = {
    "gateway": (
        "/v1/messages",
        {"model": "local", "max_tokens": 64, "messages": [{"role": "user", "content": "hi"}]},
    ),
    "calculator": ("/", {"expression": "17 * 23"}),
    "search": ("/", {"query": "circuit breaker"}),
    "data_processor": ("/", {"operation": "describe", "rows": [{"x": 1}, {"x": 3}]}),
    "tavily": ("/", {"query": "duckdb", "max_results": 2}),
}
"""One real request per function, by its name (the orchestrator's is the task below)."""


def environments(ports: dict[str, int], tavily: FakeTavily) -> dict[str, dict[str, str]]:
    """Each function's variables, as a platform's service definition would set them."""
    envs = {name: {"PORT": str(port)} for name, port in ports.items()}
    envs[GATEWAY.name]["GATEWAY_API_KEYS"] = GATEWAY_KEY
    wiring = {"GATEWAY_URL": f"http://127.0.0.1:{ports[GATEWAY.name]}"}
    for agent in MANIFEST.agents:
        wiring[agent.url_variable] = f"http://127.0.0.1:{ports[agent.name]}"
    envs[ORCHESTRATOR.name].update(wiring, GATEWAY_API_KEYS=GATEWAY_KEY)
    if "tavily" in envs:
        envs["tavily"].update(TAVILY_API_KEY=TAVILY_KEY, TAVILY_BASE_URL=tavily.url)
    return envs
