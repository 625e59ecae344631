"""`.env.docker` and the compose files, held to each other (issue 15, item 16).

The template says it lists every variable the Docker stack reads: each one it lists must be
interpolated by a compose file or read from `.env` by a docker/ script (``env_value NAME``),
and each ``${VAR}`` a compose file interpolates must be listed. Copying the template to `.env`
changes nothing (its values are Compose's defaults), and the empty values Compose passes for
unset variables mean the code's defaults to every function that reads them.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from emulator.interpolate import interpolate_tree, read_env_file
from functions.agents.data_processor.limits import QueryLimits
from functions.agents.search.config import SearchConfig
from functions.agents.tavily.client import TavilySettings
from functions.gateway.config import GatewayConfig
from functions.orchestrator.config import load_orchestrator_config
from shared.manifest import load_manifest
from shared.server import ServerSettings
from shared.settings import FunctionSettings

REPO_ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = REPO_ROOT / ".env.docker"
COMPOSE_FILES = (REPO_ROOT / "docker-compose.yml", REPO_ROOT / "docker-compose.prod.yml")
REFERENCE = re.compile(r"\$(?:\{([A-Za-z_][A-Za-z0-9_]*)|([A-Za-z_][A-Za-z0-9_]*))")
SCRIPT_READ = re.compile(r"\benv_value ([A-Z_][A-Z0-9_]*)")


def scalars(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            yield str(key)
            yield from scalars(value)
    elif isinstance(node, list):
        for item in node:
            yield from scalars(item)
    elif isinstance(node, str):
        yield node


def compose_documents() -> list[dict[str, Any]]:
    return [yaml.safe_load(path.read_text(encoding="utf-8")) for path in COMPOSE_FILES]


def interpolated() -> set[str]:
    """Every variable a compose file interpolates (``$$`` is a literal dollar)."""
    names = set()
    for document in compose_documents():
        for text in scalars(document):
            for match in REFERENCE.finditer(text.replace("$$", "")):
                names.add(match.group(1) or match.group(2))
    return names


def read_by_scripts() -> set[str]:
    """Variables the docker/ scripts read as Compose does: the environment, else `.env`."""
    return {
        name
        for script in (REPO_ROOT / "docker").glob("*.sh")
        for name in SCRIPT_READ.findall(script.read_text(encoding="utf-8"))
    }


def template() -> dict[str, str]:
    return read_env_file(TEMPLATE)


def test_every_variable_the_template_lists_is_read() -> None:
    unread = set(template()) - interpolated() - read_by_scripts()
    assert not unread, f".env.docker lists variables nothing reads: {sorted(unread)}"


def test_every_variable_compose_and_the_scripts_read_is_listed() -> None:
    unlisted = (interpolated() | read_by_scripts()) - set(template())
    assert not unlisted, f"read but not listed in .env.docker: {sorted(unlisted)}"


def test_the_template_only_lists_variables_as_assignments() -> None:
    """A commented-out `# NAME=value` reads as listed but is not: list it, or say it in words."""
    commented = re.findall(r"^#\s*([A-Z][A-Z0-9_]*)=", TEMPLATE.read_text(), re.MULTILINE)
    assert not commented, commented


def test_copying_the_template_to_env_changes_nothing() -> None:
    for document in compose_documents():
        assert interpolate_tree(document, template()) == interpolate_tree(document, {})


def container_environment(service: str) -> dict[str, str]:
    """What Compose passes to ``service`` when no variable is set (no `.env`)."""
    document = interpolate_tree(compose_documents()[0], {})
    environment = document["services"][service]["environment"]
    assert isinstance(environment, dict)
    return {str(k): "" if v is None else str(v) for k, v in environment.items()}


FUNCTIONS = [
    name for name, node in compose_documents()[0]["services"].items() if "x-function" in node
]


@pytest.mark.parametrize("service", FUNCTIONS)
def test_every_function_gets_the_server_settings(service: str) -> None:
    environment = container_environment(service)
    assert int(environment["WORKERS"]) == 2  # functions-framework: int(), "" would stop it
    assert environment["REQUEST_BODY_TIMEOUT_S"] == ""
    assert ServerSettings.load(environment) == ServerSettings()
    assert environment["LOG_LEVEL"] == "INFO"


@pytest.mark.parametrize(
    ("service", "settings"),
    [
        ("search-agent", SearchConfig),
        ("data-processor-agent", QueryLimits),
        ("tavily-agent", TavilySettings),
    ],
)
def test_every_agent_reads_what_compose_passes_as_its_defaults(
    service: str, settings: type[FunctionSettings]
) -> None:
    assert settings.load(container_environment(service)) == settings.load({})


def test_the_gateway_reads_empty_settings_as_its_defaults() -> None:
    environment = container_environment("model-gateway")
    passed = [name for name in environment if name.startswith("GATEWAY_")]
    assert {"GATEWAY_DEADLINE_S", "GATEWAY_MAX_BODY_BYTES", "GATEWAY_MAX_ATTEMPTS"} <= set(passed)
    assert {"GATEWAY_CIRCUIT_FAILURES", "GATEWAY_CIRCUIT_COOLDOWN_S"} <= set(passed)
    assert GatewayConfig.load(environment) == GatewayConfig.load({})


def test_the_gateway_settings_reach_its_config() -> None:
    document = interpolate_tree(compose_documents()[0], {"GATEWAY_MAX_ATTEMPTS": "5"})
    environment = document["services"]["model-gateway"]["environment"]
    assert GatewayConfig.load(environment).retry.max_attempts == 5


def test_the_orchestrator_finds_the_services_by_name_and_has_no_sink() -> None:
    # The image's config file, with the URLs Compose sets: no Docker-only copy of the file.
    environment = container_environment("orchestrator")
    assert "ORCHESTRATOR_CONFIG" not in environment
    config = load_orchestrator_config(environment)
    assert config.gateway.url == "http://model-gateway:8585"
    assert {name: entry.url for name, entry in config.agents.items()} == {
        agent.name: agent.service_url for agent in load_manifest().agents
    }
    assert config.agents["calculator"].url == "http://calculator-agent:8080"
    assert config.sink.url is None
    assert environment["GATEWAY_API_KEYS"] == ""  # the orchestrator's key comes from it


def test_host_ports_are_variables() -> None:
    document = interpolate_tree(
        compose_documents()[0],
        {"GATEWAY_PORT": "18585", "ORCHESTRATOR_PORT": "18080", "FAKE_ANTHROPIC_PORT": "18090"},
    )
    published = {name: node.get("ports", []) for name, node in document["services"].items()}
    assert published["model-gateway"] == ["18585:8585"]
    assert published["orchestrator"] == ["18080:8080"]
    assert published["fake-anthropic"] == ["127.0.0.1:18090:8090"]
    assert all(not ports for name, ports in published.items() if name.endswith("-agent"))


def test_agents_in_env_reaches_the_orchestrator_as_remote_agents() -> None:
    document = interpolate_tree(compose_documents()[0], {"AGENTS": "wx-remote=https://wx.example"})
    environment = document["services"]["orchestrator"]["environment"]
    config = load_orchestrator_config({str(k): str(v) for k, v in environment.items()})
    assert config.agents["wx-remote"].url == "https://wx.example"
