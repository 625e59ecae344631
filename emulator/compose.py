"""``docker-compose.yml`` read into the services the emulator runs.

The functions are listed once, in ``functions.yaml`` (``shared.manifest``); their services here
are written from it (``make manifest``), so the emulator runs what Compose runs. A service that
carries an ``x-function``
extension (``source``, ``target``, ``port`` on the host) is a function; the emulator also reads
``environment``, ``env_file``, ``depends_on``, ``healthcheck``, ``ports``, ``profiles`` and
``restart`` as Compose does, as far as they apply to a process, and ignores the rest
(``build``, ``networks``, ``image``...). Services without ``x-function`` are container-only.

    project = load_project()
    project.by_target("gateway").source  # "functions/gateway/main.py"

A malformed file raises ``ConfigError`` naming the file, the service and the key.

Each process gets a random token in ``AGENTORCH_INSTANCE`` that its health check's answer must
echo in ``x-agentorch-instance`` (``shared.asgi`` does), so another server on the same port is
never taken for it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from emulator.interpolate import interpolate_tree, read_env_file
from shared.config import yaml_loader
from shared.errors import ConfigError

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_COMPOSE_FILE = REPO_ROOT / "docker-compose.yml"
CONDITIONS = ("service_started", "service_healthy", "service_completed_successfully")
RESTART_POLICIES = ("no", "always", "on-failure", "unless-stopped")
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(us|ms|h|m|s)")
_UNIT_S = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_URL = re.compile(r"https?://[^\s'\"]+")


@dataclass(frozen=True)
class HealthCheck:
    """How the emulator decides a service is healthy: ``GET path`` answers 2xx."""

    path: str = "/health"
    """Taken from the URL in the check's ``test`` command."""
    interval_s: float = 30.0
    timeout_s: float = 30.0
    retries: int = 3
    start_period_s: float = 0.0

    def deadline_s(self) -> float:
        """How long Compose would wait before calling the service unhealthy."""
        return self.start_period_s + self.retries * (self.interval_s + self.timeout_s)


@dataclass(frozen=True)
class Dependency:
    service: str
    condition: str = "service_started"


@dataclass(frozen=True)
class Service:
    """One function of the stack, as the emulator runs it."""

    name: str
    source: str
    """The function's source file, relative to the project folder."""
    target: str
    port: int
    """The host port: ``x-function.port``, else the first published ``ports`` entry."""
    environment: dict[str, str] = field(default_factory=dict)
    """``env_file`` entries overlaid by ``environment``, interpolated, URLs not yet rewritten."""
    depends_on: tuple[Dependency, ...] = ()
    healthcheck: HealthCheck | None = None
    profiles: tuple[str, ...] = ()
    restart: str = "no"


@dataclass(frozen=True)
class Project:
    """The compose file's functions that are active under the chosen profiles."""

    path: Path
    services: dict[str, Service]
    """In the file's order."""
    skipped: tuple[str, ...] = ()
    """Services that are container-only or not in an active profile."""

    @property
    def directory(self) -> Path:
        return self.path.parent

    def service(self, name: str) -> Service:
        if name not in self.services:
            known = ", ".join(self.services) or "none"
            raise ConfigError(f"{self.path.name}: no service {name!r} (services: {known})")
        return self.services[name]

    def by_target(self, target: str) -> Service:
        for service in self.services.values():
            if service.target == target:
                return service
        raise ConfigError(f"{self.path.name}: no service has x-function target {target!r}")

    def start_order(self) -> list[Service]:
        """Every service after the services it depends on (the file's order otherwise)."""
        ordered: list[Service] = []
        state: dict[str, str] = {}

        def visit(name: str, chain: tuple[str, ...]) -> None:
            if state.get(name) == "done":
                return
            if state.get(name) == "visiting":
                cycle = " -> ".join((*chain, name))
                raise ConfigError(f"{self.path.name}: depends_on has a cycle: {cycle}")
            state[name] = "visiting"
            for dependency in self.services[name].depends_on:
                visit(dependency.service, (*chain, name))
            state[name] = "done"
            ordered.append(self.services[name])

        for name in self.services:
            visit(name, ())
        return ordered


