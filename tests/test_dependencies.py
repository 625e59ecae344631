"""pyproject.toml, the lock (constraints.txt) and every function's requirements.txt agree.

They are generated (``make lock``, ``make requirements``); these checks are offline and fail when
someone edits one by hand or forgets to regenerate after changing pyproject.toml.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tools.requirements import FUNCTIONS, HEADER, LOCK, PYPROJECT


@dataclass(frozen=True)
class Pin:
    version: str
    marker: str
    parents: frozenset[str]
    """The packages uv says required it (``# via``); "agent-orchestrator" for a direct one."""


def read_pins(path: Path) -> dict[str, Pin]:
    pins: dict[str, Pin] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        spec, _, comment = line.partition("#")
        if not spec.strip():
            continue
        requirement = Requirement(spec)
        [pinned] = requirement.specifier
        assert pinned.operator == "==", f"{path}: {line!r} is not an exact pin"
        via = comment.strip().removeprefix("via ").split(", ")
        parents = frozenset(canonicalize_name(name.split(" ")[0]) for name in via)
        marker = str(requirement.marker or "")
        pins[canonicalize_name(requirement.name)] = Pin(pinned.version, marker, parents)
    return pins


def declared(*extras: str) -> list[Requirement]:
    """``[project] dependencies`` plus the named extras, as pyproject.toml writes them."""
    project = tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))["project"]
    lines = list(project["dependencies"])
    for extra in extras:
        lines += project["optional-dependencies"][extra]
    return [Requirement(line) for line in lines if not line.startswith("agent-orchestrator")]


def all_extras() -> list[str]:
    project = tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))["project"]
    return list(project["optional-dependencies"])


LOCKED = read_pins(LOCK)


def test_the_lock_pins_every_declared_package_within_its_range() -> None:
    for requirement in declared(*all_extras()):
        pin = LOCKED.get(canonicalize_name(requirement.name))
        assert pin is not None, f"{requirement} is not in constraints.txt: run make lock"
        assert requirement.specifier.contains(pin.version, prereleases=True), (
            f"constraints.txt pins {requirement.name}=={pin.version}, outside {requirement}"
        )


@pytest.mark.parametrize("extra", sorted(FUNCTIONS))
def test_a_function_requirements_is_its_extra_resolved_inside_the_lock(extra: str) -> None:
    path = FUNCTIONS[extra] / "requirements.txt"
    assert path.read_text(encoding="utf-8").startswith(HEADER.format(extra=extra)), (
        f"{path} was not written by make requirements"
    )
    pins = read_pins(path)
    for requirement in declared(extra):
        pin = pins.get(canonicalize_name(requirement.name))
        assert pin is not None, f"{path} lacks {requirement}: run make requirements"
        assert requirement.specifier.contains(pin.version, prereleases=True)
    for name, pin in pins.items():
        locked = LOCKED.get(name)
        assert locked is not None, f"{path} pins {name}, which constraints.txt does not"
        assert pin.version == locked.version, (
            f"{path} pins {name}=={pin.version}, constraints.txt {locked.version}"
        )
        assert pin.parents & ({"agent-orchestrator"} | set(pins)), (
            f"{path} pins {name} but nothing in it needs it"
        )


def test_a_function_bundle_holds_only_what_it_needs() -> None:
    def names(extra: str) -> set[str]:
        return set(read_pins(FUNCTIONS[extra] / "requirements.txt"))

    # The SDK is the tests' and clients' library: the gateway speaks Anthropic's wire itself.
    tools = {"pytest", "moto", "ruff", "mypy", "hypothesis", "rich", "prompt-toolkit", "anthropic"}
    for extra in FUNCTIONS:
        assert not names(extra) & tools, f"{extra} ships test or client tools"
    assert {"botocore", "httptools", "uvloop"} <= names("gateway")
    # botocore signs and shared.transport sends: no boto3, no aiohttp client in the gateway.
    assert not names("gateway") & {"boto3", "aiohttp"}
    assert "jsonschema" in names("orchestrator")
    # shared.transport carries every outbound call, the sink's included: aiohttp is the tests'.
    assert "aiohttp" not in names("orchestrator")
    # Each function that calls out can be told OUTBOUND_TRANSPORT=httpx (for a proxy).
    for caller in ("gateway", "orchestrator", "tavily"):
        assert "httpx" in names(caller), f"{caller} cannot use OUTBOUND_TRANSPORT=httpx"
    assert "boto3" not in names("orchestrator")
    assert "duckdb" in names("data_processor")
    assert "httpx" in names("tavily")
    for agent in ("calculator", "search"):
        assert not names(agent) & {"duckdb", "boto3", "aiohttp", "httpx"}


def test_this_environment_runs_the_locked_versions() -> None:
    """What the tests run against is what CI and the images install."""
    drifted = []
    for requirement in declared(*all_extras()):
        name = canonicalize_name(requirement.name)
        if requirement.marker is not None and not requirement.marker.evaluate():
            continue
        installed = metadata.version(name)
        if installed != LOCKED[name].version:
            drifted.append(f"{name} {installed} (locked {LOCKED[name].version})")
    assert not drifted, "installed versions differ from constraints.txt; run make setup: " + (
        ", ".join(drifted)
    )
