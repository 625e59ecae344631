"""``agentorch new agent NAME`` in a copy of the repository: the agent it writes passes its own
test, and the emulator, the generated files and the orchestrator all pick it up."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from emulator.compose import REPO_ROOT, load_project
from emulator.generate import stale
from emulator.network import free_port
from emulator.process import FunctionProcess, function_environment, spawn, wait_healthy
from emulator.scaffold import new_agent
from shared.errors import ConfigError
from shared.manifest import load_manifest
from tests.served import refused_url

NAME = "wordcount"
COPIED = (
    "functions",
    "shared",
    "emulator",
    "config",
    "functions.yaml",
    "Dockerfile",
    "DEPLOY.md",
    "deploy",
    "docker-compose.yml",
    "docker-compose.prod.yml",
    ".env.docker",
    "docker/lib.sh",
    "tests/__init__.py",
    "tests/agents/__init__.py",
    "tests/agents/support.py",
)


def run(copy: Path, *command: str) -> subprocess.CompletedProcess[str]:
    """``python COMMAND`` in the copy, importing the copy's packages, not this checkout's."""
    return subprocess.run(
        [sys.executable, *command],
        cwd=copy,
        env=function_environment(0, root=copy),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture(scope="module")
def copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("repo")
    # Bytecode too (copy2 keeps the sources' times, so it stays valid): the copy's processes
    # then load the modules `make test` compiled instead of compiling them again.
    for name in COPIED:
        source, target = REPO_ROOT / name, root / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target)
        else:
            shutil.copy2(source, target)
    done = run(root, "-m", "emulator.cli", "new", "agent", NAME)
    assert done.returncode == 0, done.stderr
    assert f"agent {NAME!r} is ready" in done.stdout
    return root


@pytest.mark.processes
def test_the_new_agents_own_test_passes(copy: Path) -> None:
    done = run(copy, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"tests/agents/{NAME}")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "2 passed" in done.stdout


def test_it_is_in_the_manifest_and_every_generated_file(copy: Path) -> None:
    manifest = load_manifest(copy / "functions.yaml")
    agent = manifest.function(NAME)
    assert agent.port == max(a.port for a in load_manifest().agents) + 1
    assert stale(copy) == []
    service = load_project(copy / "docker-compose.yml", environ={}).service(f"{NAME}-agent")
    assert (service.source, service.target, service.port) == (agent.main, NAME, agent.port)
    assert f"FROM core AS {NAME}\n" in (copy / "Dockerfile").read_text(encoding="utf-8")
    assert f"{NAME.upper()}_URL=" in (copy / ".env.docker").read_text(encoding="utf-8")
    assert (copy / "deploy" / "cloudrun" / f"{NAME}-agent.yaml").is_file()
    assert f"{NAME.upper()}_URL" in (copy / "DEPLOY.md").read_text(encoding="utf-8")


def tree(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` (and each folder, as empty), to compare before and after."""
    return {
        str(path.relative_to(root)): path.read_bytes() if path.is_file() else b""
        for path in sorted(root.rglob("*"))
        if "__pycache__" not in path.parts
    }


@pytest.mark.parametrize(
    ("name", "says"),
    [
        ("the agent", "use 1 to 64 letters"),
        ("Geo-v2", "a local agent is a Python package too"),
        ("wx\n", "use 1 to 64 letters"),  # `$` matches before a trailing newline
        ("../evil", "use 1 to 64 letters"),
        ("class", "not a Python keyword"),
        ("import", "not a Python keyword"),
        (NAME, f"functions.yaml already has a function {NAME!r}"),
        ("gateway", "already has a function 'gateway'"),
        ("base", "the Dockerfile already has a stage 'base'"),
        ("core", "the Dockerfile already has a stage 'core'"),
        ("interactive", "the Dockerfile already has a stage 'interactive'"),
        ("fakes", "the Dockerfile already has a stage 'fakes'"),
        ("support", "tests/agents/support.py already exists"),
    ],
)
def test_bad_and_taken_names_are_refused_and_nothing_is_written(
    copy: Path, name: str, says: str
) -> None:
    before = tree(copy)
    with pytest.raises(ConfigError, match=says):
        new_agent(copy, name)
    assert tree(copy) == before


