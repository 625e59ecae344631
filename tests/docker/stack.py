"""Drive the Compose stack from tests: compose (v1 or v2), health, HTTP from the host, timings."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]
GATEWAY = "http://127.0.0.1:8585"
ORCHESTRATOR = "http://127.0.0.1:8080"
GATEWAY_LOG_FOLDER = "/var/log/agentorch"
"""Where docker-compose.yml mounts the gateway-logs volume (its LOG_FILE is gateway.log there)."""
FUNCTION_SERVICES = (
    "model-gateway",
    "orchestrator",
    "calculator-agent",
    "search-agent",
    "data-processor-agent",
    "tavily-agent",
)


def compose_command() -> list[str]:
    """``docker compose`` (v2) when the plugin answers, else ``docker-compose`` (v1)."""
    v2 = subprocess.run(["docker", "compose", "version"], capture_output=True, check=False)
    if v2.returncode == 0:
        return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    raise RuntimeError("neither `docker compose` nor `docker-compose` is installed")


@dataclass
class Stack:
    """One Compose project of this repository (``files`` on top of docker-compose.yml)."""

    project: str
    files: tuple[str, ...] = ("docker-compose.yml",)
    env_file: str | None = None
    """Instead of .env (the `test` profile's docker/test.env); also enables that profile."""
    phases: list[tuple[str, float]] = field(default_factory=list)

    def compose(self, *args: str, timeout_s: float = 300) -> subprocess.CompletedProcess[str]:
        files = [arg for name in self.files for arg in ("-f", str(REPO_ROOT / name))]
        command = [*compose_command(), "-p", self.project, *files]
        if self.env_file:
            command += ["--env-file", str(REPO_ROOT / self.env_file), "--profile", "test"]
        command += args
        done = subprocess.run(
            command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=timeout_s, check=False
        )
        if done.returncode != 0:
            raise AssertionError(f"{' '.join(command)} failed:\n{done.stdout}\n{done.stderr}")
        return done

    def timed(self, phase: str, started: float) -> None:
        self.phases.append((f"{self.project}: {phase}", time.monotonic() - started))

    def container(self, service: str) -> str:
        return self.compose("ps", "-q", service).stdout.strip()

    def health(self, service: str) -> str:
        container = self.container(service)
        if not container:
            return "missing"
        done = subprocess.run(
            ["docker", "inspect", "-f", "{{.State.Health.Status}}", container],
            capture_output=True,
            text=True,
            check=False,
        )
        return done.stdout.strip()

    def wait_healthy(self, services: tuple[str, ...], timeout_s: float = 120) -> None:
        deadline = time.monotonic() + timeout_s
        while True:
            states = {service: self.health(service) for service in services}
            if all(state == "healthy" for state in states.values()):
                return
            if time.monotonic() > deadline:
                logs = self.compose("logs", "--tail", "30").stdout
                raise AssertionError(f"not healthy within {timeout_s} s: {states}\n{logs}")
            time.sleep(0.5)

    def volume_at(self, service: str, destination: str) -> str:
        """The name of the named volume mounted at ``destination`` in ``service``'s container."""
        mounts = json.loads(docker("inspect", "-f", "{{json .Mounts}}", self.container(service)))
        for mount in mounts:
            if mount["Destination"] == destination:
                assert mount["Type"] == "volume", mount
                return str(mount["Name"])
        raise AssertionError(f"{service}: nothing mounted at {destination}: {mounts}")

    def gateway_log(self) -> list[dict[str, Any]]:
        """The JSON lines of ``gateway.log``, read from the gateway's log volume itself (a
        container of its own mounting the volume, so the file is on the volume, not the layer)."""
        volume = self.volume_at("model-gateway", GATEWAY_LOG_FOLDER)
        image = docker("inspect", "-f", "{{.Config.Image}}", self.container("model-gateway"))
        text = docker(
            "run", "--rm", "--network", "none", "-v", f"{volume}:/logs:ro",
            "--entrypoint", "cat", image.strip(), "/logs/gateway.log",
        )  # fmt: skip
        return [json.loads(line) for line in text.splitlines()]

    def down(self) -> None:
        self.compose("down", "-v", "--remove-orphans", "-t", "5")


def docker(*args: str) -> str:
    done = subprocess.run(
        ["docker", *args], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, f"docker {' '.join(args)}: {done.stderr}"
    return done.stdout


def http(
    method: str, url: str, body: Any = None, timeout_s: float = 60
) -> tuple[int, dict[str, str], Any]:
    """``(status, headers, parsed JSON body)`` of one request; errors are answers too."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        url, data=data, method=method, headers={"content-type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as answer:
            return answer.status, dict(answer.headers), json.loads(answer.read() or b"null")
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), json.loads(error.read() or b"null")


def ask(task: str, timeout_s: float = 60) -> dict[str, Any]:
    status, _, body = http("POST", f"{ORCHESTRATOR}/", {"task": task}, timeout_s)
    assert status == 200, body
    assert isinstance(body, dict)
    return body
