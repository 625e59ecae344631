"""The gateway's configuration: the shipped file works, and a bad one stops start-up with a
message naming the file, the key and the problem."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from shared.errors import ConfigError
from tests.gateway.support import (
    BASE_CONFIG,
    ServedGateway,
    create_gateway_app,
    merged,
    request_body,
    write_config,
)


def test_shipped_config_loads_and_answers_offline(
    hermetic_environ: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("GATEWAY_CONFIG", raising=False)
    shipped = ServedGateway(create_gateway_app())
    try:
        routes = shipped.http().get("/health").json()["routes"]
        answer = shipped.http().post("/v1/messages", json=request_body("default"))
    finally:
        shipped.stop()

    assert {"default", "fast", "local"} <= set(routes)
    assert answer.headers["x-gateway-provider"] == "local"


def bad_config(routes: Any = None, **top: Any) -> dict[str, Any]:
    config = merged(BASE_CONFIG, top)
    if routes is not None:
        config["routes"] = routes
    return config


BAD_CONFIGS = {
    "timeout not a number": (
        bad_config({"default": [{"provider": "anthropic", "model": "m", "timeout_s": "abc"}]}),
        ["routes.default.deployments.0.timeout_s", "valid number"],
    ),
    "unknown provider": (
        bad_config({"default": [{"provider": "openai", "model": "gpt"}]}),
        ["routes.default.deployments.0.provider", "'anthropic', 'bedrock' or 'local'"],
    ),
    "route with no deployments": (
        bad_config({"default": [], "local": [{"provider": "local", "model": "m"}]}),
        ["routes", "route 'default' has no deployments"],
    ),
    "no routes": (bad_config({}), ["routes", "at least one route"]),
    "base_url on bedrock": (
        bad_config({"default": [{"provider": "bedrock", "model": "m", "base_url": "http://x"}]}),
        ["routes.default.deployments.0", "base_url is supported for the anthropic provider only"],
    ),
    "unknown key": (bad_config(retries={"max_attempts": 2}), ["retries", "Extra inputs"]),
    "negative backoff": (bad_config(retry={"base_delay_s": -1}), ["retry.base_delay_s"]),
    "alias to no route": (
        bad_config(aliases={"claude-*": "nowhere"}),
        ["alias 'claude-*' names no route: 'nowhere'"],
    ),
    "unknown route option": (
        bad_config({"default": {"deployments": [{"provider": "local", "model": "m"}], "x": 1}}),
        ["routes.default.x", "Extra inputs"],
    ),
}


@pytest.mark.parametrize(("config", "words"), BAD_CONFIGS.values(), ids=BAD_CONFIGS.keys())
def test_bad_config_stops_start_up(
    hermetic_environ: None,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    config: dict[str, Any],
    words: list[str],
) -> None:
    path = write_config(tmp_path, config)
    monkeypatch.setenv("GATEWAY_CONFIG", str(path))

    with pytest.raises(ConfigError) as caught:
        create_gateway_app()

    assert str(path) in caught.value.message
    for word in words:
        assert word in caught.value.message


def test_bad_override_names_the_variable(
    hermetic_environ: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("GATEWAY_CONFIG", str(write_config(tmp_path, BASE_CONFIG)))
    monkeypatch.setenv("GATEWAY_DEADLINE_S", "soon")

    with pytest.raises(ConfigError, match=r"deadline_s \(from \$GATEWAY_DEADLINE_S\)"):
        create_gateway_app()


@pytest.mark.parametrize(
    ("text", "problem"),
    [("routes: [unclosed", "not valid YAML"), ("- a\n- b\n", "top level must be a mapping")],
)
def test_unreadable_config_stops_start_up(
    hermetic_environ: None,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    text: str,
    problem: str,
) -> None:
    monkeypatch.setenv("GATEWAY_CONFIG", str(write_config(tmp_path, text)))

    with pytest.raises(ConfigError, match=problem):
        create_gateway_app()


def test_missing_config_file_stops_start_up(
    hermetic_environ: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("GATEWAY_CONFIG", str(tmp_path / "absent.yaml"))

    with pytest.raises(ConfigError, match="absent.yaml: cannot read config file"):
        create_gateway_app()