def test_a_name_whose_image_or_service_compose_has_is_refused(copy: Path) -> None:
    compose = copy / "docker-compose.yml"
    original = compose.read_text(encoding="utf-8")
    try:
        compose.write_text(original.replace("fake-bedrock:", "other-agent:"), encoding="utf-8")
        with pytest.raises(ConfigError, match="the compose files already have the service"):
            new_agent(copy, "other")
    finally:
        compose.write_text(original, encoding="utf-8")


def test_an_existing_test_folder_is_not_overwritten(copy: Path) -> None:
    mine = copy / "tests" / "agents" / "mine" / "test_agent.py"
    mine.parent.mkdir(parents=True)
    mine.write_text("# my own test\n", encoding="utf-8")
    before = tree(copy)
    try:
        with pytest.raises(ConfigError, match="tests/agents/mine already exists"):
            new_agent(copy, "mine")
        assert tree(copy) == before
    finally:
        shutil.rmtree(mine.parent)


def test_a_manifest_the_new_entry_breaks_writes_nothing(copy: Path) -> None:
    manifest = copy / "functions.yaml"
    original = manifest.read_text(encoding="utf-8")
    # The next free port is taken by nothing, but the image the scaffold picks is.
    manifest.write_text(
        original.replace("image: agentorch/tavily", "image: agentorch/late"), encoding="utf-8"
    )
    before = tree(copy)
    try:
        with pytest.raises(ConfigError, match="two functions have image 'agentorch/late'"):
            new_agent(copy, "late")
        assert tree(copy) == before
    finally:
        manifest.write_text(original, encoding="utf-8")


OFFLINE = {
    "ANTHROPIC_API_KEY": "",
    "AWS_ACCESS_KEY_ID": "",
    "AWS_SECRET_ACCESS_KEY": "",
    "AWS_BEARER_TOKEN_BEDROCK": "",
    "GATEWAY_API_KEYS": "",
}


@pytest.fixture(scope="module")
def served(copy: Path) -> Iterator[str]:
    """The new agent and the orchestrator of the copy, on free ports; the orchestrator's URL."""
    started: list[FunctionProcess] = []

    def start(target: str, source: str, env: dict[str, str]) -> str:
        port = free_port()
        environ = function_environment(port, {"WORKERS": "1", "LOG_LEVEL": "WARNING", **env})
        environ = function_environment(port, environ, root=copy)
        process = FunctionProcess(target, port, spawn(copy / source, target, port, environ))
        started.append(process)
        wait_healthy(process.url, process.process, 30.0)
        return process.url

    try:
        agent = start(NAME, f"functions/agents/{NAME}/main.py", {})
        # The gateway answers from its offline model (no keys: the copy's environment has none).
        gateway = start("gateway", "functions/gateway/main.py", OFFLINE)
        # The other agents are not started: pinned where nothing answers.
        others = {a.url_variable: refused_url() for a in load_manifest().agents}
        env = {**others, "GATEWAY_URL": gateway, f"{NAME.upper()}_URL": agent}
        yield start("orchestrator", "functions/orchestrator/main.py", env)
    finally:
        for process in started:
            process.stop()


@pytest.mark.processes
def test_the_orchestrator_lists_it_among_its_agents(served: str) -> None:
    with urllib.request.urlopen(f"{served}/agents", timeout=10) as response:
        listed = {agent["name"]: agent for agent in json.load(response)["agents"]}
    assert set(listed) == {a.name for a in load_manifest().agents} | {NAME}
    assert listed[NAME]["reachable"] is True and listed[NAME]["source"] == f"${NAME.upper()}_URL"
    # The tool definition the orchestrator offers the model, from the agent's GET /schema.
    assert listed[NAME]["status"] == "available" and listed[NAME]["tool"]["name"] == NAME
    assert "Counts the words" in listed[NAME]["tool"]["description"]
    assert listed["calculator"]["reachable"] is False


@pytest.mark.processes
def test_a_task_that_names_it_reaches_it_through_the_offline_model(served: str) -> None:
    task = json.dumps({"task": f"Use {NAME} on: one two three four"}).encode()
    request = urllib.request.Request(
        f"{served}/", data=task, headers={"content-type": "application/json"}, method="POST"
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        run = json.load(response)
    assert run["status"] == "completed", run
    [call] = [step for step in run["steps"] if step["kind"] == "agent"]
    assert call["name"] == NAME and call["outcome"]["result"] == {"words": 4}, call
    assert "4" in run["answer"], run
