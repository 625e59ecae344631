"""The docker/ scripts against a fake engine (tests/fakes/docker_cli.py): `make build` builds
the TAG that `.env` names, and `make docker-clean` removes every image of the stack, untagged
ones of older builds included, keeping the base image unless BASE=1 (issue 15, item 20)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.docker_cli import Engine, Image

REPO_ROOT = Path(__file__).resolve().parent.parent
BASE = "agentorch/python:3.11-slim-local"
LABEL = {"io.agentorch.project": "agent-orchestrator"}


@pytest.fixture
def engine_state(tmp_path: Path) -> Path:
    """A bin folder with the fake ``docker`` and ``docker-compose`` first on PATH."""
    bin_folder = tmp_path / "bin"
    bin_folder.mkdir()
    for name, role in (("docker", "docker"), ("docker-compose", "compose")):
        script = bin_folder / name
        fake = f'exec "{sys.executable}" -m tests.fakes.docker_cli "$@"'
        script.write_text(f"#!/bin/sh\nFAKE_DOCKER_AS={role} {fake}\n")
        script.chmod(0o755)
    return tmp_path / "engine.json"


def run(state: Path, command: list[str], **env: str) -> subprocess.CompletedProcess[str]:
    environ = {
        key: value
        for key, value in os.environ.items()
        if key not in ("TAG", "BASE_IMAGE", "COMPOSE_ENV_FILE", "BASE", "PROD")
    }
    environ.update(
        PATH=f"{state.parent / 'bin'}{os.pathsep}{environ['PATH']}",
        PYTHONPATH=str(REPO_ROOT),
        FAKE_DOCKER_STATE=str(state),
        COMPOSE_ENV_FILE=str(state.parent / "absent.env"),  # never the developer's .env
    )
    environ.update(env)
    return subprocess.run(
        command, cwd=REPO_ROOT, env=environ, capture_output=True, text=True, timeout=60
    )


def tags(state: Path) -> set[str]:
    return {tag for image in Engine.load(state).images for tag in image.tags}


def test_build_tags_images_with_the_tag_in_env(engine_state: Path) -> None:
    Engine([Image("base", [f"{BASE}"])]).save(engine_state)
    env_file = engine_state.parent / "dev.env"
    env_file.write_text("# as in .env\nTAG=dev\n")
    done = run(engine_state, ["docker/docker-build.sh", "gateway"], COMPOSE_ENV_FILE=str(env_file))
    assert done.returncode == 0, done.stderr
    assert "agentorch/gateway:dev" in tags(engine_state)
    shell_wins = run(
        engine_state, ["docker/docker-build.sh", "gateway"], COMPOSE_ENV_FILE=str(env_file), TAG="x"
    )
    assert shell_wins.returncode == 0, shell_wins.stderr
    assert "agentorch/gateway:x" in tags(engine_state)


def test_start_looks_for_the_images_of_the_tag_in_env(engine_state: Path) -> None:
    env_file = engine_state.parent / "dev.env"
    env_file.write_text("TAG='dev'\n")
    command = ["bash", "-c", "source docker/lib.sh && image_tag"]
    assert run(engine_state, command, COMPOSE_ENV_FILE=str(env_file)).stdout == "dev\n"
    assert run(engine_state, command).stdout == "latest\n"


def rebuilt_stack() -> list[Image]:
    """The base, a shared layer, two images (one of them tagged twice), and the image an
    earlier build of the gateway left untagged."""
    return [
        Image("base", [BASE]),
        Image("core", [], "base", LABEL),
        Image("gw2", ["agentorch/gateway:latest", "agentorch/gateway:dev"], "core", LABEL),
        Image("gw1", [], "core", LABEL),
        Image("calc", ["agentorch/calculator:latest"], "core", LABEL),
        Image("other", ["someone/else:1"]),
    ]


def test_the_old_clean_failed_after_a_rebuild(engine_state: Path) -> None:
    """The reproduction: `docker images -q 'agentorch/*' | xargs -r docker rmi -f`."""
    Engine(rebuilt_stack()).save(engine_state)
    old = "docker images -q 'agentorch/*' | xargs -r docker rmi -f"
    done = run(engine_state, ["bash", "-c", old])
    assert done.returncode == 123 and "dependent child images" in done.stderr


@pytest.mark.parametrize("base", ["0", "1"])
def test_clean_removes_every_image_of_the_stack(engine_state: Path, base: str) -> None:
    Engine(rebuilt_stack()).save(engine_state)
    done = run(engine_state, ["make", "--no-print-directory", "docker-clean", f"BASE={base}"])
    assert done.returncode == 0, done.stdout + done.stderr
    left: dict[str, Any] = {i.id: i.tags for i in Engine.load(engine_state).images}
    assert left == ({"base": [BASE]} if base == "0" else {}) | {"other": ["someone/else:1"]}
    calls = Engine.load(engine_state).calls
    downs = [call for call in calls if call[0] == "docker-compose" and "down" in call]
    assert downs and "-v" in downs[0], json.dumps(calls)  # the stack and its volumes first


def test_docker_engine_removes_only_stale_pid_files(tmp_path: Path) -> None:
    """A machine copied while dockerd ran keeps /var/run/docker.pid, and dockerd then refuses to
    start ("pid file found"): CI failed so. A pid file of a process that is gone, or is not the
    named program, goes; the pid file of a running one stays."""
    live = subprocess.Popen(["sleep", "30"])
    try:
        files = {
            "gone.pid": "999999999\n",  # above pid_max: no such process
            "other.pid": f"{os.getpid()}\n",  # alive, but python, not sleep
            "live.pid": f"{live.pid}\n",
            "empty.pid": "",
        }
        for name, text in files.items():
            (tmp_path / name).write_text(text)
        script = "; ".join(f'clear_stale_pid "{tmp_path / name}" sleep' for name in files)
        done = subprocess.run(
            ["bash", "-c", f"source docker/lib.sh; {script}"],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=10,
        )
    finally:
        live.kill()
        live.wait()
    assert done.returncode == 0, done.stderr
    assert sorted(path.name for path in tmp_path.iterdir()) == ["live.pid"]
    assert "removing stale" in done.stderr and str(tmp_path / "gone.pid") in done.stderr
