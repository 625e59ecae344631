"""``FunctionSettings``: defaults, then the YAML file, then the environment; every problem stops
start-up naming the file, the key and the variable it came from."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import BaseModel, Field

from shared.errors import ConfigError
from shared.settings import FunctionSettings, SettingsFile


class Deployment(BaseModel):
    provider: str
    timeout_s: float = 30.0


class Server(BaseModel):
    port: int = 8080
    debug: bool = False


class SampleSettings(FunctionSettings):
    file = SettingsFile("SAMPLE_CONFIG", "sample.yaml")
    env = {"SAMPLE_PORT": "server.port", "SAMPLE_DEBUG": "server.debug", "SAMPLE_NAME": "name"}

    name: str
    server: Server = Server()
    routes: dict[str, list[Deployment]] = {}


class EnvOnly(FunctionSettings):
    """Settings with no file: an agent configured by its environment alone."""

    env = {"SAMPLE_TIMEOUT_S": "timeout_s", "SAMPLE_KEY": "key"}

    timeout_s: float = Field(default=12.0, gt=0, le=300)
    key: str | None = None


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


def write(tmp_path: Path, text: str, name: str = "sample.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def load(path: Path, **environ: str) -> SampleSettings:
    return SampleSettings.load({"SAMPLE_CONFIG": str(path), **environ})


def test_the_file_becomes_the_settings(tmp_path: Path) -> None:
    settings = load(write(tmp_path, VALID))

    assert settings.name == "gateway"
    assert settings.server == Server(port=8585, debug=False)
    assert [d.provider for d in settings.routes["default"]] == ["anthropic", "local"]
    assert settings.routes["default"][0].timeout_s == 20.0


def test_the_environment_wins_over_the_file_which_wins_over_the_defaults(tmp_path: Path) -> None:
    settings = load(write(tmp_path, VALID), SAMPLE_PORT="9090", SAMPLE_DEBUG="true")

    assert settings.server.port == 9090 and settings.server.debug is True  # env over file
    assert settings.routes["default"][1].timeout_s == 30.0  # the default, the file is silent


@pytest.mark.parametrize("empty", ["", "  "])
def test_an_empty_variable_means_the_default(tmp_path: Path, empty: str) -> None:
    # Compose passes ${X:-} as an empty string for every variable the user left unset.
    settings = load(write(tmp_path, VALID), SAMPLE_NAME=empty, SAMPLE_PORT=empty)
    assert (settings.name, settings.server.port) == ("gateway", 8585)
    assert EnvOnly.load({"SAMPLE_TIMEOUT_S": empty, "SAMPLE_KEY": empty}) == EnvOnly()


def test_a_variable_creates_the_sections_the_file_leaves_out(tmp_path: Path) -> None:
    assert load(write(tmp_path, "name: x\n"), SAMPLE_PORT="7000").server.port == 7000


def test_values_from_the_environment_are_stripped() -> None:
    assert EnvOnly.load({"SAMPLE_KEY": " k ", "SAMPLE_TIMEOUT_S": " 3 "}) == EnvOnly(
        key="k", timeout_s=3
    )


def test_os_environ_is_the_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SAMPLE_CONFIG", str(write(tmp_path, VALID)))
    monkeypatch.setenv("SAMPLE_PORT", "6000")
    assert SampleSettings.load().server.port == 6000


def test_the_file_is_found_in_config_dir(tmp_path: Path) -> None:
    write(tmp_path, "name: from-the-bundle\n")
    assert SampleSettings.load({"CONFIG_DIR": str(tmp_path)}).name == "from-the-bundle"


def test_a_bad_variable_names_the_file_key_and_variable(tmp_path: Path) -> None:
    path = write(tmp_path, VALID)

    with pytest.raises(ConfigError) as caught:
        load(path, SAMPLE_PORT="lots")

    assert str(caught.value) == (
        f"{path}: server.port (from $SAMPLE_PORT): "
        "Input should be a valid integer, unable to parse string as an integer"
    )


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        ("soon", "Input should be a valid number"),
        ("1000", "Input should be less than or equal to 300"),
    ],
)
def test_a_bad_variable_with_no_file_names_the_variable_and_value(raw: str, problem: str) -> None:
    with pytest.raises(ConfigError) as caught:
        EnvOnly.load({"SAMPLE_TIMEOUT_S": raw})

    assert str(caught.value).startswith(f"$SAMPLE_TIMEOUT_S={raw!r}: {problem}")


def test_a_bad_value_in_the_file_names_the_file_and_key(tmp_path: Path) -> None:
    path = write(tmp_path, VALID.replace("timeout_s: 20", "timeout_s: soon"))

    with pytest.raises(ConfigError) as caught:
        load(path)

    assert str(caught.value) == (
        f"{path}: routes.default.0.timeout_s: "
        "Input should be a valid number, unable to parse string as a number"
    )


def test_every_problem_is_reported(tmp_path: Path) -> None:
    path = write(tmp_path, "server:\n  port: many\nextra_key: 1\n")

    with pytest.raises(ConfigError) as caught:
        load(path)

    message = str(caught.value)
    for fragment in ("name: Field required", "server.port:", "extra_key: Extra inputs"):
        assert f"{path}: {fragment}" in message


def test_bad_yaml_names_the_file_and_the_line(tmp_path: Path) -> None:
    path = write(tmp_path, "name: gateway\nserver: [unclosed\n")

    with pytest.raises(ConfigError) as caught:
        load(path)

    message = str(caught.value)
    assert message.startswith(f"{path}: not valid YAML")
    assert "line" in message


@pytest.mark.parametrize(("text", "kind"), [("- a\n- b\n", "list"), ("just text\n", "str")])
def test_the_top_level_must_be_a_mapping(tmp_path: Path, text: str, kind: str) -> None:
    path = write(tmp_path, text)

    with pytest.raises(ConfigError, match=f"top level must be a mapping, got {kind}") as caught:
        load(path)

    assert str(path) in str(caught.value)


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    path = tmp_path / "absent.yaml"

    with pytest.raises(ConfigError, match="cannot read config file") as caught:
        load(path)

    assert str(path) in str(caught.value)


def test_an_empty_file_is_an_empty_mapping(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="name: Field required"):
        load(write(tmp_path, ""))


def test_settings_with_no_file_read_no_file(tmp_path: Path) -> None:
    # CONFIG_DIR points at nothing usable: a file-less settings class never looks there.
    assert EnvOnly.load({"CONFIG_DIR": str(tmp_path)}) == EnvOnly()


def test_unknown_keys_are_refused() -> None:
    with pytest.raises(ValueError, match="Extra inputs"):
        EnvOnly.model_validate({"timeout": 3})
