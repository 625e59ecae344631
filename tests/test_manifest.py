"""functions.yaml is the one list of functions: it loads, and what derives from it agrees.

The generated parts of the Dockerfile, the compose files, .env.docker and DEPLOY.md, and the
deploy definitions in deploy/, are current (`make manifest` rewrites them); the hand-written
services (gateway, orchestrator) and every function's folder match their entries.
"""

from __future__ import annotations

import shlex
import tomllib
from pathlib import Path

import pytest
import yaml

from emulator import definitions
from emulator.compose import REPO_ROOT, load_project
from emulator.generate import COMMAND, DOCS, GENERATED, generate, render, shell_lists, stale
from shared.errors import ConfigError
from shared.manifest import load_manifest

MANIFEST = load_manifest()


def test_the_generated_files_are_current() -> None:
    files = [str(path.relative_to(REPO_ROOT)) for path in stale(REPO_ROOT)]
    assert not files, f"{', '.join(files)} differ from functions.yaml: run `{COMMAND}`"


def test_every_function_runs_on_the_emulator_as_the_manifest_says() -> None:
    services = load_project(environ={}).services
    for function in MANIFEST.functions:
        service = services[function.service]
        assert (service.source, service.target, service.port) == (
            function.main,
            function.target,
            function.port,
        ), f"docker-compose.yml: services.{function.service} disagrees with functions.yaml"


def test_every_function_folder_exists_with_its_target() -> None:
    for function in MANIFEST.functions:
        main = REPO_ROOT / function.main
        assert main.is_file(), f"functions.yaml: {function.name}: no {function.main}"
        assert f"def {function.target}(" in main.read_text(encoding="utf-8")
        if function.extra:
            assert (REPO_ROOT / function.source / "requirements.txt").is_file()
        for path in function.config:
            assert (REPO_ROOT / path).exists(), f"functions.yaml: {function.name}: no {path}"


def test_the_images_and_limits_are_the_manifests() -> None:
    compose = yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text(encoding="utf-8"))
    production = yaml.safe_load((REPO_ROOT / "docker-compose.prod.yml").read_text(encoding="utf-8"))
    for function in MANIFEST.functions:
        service = compose["services"][function.service]
        assert service["image"] == f"{function.image}:${{TAG:-latest}}"
        assert service["build"]["target"] == function.target
        limits = production["services"][function.service]["deploy"]["resources"]["limits"]
        assert limits == MANIFEST.limits(function).model_dump()


def test_the_orchestrator_waits_for_every_agent() -> None:
    orchestrator = load_project(environ={}).service("orchestrator")
    waits = {d.service for d in orchestrator.depends_on if d.condition == "service_healthy"}
    assert {agent.service for agent in MANIFEST.agents} <= waits
    for agent in MANIFEST.agents:
        assert orchestrator.environment[agent.url_variable] == agent.service_url


def test_a_stale_file_is_named_and_generate_rewrites_it(tmp_path: Path) -> None:
    for name in ("functions.yaml", *GENERATED, *DOCS, *definitions.files(MANIFEST)):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes((REPO_ROOT / name).read_bytes())
    dockerfile = tmp_path / "Dockerfile"
    dockerfile.write_text(dockerfile.read_text().replace("FROM core AS search", "FROM core AS x"))
    assert stale(tmp_path) == [dockerfile]
    assert generate(tmp_path) == [dockerfile]
    assert stale(tmp_path) == [] and "FROM core AS search" in dockerfile.read_text()


def test_a_removed_functions_definitions_are_stale_and_deleted(tmp_path: Path) -> None:
    for name in ("functions.yaml", *GENERATED, *DOCS, *definitions.files(MANIFEST)):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes((REPO_ROOT / name).read_bytes())
    leftover = tmp_path / "deploy" / "cloudrun" / "gone-agent.yaml"
    leftover.write_text("kind: Service\n")
    (tmp_path / "deploy" / "knative" / "tavily-agent.yaml").unlink()
    assert set(stale(tmp_path)) == {leftover, tmp_path / "deploy/knative/tavily-agent.yaml"}
    generate(tmp_path)
    assert stale(tmp_path) == [] and not leftover.exists()


def test_a_file_without_its_markers_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"Dockerfile: no markers .*agent-stages"):
        render("FROM base\n", MANIFEST, {"agent-stages": lambda _: []}, "Dockerfile")