def load_project(
    path: Path | str | None = None,
    *,
    profiles: Iterable[str] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Project:
    """Read the compose file (``docker-compose.yml`` at the repository root by default).

    ``profiles`` defaults to ``COMPOSE_PROFILES`` (comma-separated), as Compose does.
    Variables in the file come from ``environ`` (``os.environ``), then the project's ``.env``.
    """
    path = Path(path) if path else DEFAULT_COMPOSE_FILE
    environ = os.environ if environ is None else environ
    if profiles is None:
        profiles = [p for p in environ.get("COMPOSE_PROFILES", "").split(",") if p.strip()]
    active = {p.strip() for p in profiles}
    document = _read_document(path, environ)
    services_node = document.get("services")
    if not isinstance(services_node, dict) or not services_node:
        raise ConfigError(f"{path.name}: 'services' must be a mapping of service names")
    services: dict[str, Service] = {}
    skipped: list[str] = []
    for name, node in services_node.items():
        where = f"{path.name}: services.{name}"
        if not isinstance(node, dict):
            raise ConfigError(f"{where}: must be a mapping")
        profile_list = tuple(_string_list(node.get("profiles", []), f"{where}.profiles"))
        if "x-function" not in node or (profile_list and not active & set(profile_list)):
            skipped.append(str(name))
            continue
        services[str(name)] = _service(str(name), node, path.parent, where, environ)
    _check_dependencies(services, services_node, path.name)
    return Project(path, services, tuple(skipped))


def _read_document(path: Path, environ: Mapping[str, str]) -> dict[str, Any]:
    try:
        raw = yaml.load(path.read_text(encoding="utf-8"), Loader=yaml_loader())
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the compose file: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path.name}: not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"{path.name}: must be a mapping with a 'services' key")
    dotenv = path.parent / ".env"
    variables = {**(read_env_file(dotenv) if dotenv.is_file() else {}), **environ}
    # Compose interpolates the file before reading it; extension fields are left as written.
    return {
        k: v if str(k).startswith("x-") else interpolate_tree(v, variables, path.name)
        for k, v in raw.items()
    }


def _service(
    name: str, node: dict[str, Any], directory: Path, where: str, environ: Mapping[str, str]
) -> Service:
    function = node["x-function"]
    if not isinstance(function, dict):
        raise ConfigError(f"{where}.x-function: must be a mapping with source, target and port")
    source = _required_string(function, "source", f"{where}.x-function")
    target = _required_string(function, "target", f"{where}.x-function")
    port = _port(function, node, where)
    environment = _env_files(node.get("env_file"), directory, f"{where}.env_file")
    environment.update(_environment(node.get("environment", {}), f"{where}.environment", environ))
    # What differs on the host: a container's paths (a log file on a volume) do not exist there.
    environment.update(
        _environment(function.get("environment", {}), f"{where}.x-function.environment", environ)
    )
    return Service(
        name=name,
        source=source,
        target=target,
        port=port,
        environment=environment,
        depends_on=_depends_on(node.get("depends_on", []), f"{where}.depends_on"),
        healthcheck=_healthcheck(node.get("healthcheck"), f"{where}.healthcheck"),
        profiles=tuple(_string_list(node.get("profiles", []), f"{where}.profiles")),
        restart=_restart(node.get("restart", "no"), f"{where}.restart"),
    )


def _required_string(node: dict[str, Any], key: str, where: str) -> str:
    value = node.get(key)
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{where}.{key}: required, a non-empty string")
    return value


def _port(function: dict[str, Any], node: dict[str, Any], where: str) -> int:
    value = function.get("port")
    if value is None:
        published = _published_ports(node.get("ports", []), f"{where}.ports")
        if not published:
            raise ConfigError(f"{where}.x-function.port: required when 'ports' publishes none")
        return published[0]
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value < 65536:
        raise ConfigError(f"{where}.x-function.port: must be a port number, not {value!r}")
    return value


def _published_ports(value: Any, where: str) -> list[int]:
    """Host ports of ``ports`` entries: ``"8585:8585"``, ``"127.0.0.1:80:8080"``, long form."""
    if not isinstance(value, list):
        raise ConfigError(f"{where}: must be a list")
    ports: list[int] = []
    for entry in value:
        published = entry.get("published") if isinstance(entry, dict) else None
        if published is None and isinstance(entry, str | int) and ":" in str(entry):
            published = str(entry).rsplit(":", 2)[-2]
        if published is not None:
            try:
                ports.append(int(str(published).split("-")[0]))
            except ValueError as exc:
                raise ConfigError(f"{where}: cannot read a host port in {entry!r}") from exc
    return ports


