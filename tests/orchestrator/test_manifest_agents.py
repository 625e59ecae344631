"""The orchestrator's built-in agents come from functions.yaml (``manifest_agents: true``)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from functions.orchestrator.agent_sources import agent_sources
from functions.orchestrator.config import load_orchestrator_config
from shared.config import REPO_ROOT
from shared.errors import ConfigError
from shared.manifest import load_manifest


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
    manifest = manifest_with(tmp_path, "wx_fixture", 8095)
    config = load_orchestrator_config({"FUNCTIONS_MANIFEST": str(manifest)})
    assert config.agents["wx_fixture"].url == "http://localhost:8095"
    assert list(config.agents)[:4] == ["calculator", "search", "data_processor", "tavily"]


def test_its_url_variable_and_the_file_may_change_it(tmp_path: Path) -> None:
    environ = {
        "FUNCTIONS_MANIFEST": str(manifest_with(tmp_path, "wx_fixture", 8095)),
        "ORCHESTRATOR_CONFIG": str(config_file(tmp_path, {"search": {"url": "http://s"}})),
        "WX_FIXTURE_URL": "http://wx-fixture-agent:8080",
    }
    config = load_orchestrator_config(environ)
    assert config.agents["wx_fixture"].url == "http://wx-fixture-agent:8080"
    assert config.agents["search"].url == "http://s"
    sources = agent_sources(
        config.agents, environ, "orchestrator.yaml", ["wx_fixture", "calculator"]
    )
    assert sources["wx_fixture"] == "$WX_FIXTURE_URL" and sources["calculator"] == "functions.yaml"


def test_a_file_without_manifest_agents_has_only_its_own(tmp_path: Path) -> None:
    path = tmp_path / "orchestrator.yaml"
    path.write_text(yaml.safe_dump({"gateway": {"url": "http://g"}, "agents": {}}))
    assert load_orchestrator_config({"ORCHESTRATOR_CONFIG": str(path)}).agents == {}


def orchestrator_yaml(tmp_path: Path, **settings: object) -> dict[str, str]:
    path = tmp_path / "orchestrator.yaml"
    path.write_text(yaml.safe_dump({"gateway": {"url": "http://g.invalid"}, **settings}))
    return {"ORCHESTRATOR_CONFIG": str(path)}


@pytest.mark.parametrize(("given", "builtin"), [("false", False), ("no", False), ("true", True)])
def test_manifest_agents_is_read_as_a_boolean(tmp_path: Path, given: str, builtin: bool) -> None:
    config = load_orchestrator_config(orchestrator_yaml(tmp_path, manifest_agents=given))
    assert config.manifest_agents is builtin
    assert ("calculator" in config.agents) is builtin


def test_a_manifest_agents_that_is_no_boolean_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"orchestrator.yaml: manifest_agents: .*boolean"):
        load_orchestrator_config(orchestrator_yaml(tmp_path, manifest_agents="maybe"))


def test_a_built_in_agent_may_be_given_only_a_timeout(tmp_path: Path) -> None:
    environ = orchestrator_yaml(
        tmp_path, manifest_agents=True, agents={"calculator": {"timeout_s": 5}}
    )
    config = load_orchestrator_config(environ)
    local = load_manifest().function("calculator").local_url
    assert (config.agents["calculator"].url, config.agents["calculator"].timeout_s) == (local, 5)
    moved = load_orchestrator_config({**environ, "CALCULATOR_URL": "http://calc.invalid"})
    assert moved.agents["calculator"].url == "http://calc.invalid"
    assert moved.agents["calculator"].timeout_s == 5


@pytest.mark.parametrize(
    ("agents", "says"),
    [
        ({"gateway": {"url": "http://x"}}, r"agent name 'gateway': its URL variable \$GATEWAY_URL"),
        (
            {"geo-v2": {"url": "http://a"}, "geo_v2": {"url": "http://b"}},
            r"agents 'geo-v2' and 'geo_v2' would share the URL variable \$GEO_V2_URL",
        ),
    ],
)
def test_an_agent_whose_url_variable_is_taken_is_refused(
    tmp_path: Path, agents: dict[str, object], says: str
) -> None:
    with pytest.raises(ConfigError, match=says):
        load_orchestrator_config(orchestrator_yaml(tmp_path, agents=agents))
