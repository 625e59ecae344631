"""Every function's source bundle, installed and started as Cloud Functions and Cloud Run do it
(tests/deploy/bundles.py), answers /health and a real request; then all of them together, the
orchestrator pointed at the gateway and the agents by URL, answer a task end to end (the
gateway's offline local model). Run by `make test-deploy`.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from emulator.package import Bundle, package
from shared.manifest import load_manifest
from tests.deploy import bundles
from tests.fakes.tavily_server import FakeTavily

pytestmark = pytest.mark.processes

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


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Bundle]:
    with bundles.timed("package every function"):
        made = package(ROOT, out=tmp_path_factory.mktemp("dist"))
    return {bundle.name: bundle for bundle in made}


@pytest.fixture(scope="module")
def venvs(built: dict[str, Bundle], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("venvs")
    with bundles.timed(f"venvs from the bundles' requirements.txt ({len(built)} bundles)"):
        return bundles.make_venvs(built, folder)


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("home")


@pytest.fixture(scope="module")
def tavily() -> Iterator[FakeTavily]:
    with FakeTavily(api_key=TAVILY_KEY) as server:
        yield server


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


@pytest.fixture(scope="module")
def servers(
    built: dict[str, Bundle], venvs: dict[str, Path], home: Path, tavily: FakeTavily
) -> Iterator[dict[str, bundles.Running]]:
    """Every bundle started at once, each from its own folder with its own venv."""
    envs = environments(bundles.ports(list(built)), tavily)
    started: dict[str, bundles.Running] = {}
    try:
        with bundles.timed("start every bundle, until each answers /health"):
            for name, bundle in built.items():
                target = FUNCTIONS[name].target
                started[name] = bundles.start(bundle, target, venvs[name], home, envs[name])
            for running in started.values():
                bundles.wait_ready(running)
        yield started
    finally:
        for running in started.values():
            running.stop()


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
