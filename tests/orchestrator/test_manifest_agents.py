"""The orchestrator's built-in agents come from functions.yaml (``manifest_agents: true``)."""

from __future__ import annotations

from pathlib import Path

import yaml

from functions.orchestrator.agent_sources import agent_sources
from functions.orchestrator.config import load_orchestrator_config
from shared.config import REPO_ROOT


def manifest_with(tmp_path: Path, name: str, port: int) -> Path:
    data = yaml.safe_load((REPO_ROOT / "functions.yaml").read_text(encoding="utf-8"))
    data["functions"].append(
        {
            "name": name,
            "kind": "agent",
            "source": f"functions/agents/{name}",
            "target": name,
            "port": port,
            "service": f"{name}-agent",
            "image": f"agentorch/{name}",
        }
    )
    path = tmp_path / "functions.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def config_file(tmp_path: Path, agents: dict[str, object]) -> Path:
    path = tmp_path / "orchestrator.yaml"
    config = {"gateway": {"url": "http://g.invalid"}, "manifest_agents": True, "agents": agents}
    path.write_text(yaml.safe_dump(config))
    return path


def test_a_manifest_agent_is_built_in_at_its_local_port(tmp_path: Path) -> None:
    manifest = manifest_with(tmp_path, "weather", 8095)
    config = load_orchestrator_config({"FUNCTIONS_MANIFEST": str(manifest)})
    assert config.agents["weather"].url == "http://localhost:8095"
    assert list(config.agents)[:4] == ["calculator", "search", "data_processor", "tavily"]


def test_its_url_variable_and_the_file_may_change_it(tmp_path: Path) -> None:
    environ = {
        "FUNCTIONS_MANIFEST": str(manifest_with(tmp_path, "weather", 8095)),
        "ORCHESTRATOR_CONFIG": str(config_file(tmp_path, {"search": {"url": "http://s"}})),
        "WEATHER_URL": "http://weather-agent:8080",
    }
    config = load_orchestrator_config(environ)
    assert config.agents["weather"].url == "http://weather-agent:8080"
    assert config.agents["search"].url == "http://s"
    sources = agent_sources(config.agents, environ, "orchestrator.yaml", ["weather", "calculator"])
    assert sources["weather"] == "$WEATHER_URL" and sources["calculator"] == "functions.yaml"


def test_a_file_without_manifest_agents_has_only_its_own(tmp_path: Path) -> None:
    path = tmp_path / "orchestrator.yaml"
    path.write_text(yaml.safe_dump({"gateway": {"url": "http://g"}, "agents": {}}))
    assert load_orchestrator_config({"ORCHESTRATOR_CONFIG": str(path)}).agents == {}
