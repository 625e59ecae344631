"""Every function's source bundle, installed and started as Cloud Functions and Cloud Run do it
(tests/deploy/bundles.py), answers /health and a real request; then all of them together, the
orchestrator pointed at the gateway and the agents by URL, answer a task end to end (the
gateway's offline local model). Run by `make test-deploy`.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from emulator.package import Bundle
from tests.deploy import bundles
from tests.deploy.proof import (
    FUNCTIONS,
    GATEWAY,
    GATEWAY_KEY,
    MANIFEST,
    ORCHESTRATOR,
    REQUESTS,
    ROOT,
)

pytestmark = pytest.mark.processes


@pytest.mark.parametrize("name", list(FUNCTIONS))
def test_the_bundle_imports_only_from_itself(
    name: str, built: dict[str, Bundle], venvs: dict[str, Path], home: Path
) -> None:
    folder = built[name].folder
    origins = bundles.import_origins(folder, venvs[name], home)
    assert Path(origins["shared"]) == folder / "shared", origins
    assert Path(origins["functions"]) == folder / "functions", origins
    assert origins["emulator"] == origins["tests"] == origins["tools"] == "", origins
    assert str(ROOT) not in " ".join(origins.values())


@pytest.mark.parametrize("name", list(FUNCTIONS))
def test_the_bundle_answers_health(name: str, servers: dict[str, bundles.Running]) -> None:
    answer = httpx.get(f"{servers[name].url}/health", timeout=5)
    assert answer.status_code == 200, answer.text


@pytest.mark.parametrize("name", list(REQUESTS))
def test_the_bundle_answers_a_real_request(name: str, servers: dict[str, bundles.Running]) -> None:
    path, body = REQUESTS[name]
    headers = {"x-api-key": GATEWAY_KEY} if name == GATEWAY.name else {}
    answer = httpx.post(f"{servers[name].url}{path}", json=body, headers=headers, timeout=30)
    assert answer.status_code == 200, f"{answer.text}\n{servers[name].output()}"
    reply = answer.json()
    if name == GATEWAY.name:
        assert reply["type"] == "message" and reply["content"], reply
    else:
        assert reply["result"], reply
    if name == "calculator":
        assert reply["result"]["value"] == 391


def test_the_orchestrator_reaches_every_agent_by_url(servers: dict[str, bundles.Running]) -> None:
    answer = httpx.get(f"{servers[ORCHESTRATOR.name].url}/agents", timeout=30)
    assert answer.status_code == 200, answer.text
    listed = {agent["name"]: agent for agent in answer.json()["agents"]}
    for agent in MANIFEST.agents:
        assert listed[agent.name]["reachable"] is True, listed[agent.name]


@pytest.mark.parametrize(
    ("task", "agent", "expected"),
    [
        ("What is 17 * 23?", "calculator", "391"),
        ("Search the knowledge base for the circuit breaker", "search", ""),
    ],
)
def test_the_bundles_together_answer_a_task(
    task: str, agent: str, expected: str, servers: dict[str, bundles.Running]
) -> None:
    orchestrator = servers[ORCHESTRATOR.name]
    with bundles.timed(f"task end to end through the bundles: {agent}"):
        answer = httpx.post(f"{orchestrator.url}/", json={"task": task}, timeout=60)
    assert answer.status_code == 200, f"{answer.text}\n{orchestrator.output()}"
    run = answer.json()
    assert run["status"] == "completed", run
    assert expected in run["answer"], run
    assert any(s["kind"] == "agent" and s["name"] == agent for s in run["steps"]), run
