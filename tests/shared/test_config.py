"""Config loading: YAML into pydantic, environment on top, errors naming file, key and problem."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import BaseModel, ConfigDict

from shared.config import DEFAULT_CONFIG_DIR, config_dir, config_path, load_config
from shared.errors import ConfigError


class Deployment(BaseModel):
    provider: str
    timeout_s: float = 30.0


class Server(BaseModel):
    port: int = 8080
    debug: bool = False


class SampleConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    server: Server = Server()
    routes: dict[str, list[Deployment]] = {}


VALID = """
name: gateway
server:
  port: 8585
routes:
  default:
    - provider: anthropic
      timeout_s: 20
    - provider: local
"""

OVERRIDES = {"SAMPLE_PORT": "server.port", "SAMPLE_DEBUG": "server.debug", "SAMPLE_NAME": "name"}


def write(tmp_path: Path, text: str, name: str = "sample.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_valid_yaml_becomes_the_model(tmp_path: Path) -> None:
    config = load_config(SampleConfig, write(tmp_path, VALID), environ={})

    assert config.name == "gateway"
    assert config.server == Server(port=8585, debug=False)
    assert [d.provider for d in config.routes["default"]] == ["anthropic", "local"]
    assert config.routes["default"][0].timeout_s == 20.0


def test_env_overrides_are_applied_and_coerced(tmp_path: Path) -> None:
    environ = {"SAMPLE_PORT": "9090", "SAMPLE_DEBUG": "true", "SAMPLE_NAME": ""}

    config = load_config(
        SampleConfig, write(tmp_path, VALID), env_overrides=OVERRIDES, environ=environ
    )

    assert config.server.port == 9090 and config.server.debug is True
    assert config.name == "gateway"  # an empty variable does not override


def test_env_override_creates_missing_sections(tmp_path: Path) -> None:
    config = load_config(
        SampleConfig,
        write(tmp_path, "name: x\n"),
        env_overrides=OVERRIDES,
        environ={"SAMPLE_PORT": "7000"},
    )

    assert config.server.port == 7000


def test_os_environ_is_the_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SAMPLE_PORT", "6000")

    config = load_config(SampleConfig, write(tmp_path, VALID), env_overrides=OVERRIDES)

    assert config.server.port == 6000


def test_bad_env_override_names_the_variable(tmp_path: Path) -> None:
    path = write(tmp_path, VALID)

    with pytest.raises(ConfigError) as caught:
        load_config(SampleConfig, path, env_overrides=OVERRIDES, environ={"SAMPLE_PORT": "lots"})

    message = str(caught.value)
    assert str(path) in message
    assert "server.port (from $SAMPLE_PORT)" in message
    assert "valid integer" in message


def test_bad_yaml_names_the_file_and_the_line(tmp_path: Path) -> None:
    path = write(tmp_path, "name: gateway\nserver: [unclosed\n")

    with pytest.raises(ConfigError) as caught:
        load_config(SampleConfig, path, environ={})

    message = str(caught.value)
    assert message.startswith(f"{path}: not valid YAML")
    assert "line" in message


@pytest.mark.parametrize(("text", "kind"), [("- a\n- b\n", "list"), ("just text\n", "str")])
def test_top_level_must_be_a_mapping(tmp_path: Path, text: str, kind: str) -> None:
    path = write(tmp_path, text)

    with pytest.raises(ConfigError, match=f"top level must be a mapping, got {kind}") as caught:
        load_config(SampleConfig, path, environ={})

    assert str(path) in str(caught.value)


def test_missing_file_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "absent.yaml"

    with pytest.raises(ConfigError, match="cannot read config file") as caught:
        load_config(SampleConfig, path, environ={})

    assert str(path) in str(caught.value)


def test_validation_error_names_file_key_and_problem(tmp_path: Path) -> None:
    path = write(tmp_path, VALID.replace("timeout_s: 20", "timeout_s: soon"))

    with pytest.raises(ConfigError) as caught:
        load_config(SampleConfig, path, environ={})

    assert str(caught.value) == (
        f"{path}: routes.default.0.timeout_s: "
        "Input should be a valid number, unable to parse string as a number"
    )


def test_every_problem_is_reported(tmp_path: Path) -> None:
    path = write(tmp_path, "server:\n  port: many\nextra_key: 1\n")

    with pytest.raises(ConfigError) as caught:
        load_config(SampleConfig, path, environ={})

    message = str(caught.value)
    for fragment in ("name: Field required", "server.port:", "extra_key: Extra inputs"):
        assert f"{path}: {fragment}" in message


def test_empty_file_is_an_empty_mapping(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="name: Field required"):
        load_config(SampleConfig, write(tmp_path, ""), environ={})


def test_config_path_prefers_the_variable(tmp_path: Path) -> None:
    default = config_path("SAMPLE_CONFIG", "gateway.yaml", environ={})
    assert default == DEFAULT_CONFIG_DIR / "gateway.yaml"
    assert default.is_file()  # the repository's own config/
    chosen = tmp_path / "mine.yaml"
    assert config_path("SAMPLE_CONFIG", "gateway.yaml", environ={"SAMPLE_CONFIG": str(chosen)}) == (
        chosen
    )


def test_config_dir_moves_every_config_file(tmp_path: Path) -> None:
    write(tmp_path, "name: from-the-bundle\n", "sample.yaml")
    environ = {"CONFIG_DIR": str(tmp_path)}
    assert config_dir(environ) == tmp_path
    assert config_path("GATEWAY_CONFIG", "gateway.yaml", environ) == tmp_path / "gateway.yaml"
    loaded = load_config(SampleConfig, config_path("SAMPLE_CONFIG", "sample.yaml", environ))
    assert loaded.name == "from-the-bundle"


def test_config_dir_is_read_from_the_process_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CONFIG_DIR", str(tmp_path))
    assert config_path("SAMPLE_CONFIG", "sample.yaml") == tmp_path / "sample.yaml"


def test_a_file_variable_wins_over_config_dir(tmp_path: Path) -> None:
    chosen = write(tmp_path, "name: chosen\n", "chosen.yaml")
    environ = {"CONFIG_DIR": str(tmp_path / "elsewhere"), "SAMPLE_CONFIG": str(chosen)}
    assert config_path("SAMPLE_CONFIG", "sample.yaml", environ) == chosen


def test_a_missing_config_dir_names_the_variable(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-folder"
    with pytest.raises(ConfigError, match=rf"CONFIG_DIR={missing}: not a folder"):
        config_path("SAMPLE_CONFIG", "sample.yaml", {"CONFIG_DIR": str(missing)})


def test_the_gateway_and_search_configs_follow_config_dir(tmp_path: Path) -> None:
    from functions.agents.search.config import load_search_config
    from functions.gateway.config import load_gateway_config

    environ = {"CONFIG_DIR": str(tmp_path)}
    write(tmp_path, "corpus_dir: /srv/corpus\n", "search.yaml")
    write(tmp_path, "routes: {}\n", "gateway.yaml")
    assert str(load_search_config(environ).corpus_path()) == "/srv/corpus"
    with pytest.raises(ConfigError, match=f"{tmp_path / 'gateway.yaml'}: routes"):
        load_gateway_config(environ)
