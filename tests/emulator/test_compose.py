"""docker-compose.yml as the function manifest: x-function, environment, profiles, bad files."""

from __future__ import annotations

from pathlib import Path

import pytest

from emulator.compose import DEFAULT_COMPOSE_FILE, load_project
from functions.orchestrator.config import load_orchestrator_config
from shared.config import gateway_client_key, gateway_keys
from shared.errors import ConfigError
from shared.manifest import load_manifest
from tests.emulator.support import probe_service, write_compose

FUNCTIONS = {f.target: f"{f.source}/main.py" for f in load_manifest().functions}


def test_the_repository_compose_file_lists_every_function_once() -> None:
    project = load_project(DEFAULT_COMPOSE_FILE, environ={})
    targets = {s.target: s.source for s in project.services.values()}
    assert targets == FUNCTIONS
    assert all((project.directory / source).is_file() for source in targets.values())
    assert project.by_target("gateway").port == 8585
    assert project.by_target("orchestrator").port == 8080
    order = [s.name for s in project.start_order()]
    assert order[-1] == "orchestrator"  # after the gateway and every agent it depends on
    orchestrator = project.by_target("orchestrator")
    assert {d.condition for d in orchestrator.depends_on} == {"service_healthy"}
    assert orchestrator.environment["GATEWAY_URL"] == "http://model-gateway:8585"


def test_x_function_environment_and_defaults(tmp_path: Path) -> None:
    (tmp_path / "common.env").write_text("# shared\nLEVEL=debug\nQUOTED='a b'\nOVERRIDDEN=file\n")
    path = write_compose(
        tmp_path,
        {
            "api": probe_service(
                8100,
                env_file="common.env",
                environment={"OVERRIDDEN": "compose", "KEY": "${SECRET:-none}", "N": 3},
                restart="on-failure:3",
            ),
            "worker": {
                "x-function": {"source": "w.py", "target": "work"},
                "ports": ["127.0.0.1:9100:8080"],
                "environment": ["FROM_SHELL", "MISSING", "PLAIN=1"],
                "depends_on": ["api"],
            },
            "database": {"image": "postgres"},  # container-only: not a function
        },
    )
    project = load_project(path, environ={"SECRET": "s3", "FROM_SHELL": "yes"})

    api, worker = project.service("api"), project.service("worker")
    assert api.environment["LEVEL"] == "debug" and api.environment["QUOTED"] == "a b"
    assert api.environment["OVERRIDDEN"] == "compose"
    assert api.environment["KEY"] == "s3" and api.environment["N"] == "3"
    assert api.restart == "on-failure"
    assert api.healthcheck is not None and api.healthcheck.path == "/health"
    assert api.healthcheck.interval_s == 1.0
    assert worker.port == 9100  # the published host port when x-function names none
    assert worker.environment == {"FROM_SHELL": "yes", "PLAIN": "1"}
    assert worker.healthcheck is None
    assert project.skipped == ("database",)
    assert [s.name for s in project.start_order()] == ["api", "worker"]


def test_x_function_environment_overrides_for_the_emulator_alone(tmp_path: Path) -> None:
    # A container's path (a log file on a volume) means nothing on the host.
    path = write_compose(
        tmp_path,
        {
            "worker": {
                "x-function": {
                    "source": "w.py",
                    "target": "work",
                    "port": 9101,
                    "environment": {"LOG_FILE": "", "EXTRA": "${HOME_ONLY:-x}"},
                },
                "environment": {"LOG_FILE": "/var/log/w.log", "KEPT": "1"},
            }
        },
    )
    worker = load_project(path, environ={}).service("worker")

    assert worker.environment == {"LOG_FILE": "", "EXTRA": "x", "KEPT": "1"}


def test_the_gateways_log_volume_is_not_the_emulators() -> None:
    gateway = load_project(DEFAULT_COMPOSE_FILE, environ={}).by_target("gateway")
    assert gateway.environment["LOG_FILE"] == ""


def test_profiles_select_services(tmp_path: Path) -> None:
    path = write_compose(
        tmp_path,
        {"always": probe_service(8101), "extra": probe_service(8102, profiles=["debug"])},
    )
    assert list(load_project(path, environ={}).services) == ["always"]
    assert list(load_project(path, profiles=["debug"], environ={}).services) == ["always", "extra"]
    assert list(load_project(path, environ={"COMPOSE_PROFILES": "debug"}).services) == [
        "always",
        "extra",
    ]


