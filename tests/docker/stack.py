"""Drive the Compose stack from tests: compose (v1 or v2), health, HTTP from the host, timings.

Each stack publishes its host ports on free ones (``GATEWAY_PORT``, ``ORCHESTRATOR_PORT``,
``FAKE_ANTHROPIC_PORT``), so the test passes while another stack holds the defaults.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from emulator.network import free_port
from shared.manifest import load_manifest

REPO_ROOT = Path(__file__).resolve().parents[2]
GATEWAY_LOG_FOLDER = "/var/log/agentorch"
"""Where docker-compose.yml mounts the gateway-logs volume (its LOG_FILE is gateway.log there)."""
FUNCTION_SERVICES = tuple(function.service for function in load_manifest().functions)

REMOTE_AGENT = "arith"
"""The e2e stack's ``AGENTS`` entry (the calculator again, by URL): nothing else names it."""


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
    api_keys: str = ""
    """``GATEWAY_API_KEYS`` for the stack (set even when empty: a developer's .env is not read)."""
    agents: str = ""
    """``AGENTS`` for the stack: remote agents by URL, ``name=url,...``."""
    root: Path = REPO_ROOT
    """The repository whose compose files run (a scaffolded copy's, for a new agent)."""
    tag: str = ""
    """``TAG`` of the images it runs; empty: the environment's (latest)."""
    phases: list[tuple[str, float]] = field(default_factory=list)
    ports: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for variable in ("GATEWAY_PORT", "ORCHESTRATOR_PORT", "FAKE_ANTHROPIC_PORT"):
            self.ports[variable] = free_port()

    @property
    def gateway(self) -> str:
        return f"http://127.0.0.1:{self.ports['GATEWAY_PORT']}"

    @property
    def orchestrator(self) -> str:
        return f"http://127.0.0.1:{self.ports['ORCHESTRATOR_PORT']}"

    @property
    def key(self) -> str:
        """The first of ``api_keys``: the one the orchestrator and the clients use."""
        return self.api_keys.split(",")[0]

    def environment(self, **extra: str) -> dict[str, str]:
        """What Compose and the docker/ scripts run with for this stack."""
        ports = {name: str(port) for name, port in self.ports.items()}
        return {
            **os.environ,
            "COMPOSE_PROJECT_NAME": self.project,
            "GATEWAY_API_KEYS": self.api_keys,
            "AGENTS": self.agents,
            **({"TAG": self.tag} if self.tag else {}),
            **ports,
            **extra,
        }

    def compose_args(self, *args: str) -> list[str]:
        files = [arg for name in self.files for arg in ("-f", str(self.root / name))]
        command = [*compose_command(), "-p", self.project, *files]
        if self.env_file:
            command += ["--env-file", str(self.root / self.env_file), "--profile", "test"]
        return [*command, *args]

    def compose(self, *args: str, timeout_s: float = 300) -> subprocess.CompletedProcess[str]:
        command = self.compose_args(*args)
        done = subprocess.run(
            command,
            cwd=self.root,
            env=self.environment(),
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
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

    def start_log(self, service: str) -> list[str]:
        """Every line the service's container wrote (stdout and stderr), as Docker keeps them."""
        done = subprocess.run(
            ["docker", "logs", self.container(service)],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        return [line for line in (done.stdout + done.stderr).splitlines() if line.strip()]

    def ask(self, task: str, timeout_s: float = 60, **fields: Any) -> dict[str, Any]:
        request = {"task": task, **fields}
        status, _, body = http("POST", f"{self.orchestrator}/", request, timeout_s)
        assert status == 200, body
        assert isinstance(body, dict)
        return body

    def down(self) -> None:
        self.compose("down", "-v", "--remove-orphans", "-t", "5")


def docker(*args: str) -> str:
    done = subprocess.run(
        ["docker", *args], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, f"docker {' '.join(args)}: {done.stderr}"
    return done.stdout


def http(
    method: str, url: str, body: Any = None, timeout_s: float = 60, key: str = ""
) -> tuple[int, dict[str, str], Any]:
    """``(status, headers, parsed JSON body)`` of one request; errors are answers too."""
    data = None if body is None else json.dumps(body).encode()
    headers = {"content-type": "application/json", **({"x-api-key": key} if key else {})}
    request = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as answer:
            return answer.status, dict(answer.headers), json.loads(answer.read() or b"null")
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), json.loads(error.read() or b"null")
