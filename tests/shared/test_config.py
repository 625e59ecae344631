"""Where config files are found: ``$CONFIG_DIR``, a file's own variable, the repository's
``config/`` (reading them into settings: tests/shared/test_settings.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from shared.config import DEFAULT_CONFIG_DIR, config_dir, config_path
from shared.errors import ConfigError


def write(tmp_path: Path, text: str, name: str = "sample.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_config_path_prefers_the_variable(tmp_path: Path) -> None:
    default = config_path("SAMPLE_CONFIG", "gateway.yaml", environ={})
    assert default == DEFAULT_CONFIG_DIR / "gateway.yaml"
    assert default.is_file()  # the repository's own config/
    chosen = tmp_path / "mine.yaml"
    assert config_path("SAMPLE_CONFIG", "gateway.yaml", environ={"SAMPLE_CONFIG": str(chosen)}) == (
        chosen
    )


def test_config_dir_moves_every_config_file(tmp_path: Path) -> None:
    environ = {"CONFIG_DIR": str(tmp_path)}
    assert config_dir(environ) == tmp_path
    assert config_path("GATEWAY_CONFIG", "gateway.yaml", environ) == tmp_path / "gateway.yaml"


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
    from functions.agents.search.config import SearchConfig
    from functions.gateway.config import GatewayConfig

    environ = {"CONFIG_DIR": str(tmp_path)}
    write(tmp_path, "corpus_dir: /srv/corpus\n", "search.yaml")
    write(tmp_path, "routes: {}\n", "gateway.yaml")
    assert str(SearchConfig.load(environ).corpus_path()) == "/srv/corpus"
    with pytest.raises(ConfigError, match=f"{tmp_path / 'gateway.yaml'}: routes"):
        GatewayConfig.load(environ)
