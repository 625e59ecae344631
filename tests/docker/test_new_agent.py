"""A new local agent in Compose with nothing else edited: ``agentorch new agent`` in a copy of
the repository, then the copy's own ``docker/docker-build.sh`` and ``docker-compose.yml``. The
copy's images carry their own tag, so the stack under test elsewhere keeps its images."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from emulator.process import function_environment
from shared.manifest import load_manifest
from tests.docker.conftest import running_stack
from tests.docker.stack import REPO_ROOT, Stack, http

NAME = "wordcount"
TAG = "e2e-new-agent"


def tracked_files() -> list[str]:
    done = subprocess.run(
        ["git", "ls-files", "-z"], cwd=REPO_ROOT, capture_output=True, check=True, timeout=60
    )
    return [name for name in done.stdout.decode().split("\0") if name]


@pytest.fixture(scope="module")
def copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The repository as committed (and as edited, for files git tracks), plus the new agent."""
    root = tmp_path_factory.mktemp("scaffolded")
    for name in tracked_files():
        source = REPO_ROOT / name
        if source.is_file():
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, root / name)
    done = subprocess.run(
        [sys.executable, "-m", "emulator.cli", "new", "agent", NAME],
        cwd=root,
        env=function_environment(0, root=root),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return root


@pytest.fixture(scope="module")
def new_agent_stack(copy: Path) -> Iterator[Stack]:
    started = time.monotonic()
    built = subprocess.run(
        ["bash", str(copy / "docker" / "docker-build.sh")],
        cwd=copy,
        env={**os.environ, "TAG": TAG},
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert built.returncode == 0, built.stdout + built.stderr
    assert f"agentorch/{NAME}:{TAG}" in built.stderr, built.stderr  # make build built it too
    stack = Stack("agentorch-e2e-new-agent", root=copy, tag=TAG)
    stack.timed("images of the scaffolded copy", started)
    yield from running_stack(stack)


def test_a_scaffolded_agent_runs_in_compose_and_reaches_the_model(
    copy: Path, new_agent_stack: Stack
) -> None:
    started = time.monotonic()
    new_agent_stack.compose("up", "-d", "--no-build")
    services = tuple(f.service for f in load_manifest(copy / "functions.yaml").functions)
    assert f"{NAME}-agent" in services
    new_agent_stack.wait_healthy(services)
    new_agent_stack.timed("up -d and healthy, with the new agent", started)
    status, _, body = http("GET", f"{new_agent_stack.orchestrator}/agents")
    assert status == 200, body
    listed = {agent["name"]: agent for agent in body["agents"]}
    assert listed[NAME]["reachable"] is True and listed[NAME]["status"] == "available", listed
    run = new_agent_stack.ask(f"Use {NAME} on: one two three", agents=[NAME])
    assert run["status"] == "completed", run
    [call] = [step for step in run["steps"] if step["kind"] == "agent"]
    assert call["name"] == NAME and call["outcome"]["result"] == {"words": 3}, run