def test_the_manifest_lists_each_function_once() -> None:
    assert [f.kind for f in MANIFEST.functions].count("gateway") == 1
    assert MANIFEST.of_kind("orchestrator").port == 8080
    names = [a.name for a in MANIFEST.agents]
    assert names[:4] == ["calculator", "search", "data_processor", "tavily"]
    assert MANIFEST.function("tavily").url_variable == "TAVILY_URL"
    assert MANIFEST.limits(MANIFEST.function("search")) == MANIFEST.agent_limits


@pytest.mark.parametrize(
    ("change", "says"),
    [
        ({"port": 8585}, "two functions have port 8585"),
        ({"name": "no good"}, r"functions\[no good\].name: String should match"),
        ({"kind": "robot"}, r"functions\[calculator\].kind"),
        ({"name": "data-processor"}, "two functions have url_variable 'DATA_PROCESSOR_URL'"),
        ({"limits": {"cpus": "lots", "memory": "1G"}}, r"functions\[calculator\].limits.cpus"),
        # Nothing a generated file (docker/lib.sh is sourced by every docker/ script, the
        # Dockerfile, the compose files) would run or misread: each refused, naming the field.
        ({"image": "agentorch/calc$(touch /tmp/x)"}, r"functions\[calculator\].image: String"),
        ({"image": "agentorch/calc x"}, r"functions\[calculator\].image: String"),
        ({"source": "functions/`id`"}, r"functions\[calculator\].source: String"),
        ({"source": "../elsewhere"}, r"functions\[calculator\].source: String"),
        ({"source": "/etc"}, r"functions\[calculator\].source: String"),
        ({"source": "functions/a b"}, r"functions\[calculator\].source: String"),
        ({"config": ["config/../../x"]}, r"functions\[calculator\].config.0: String"),
        ({"config": ["config/$(id)"]}, r"functions\[calculator\].config.0: String"),
        ({"environment": {"KEY; rm": "x"}}, r"functions\[calculator\].environment.KEY; rm"),
        ({"environment": {"KEY": "x\nother: y"}}, r"functions\[calculator\].environment.KEY"),
    ],
)
def test_a_bad_manifest_names_the_function_and_key(
    tmp_path: Path, change: dict[str, object], says: str
) -> None:
    data = yaml.safe_load((REPO_ROOT / "functions.yaml").read_text(encoding="utf-8"))
    calculator = next(f for f in data["functions"] if f["name"] == "calculator")
    calculator.update(change)
    path = tmp_path / "functions.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError, match=says):
        load_manifest(path)


def test_the_shell_lists_are_quoted_for_the_shell() -> None:
    manifest = MANIFEST.model_copy(
        update={"functions": [MANIFEST.functions[0].model_copy(update={"image": "a b;c"})]}
    )
    [_, _, images] = shell_lists(manifest)
    assert images == "FUNCTION_IMAGES=('a b;c')"
    assert shlex.split(images.partition("=")[2].strip("()")) == ["a b;c"]


def test_the_dockerfile_builds_every_function_and_ships_the_manifest_to_the_orchestrator() -> None:
    dockerfile = (REPO_ROOT / "Dockerfile").read_text(encoding="utf-8")
    stages = dockerfile.split("\nFROM ")
    for function in MANIFEST.functions:
        [stage] = [s for s in stages if s.startswith(f"core AS {function.target}\n")]
        assert f'"--source", "{function.main}", "--target", "{function.target}"' in stage
        for path in function.config:
            assert f"COPY {path} " in stage, f"Dockerfile: {function.target} lacks {path}"
    [orchestrator] = [s for s in stages if s.startswith("core AS orchestrator\n")]
    assert "COPY functions.yaml functions.yaml" in orchestrator  # its built-in agents


def test_every_functions_extra_is_in_pyproject_and_in_dev() -> None:
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    extras = project["optional-dependencies"]
    [dev_line] = [line for line in extras["dev"] if line.startswith("agent-orchestrator[")]
    in_dev = set(dev_line.split("[", 1)[1].rstrip("]").split(","))
    for function in MANIFEST.functions:
        if function.extra is not None:
            assert function.extra in extras, f"pyproject.toml has no extra {function.extra!r}"
            assert function.extra in in_dev, f"pyproject.toml: dev lacks {function.extra!r}"