def _environment(value: Any, where: str, environ: Mapping[str, str]) -> dict[str, str]:
    """The mapping or ``KEY=VALUE`` list form; a bare ``KEY`` passes the shell's value on."""
    if isinstance(value, list):
        pairs = [str(item).split("=", 1) for item in value]
        items = [(p[0], p[1] if len(p) == 2 else None) for p in pairs]
    elif isinstance(value, dict):
        items = [(str(k), v) for k, v in value.items()]
    else:
        raise ConfigError(f"{where}: must be a mapping or a list of KEY=VALUE")
    result: dict[str, str] = {}
    for key, item in items:
        if item is None:
            if key in environ:
                result[key] = environ[key]
        elif isinstance(item, bool):
            result[key] = str(item).lower()
        elif isinstance(item, str | int | float):
            result[key] = str(item)
        else:
            raise ConfigError(f"{where}.{key}: must be a string or a number")
    return result


def _env_files(value: Any, directory: Path, where: str) -> dict[str, str]:
    if value is None:
        return {}
    entries = value if isinstance(value, list) else [value]
    result: dict[str, str] = {}
    for entry in entries:
        required = True
        if isinstance(entry, dict):  # the long form: {path: ..., required: false}
            required = bool(entry.get("required", True))
            entry = entry.get("path")
        if not isinstance(entry, str):
            raise ConfigError(f"{where}: must be a path or a list of paths")
        path = directory / entry
        if path.is_file():
            result.update(read_env_file(path))
        elif required:
            raise ConfigError(f"{where}: {entry} does not exist")
    return result


def _depends_on(value: Any, where: str) -> tuple[Dependency, ...]:
    if isinstance(value, list):
        return tuple(Dependency(str(name)) for name in value)
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: must be a list of services or a mapping")
    dependencies = []
    for name, options in value.items():
        condition = (options or {}).get("condition", "service_started")
        if condition not in CONDITIONS:
            raise ConfigError(f"{where}.{name}.condition: {condition!r} is not one of {CONDITIONS}")
        dependencies.append(Dependency(str(name), condition))
    return tuple(dependencies)


def _healthcheck(value: Any, where: str) -> HealthCheck | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: must be a mapping")
    test = value.get("test")
    if value.get("disable") or test == ["NONE"] or test is None:
        return None
    if not isinstance(test, list | str):
        raise ConfigError(f"{where}.test: must be a string or a list")
    url = _URL.search(test if isinstance(test, str) else " ".join(map(str, test)))
    retries = value.get("retries", 3)
    if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
        raise ConfigError(f"{where}.retries: must be a whole number, not {retries!r}")
    return HealthCheck(
        path=(urlsplit(url.group(0)).path or "/") if url else "/health",
        interval_s=_duration(value.get("interval", "30s"), f"{where}.interval"),
        timeout_s=_duration(value.get("timeout", "30s"), f"{where}.timeout"),
        retries=retries,
        start_period_s=_duration(value.get("start_period", "0s"), f"{where}.start_period"),
    )


def _duration(value: Any, where: str) -> float:
    """Compose's durations: ``10s``, ``1m30s``, ``500ms`` (a bare number is seconds)."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    text = str(value).strip()
    parts = _DURATION.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ConfigError(f"{where}: {value!r} is not a duration such as 10s, 1m30s or 500ms")
    return sum(float(number) * _UNIT_S[unit] for number, unit in parts)


def _restart(value: Any, where: str) -> str:
    policy = str(value).split(":", 1)[0] if value is not False else "no"
    if policy not in RESTART_POLICIES:
        raise ConfigError(f"{where}: {value!r} is not one of {', '.join(RESTART_POLICIES)}")
    return policy


def _string_list(value: Any, where: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{where}: must be a list of strings")
    return list(value)


def _check_dependencies(
    services: dict[str, Service], all_services: dict[str, Any], file_name: str
) -> None:
    for service in services.values():
        for dependency in service.depends_on:
            where = f"{file_name}: services.{service.name}.depends_on.{dependency.service}"
            if dependency.service not in all_services:
                raise ConfigError(f"{where}: no such service")
            if dependency.service not in services:
                raise ConfigError(
                    f"{where}: not a function the emulator runs (no x-function, "
                    "or its profile is not active)"
                )
            target = services[dependency.service]
            if dependency.condition == "service_healthy" and target.healthcheck is None:
                raise ConfigError(f"{where}: service_healthy, but it has no healthcheck")