def test_dot_env_supplies_variables_the_shell_does_not(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("PORT_VALUE=1\nWHO=dotenv\n")
    path = write_compose(
        tmp_path, {"api": probe_service(environment={"A": "$WHO", "B": "$$literal"})}
    )
    env = load_project(path, environ={"WHO": "shell"}).service("api").environment
    assert env["A"] == "shell" and env["B"] == "$literal"


@pytest.mark.parametrize(
    ("service", "message"),
    [
        ({"x-function": {"target": "t", "port": 1}}, "services.api.x-function.source: required"),
        ({"x-function": {"source": "s", "target": "t", "port": "80"}}, "x-function.port"),
        ({"x-function": {"source": "s", "target": "t"}}, "x-function.port: required"),
        (probe_service(restart="sometimes"), "services.api.restart"),
        (probe_service(depends_on=["ghost"]), "services.api.depends_on.ghost: no such service"),
        (probe_service(depends_on={"api": {"condition": "soon"}}), "depends_on.api.condition"),
        (probe_service(healthcheck={"test": ["CMD", "x"], "interval": "fast"}), "interval"),
        (probe_service(environment={"A": {"nested": 1}}), "services.api.environment.A"),
        (probe_service(env_file="missing.env"), "services.api.env_file: missing.env"),
        (probe_service(environment={"A": "${NEEDED:?set it}"}), "NEEDED is required: set it"),
    ],
)
def test_a_malformed_file_names_the_service_and_key(
    tmp_path: Path, service: dict[str, object], message: str
) -> None:
    path = write_compose(tmp_path, {"api": service})
    with pytest.raises(ConfigError, match=message.replace(".", r"\.").replace("?", r"\?")):
        load_project(path, environ={})


def test_dependency_problems(tmp_path: Path) -> None:
    cycle = write_compose(
        tmp_path,
        {"a": probe_service(8201, depends_on=["b"]), "b": probe_service(8202, depends_on=["a"])},
    )
    with pytest.raises(ConfigError, match="cycle: a -> b -> a"):
        load_project(cycle, environ={}).start_order()
    unhealthy = write_compose(
        tmp_path,
        {
            "a": {"x-function": {"source": "s", "target": "t", "port": 1}},
            "b": probe_service(8202, depends_on={"a": {"condition": "service_healthy"}}),
        },
    )
    with pytest.raises(
        ConfigError, match="depends_on.a: service_healthy, but it has no healthcheck"
    ):
        load_project(unhealthy, environ={})


def test_unreadable_and_invalid_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read the compose file"):
        load_project(tmp_path / "absent.yml", environ={})
    bad = tmp_path / "bad.yml"
    bad.write_text("services: [unclosed")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_project(bad, environ={})
    bad.write_text("services: {}\n")
    with pytest.raises(ConfigError, match="'services' must be a mapping"):
        load_project(bad, environ={})


def test_gateway_keys_in_dot_env_give_the_orchestrator_its_key(tmp_path: Path) -> None:
    # The README's advice (GATEWAY_API_KEYS in .env) must give the gateway its keys and the
    # orchestrator, its client, the first of them: it used to read GATEWAY_API_KEY, never set.
    compose = tmp_path / "docker-compose.yml"
    compose.write_text(DEFAULT_COMPOSE_FILE.read_text())
    (tmp_path / ".env").write_text("GATEWAY_API_KEYS=k-one,k-two\n")
    project = load_project(compose, environ={})
    assert gateway_keys(project.by_target("gateway").environment) == ("k-one", "k-two")
    assert gateway_client_key(project.by_target("orchestrator").environment) == "k-one"


def test_the_client_key_prefers_gateway_api_key() -> None:
    assert gateway_client_key({"GATEWAY_API_KEYS": " a , b ", "GATEWAY_API_KEY": "c"}) == "c"
    assert gateway_client_key({"GATEWAY_API_KEYS": " , b "}) == "b"
    assert gateway_client_key({"GATEWAY_API_KEYS": ""}) is None


def test_agents_in_dot_env_gives_the_orchestrator_its_remote_agents(tmp_path: Path) -> None:
    # A remote agent is one line of .env: `agentorch up` passes it as Compose does.
    compose = tmp_path / "docker-compose.yml"
    compose.write_text(DEFAULT_COMPOSE_FILE.read_text())
    (tmp_path / ".env").write_text("AGENTS=wx-remote=http://127.0.0.1:9/wx\n")
    environment = load_project(compose, environ={}).by_target("orchestrator").environment
    config = load_orchestrator_config(environment)
    assert config.agents["wx-remote"].url == "http://127.0.0.1:9/wx"
    assert config.agents["calculator"].url == environment["CALCULATOR_URL"]
